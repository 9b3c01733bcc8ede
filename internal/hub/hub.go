// Package hub routes published messages to subscribed streams.
//
// Every message is encoded once into an immutable Event and appended to the
// log of each topic (token) it is routed to. A subscriber owns no queue: it
// keeps a cursor (the sequence number of the last event it was given) and, at
// flush time, gathers the frames after its cursor straight from its topics'
// logs. The same logs are the history that a reconnecting client replays
// from, so there is one copy of every event, shared by all its receivers.
//
// Streams are driven by owners (an epoll loop, or a front end that runs a
// goroutine per connection). The hub tells an owner which of its topics have
// new events; the owner then fills and writes each affected subscriber.
package hub

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/chunked"
	"github.com/hasses-go/hasses/internal/sse"
)

// Config bounds the history and the lag of slow subscribers.
type Config struct {
	// Epoch distinguishes this server instance's event ids from those of an
	// earlier run; zero means the start time in milliseconds.
	Epoch uint64
	// HistoryCount, HistoryBytes and HistoryAge bound the events each topic
	// keeps for replay once every live subscriber has received them. Zero
	// means the default; a negative HistoryCount means no history.
	HistoryCount int
	HistoryBytes int64
	HistoryAge   time.Duration
	// HistoryTotalBytes bounds the memory of every retained event, history
	// and what live subscribers have yet to receive, over all topics; the
	// oldest events go first. Zero means DefaultHistoryTotalBytes.
	HistoryTotalBytes int64
	// MaxLag is how many bytes of events a subscriber may have pending before
	// it is disconnected as too slow.
	MaxLag int64
	// IdempotencyWindow is how long a publication's Key is remembered;
	// zero means DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
	// Presence says which tokens' subscribers see each other
	// (presence.go).
	Presence PresenceConfig
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Defaults for Config's zero fields.
const (
	DefaultHistoryCount = 100
	DefaultHistoryBytes = 256 << 10
	DefaultHistoryAge   = time.Hour
	DefaultMaxLag       = 4 << 20
	// DefaultHistoryTotalBytes holds the full per-token history of 1,000
	// busy tokens; a few thousand idle ones cost little.
	DefaultHistoryTotalBytes = 256 << 20
)

// Event is one encoded publication. It is immutable once published.
//
// It is encoded once, in the form the epoll writer sends (an HTTP/1.1
// chunk), and the SSE text inside is a sub-slice of it, so that every front
// end writes the same bytes without copying or re-parsing them.
type Event struct {
	Seq     uint64
	Exclude string // client id that must not receive it
	frame   []byte // chunk header, SSE text, chunk trailer
	hdr     uint8  // length of the chunk header
	at      int64  // publication time, Unix nanoseconds
	end     *Match // a disconnection: the streams it selects end with it
	// topics are the logs that hold the event (h.mu): it is retained
	// until the last drops it.
	topics []*topic
}

// Chunk returns the event framed as one HTTP/1.1 chunk.
func (e *Event) Chunk() []byte { return e.frame }

// Text returns the event's SSE text, without transport framing.
func (e *Event) Text() []byte { return e.frame[e.hdr : len(e.frame)-len(chunked.Trailer)] }

// size is the number of bytes the event adds to a stream.
func (e *Event) size() int64 { return int64(len(e.frame)) }

// eventOverhead approximates the memory of an Event beyond its bytes.
const eventOverhead = 128

// cost is the memory the event holds while retained.
func (e *Event) cost() int64 { return int64(cap(e.frame)+len(e.Exclude)) + eventOverhead }

// retention counts the events retained by any topic; every retained event
// is also in order in log, so the oldest can be found for the global
// bound.
type retention struct {
	bytes  int64
	events int
	log    []*Event // oldest first; events no topic holds are skipped lazily
}

// released records that no topic holds ev any more.
func (r *retention) released(ev *Event) {
	r.bytes -= ev.cost()
	r.events--
	ev.topics = nil
}

// Hub holds the topics and routes events to them. It is safe for concurrent
// use.
type Hub struct {
	cfg Config

	mu     sync.Mutex
	seq    uint64
	topics map[string]*topic
	names  names          // the topics in order of name, for prefix routing
	ids    map[string]int // streams per client id, for exclusion counts
	// starTokens are the requested tokens of the "*" subscriptions that
	// named others too (the topics of the rest name theirs).
	starTokens map[*Sub][]string
	// marks counts the publications that count their receivers one by
	// one (subTopic.mark, in a stream's first topic).
	marks  uint32
	hit    []*topic // the topics one publication was appended to
	ret    retention
	all    *topic // every event: read by "*" subscribers
	bcast  *topic // events published to "*": read by every subscriber
	owners []*Owner
	nsubs  int
	idbuf  []byte
	enc    []byte
	ix     []int32  // a fill's topics (h.mu)
	pos    []uint64 // a fill's places in them (h.mu)
	// lostSeq is the newest event a topic created now may have missed: a
	// prefix publication that found no topic of that name, or the history of
	// a topic that was dropped. A new topic's floor starts there.
	lostSeq uint64
	// lingering (from lingerHead on) are the topics released by their last
	// subscriber, in order (releaseTopic).
	lingering  []lingeringTopic
	lingerHead int
	// resetFloor is the newest event a cluster reset may have cost any
	// topic (RaiseFloor): every topic's replay floor is at least this
	// high, so a reset costs no walk over the topics.
	resetFloor uint64

	pres      presence // who is subscribed (h.mu)
	keys      keyed    // results of keyed publications (h.mu)
	trims     trims    // the topics Trim looks at (h.mu)
	published atomic.Int64
	// replica is set when a cluster sequences the events (cluster.go):
	// they arrive through Apply, and Publish refuses.
	replica bool
	// collectHold is defaultCollectHold; tests set 0 (a pause at every
	// look at the clock).
	collectHold time.Duration
	// testPause, if set, runs whenever a Collect releases the lock
	// between two chunks (tests).
	testPause func()
}

// New returns a hub with cfg's zero fields set to the defaults.
func New(cfg Config) *Hub {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Epoch == 0 {
		cfg.Epoch = uint64(cfg.Now().UnixMilli())
	}
	if cfg.HistoryCount == 0 {
		cfg.HistoryCount = DefaultHistoryCount
	}
	if cfg.HistoryBytes <= 0 {
		cfg.HistoryBytes = DefaultHistoryBytes
	}
	if cfg.HistoryAge <= 0 {
		cfg.HistoryAge = DefaultHistoryAge
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	if cfg.HistoryTotalBytes <= 0 {
		cfg.HistoryTotalBytes = DefaultHistoryTotalBytes
	}
	if cfg.IdempotencyWindow <= 0 {
		cfg.IdempotencyWindow = DefaultIdempotencyWindow
	}
	h := &Hub{cfg: cfg, topics: make(map[string]*topic), ids: make(map[string]int), starTokens: make(map[*Sub][]string), collectHold: defaultCollectHold}
	h.pres.init(&h.cfg.Presence)
	h.all = &topic{name: "*all", special: true}
	h.bcast = &topic{name: "*", special: true}
	return h
}

// Owner drives a set of streams. Its wake function is called, without any
// hub lock held, when topics its subscribers read have new events; the owner
// then calls Collect from its own goroutine.
type Owner struct {
	hub    *Hub
	idx    int
	wakeFn func()
	dirty  []*topic
	spare  []*topic // the other dirty list: Collect works on one, publishers add to the other
	// scanning is the topic whose subscribers a Collect paused in, having
	// gathered its first scanned (h.mu): an Unsubscribe keeps those
	// it has yet to gather after them.
	scanning *topic
	scanned  int32
	// upto is the newest event at the start of the last Collect (h.mu):
	// the marks of o's streams cover every event up to it (Sub.pend).
	upto uint64
	// wakeReq is set under h.mu when the owner's dirty list becomes
	// non-empty; the publisher wakes the owner after releasing the lock.
	wakeReq   atomic.Bool
	delivered atomic.Int64
}

// NewOwner registers an owner. All owners must be registered before the
// first Subscribe.
func (h *Hub) NewOwner(wake func()) *Owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nsubs > 0 || len(h.topics) > 0 {
		panic("hub: NewOwner after the first subscription")
	}
	o := &Owner{hub: h, idx: len(h.owners), wakeFn: wake}
	h.owners = append(h.owners, o)
	return o
}

// Delivered returns how many events this owner's streams have received.
func (o *Owner) Delivered() int64 { return o.delivered.Load() }

// Publish numbers m, encodes it once and routes it to every topic it
// targets. It returns the assigned id and how many subscribers the message
// was routed to. m must have passed Validate (the publication pipeline sees
// to it). A replica hub (SetReplica) refuses with ErrReplica: in a cluster,
// events are numbered in Redis and arrive through Apply.
func (h *Hub) Publish(m Message) (Result, error) {
	if h.replica {
		return Result{}, ErrReplica
	}
	now := h.cfg.Now().UnixNano()

	h.mu.Lock()
	if m.Key != "" {
		if r, ok := h.keys.lookup(m.Key, now, h.cfg.IdempotencyWindow); ok {
			h.mu.Unlock()
			r.Duplicate = true
			return r, nil
		}
	}
	h.seq++
	id, receivers := h.publishLocked(h.seq, now, m)
	r := Result{ID: id.String(), Receivers: receivers}
	if m.Key != "" {
		h.keys.remember(m.Key, r, now, h.cfg.IdempotencyWindow)
	}
	h.mu.Unlock()

	h.wakeOwners()
	h.published.Add(1)
	return r, nil
}

// publishLocked encodes m as event seq (the caller has set h.seq to seq)
// and appends it to its topics. Called with h.mu held.
func (h *Hub) publishLocked(seq uint64, now int64, m Message) (sse.ID, int) {
	id := sse.ID{Epoch: h.cfg.Epoch, Seq: seq}
	ev := h.encode(id, m, now)
	if m.Presence != nil {
		h.applyPresence(m.Presence)
	}
	everyone := false
	hit := h.hit[:0]
	add := func(t *topic) {
		if t.lastSeq != ev.Seq { // a topic selected twice gets the event once
			h.append(t, ev)
			hit = append(hit, t)
		}
	}
	for _, target := range m.Targets {
		switch {
		case target == "*":
			add(h.bcast)
			everyone = true
		case strings.Contains(target, "*"):
			prefix, _, _ := strings.Cut(target, "*")
			h.lostSeq = seq
			h.names.withPrefix(prefix, add)
		default:
			add(h.topic(target))
		}
	}
	add(h.all)
	var receivers int
	if ev.end != nil {
		receivers = countDistinct(hit, h.nextMark(), ev.end.matches)
	} else {
		receivers = h.receivers(hit, everyone, m.Exclude)
	}
	clear(hit)
	h.hit = hit[:0]
	h.retain(ev)
	return id, receivers
}

// retain accounts for a new event and applies the global bound: the
// oldest events leave every topic until the retained events fit. A live
// subscriber that had yet to receive one is then too far behind (it lags,
// reconnects and gets a gap). Called with h.mu held.
func (h *Hub) retain(ev *Event) {
	r := &h.ret
	r.bytes += ev.cost()
	r.events++
	r.log = append(r.log, ev)
	for r.bytes > h.cfg.HistoryTotalBytes && r.log[0] != ev {
		old := r.log[0]
		for n := len(old.topics); n > 0; n-- { // each drop takes its topic out of old.topics
			old.topics[n-1].dropThrough(old.Seq, r)
		}
		h.popReleased()
	}
	h.popReleased()
}

// popReleased forgets the oldest events of the log that no topic holds.
func (h *Hub) popReleased() { h.popSome(0) }

// popSome forgets at most limit of the oldest released events (0: all),
// and reports whether more are released.
func (h *Hub) popSome(limit int) (more bool) {
	r := &h.ret
	n := 0
	for n < len(r.log) && r.log[n].topics == nil {
		if n == limit && limit > 0 {
			more = true
			break
		}
		n++
	}
	if n == 0 {
		return false
	}
	clear(r.log[:n])
	r.log = r.log[n:]
	if cap(r.log) > 64 && len(r.log) < cap(r.log)/4 {
		r.log = append([]*Event(nil), r.log...)
	}
	return more
}

// receivers counts the distinct streams an event routed to topics will be
// written to: a stream reading several of them counts once, an excluded
// one not at all. Called with h.mu held.
func (h *Hub) receivers(topics []*topic, everyone bool, exclude string) int {
	if everyone {
		return h.nsubs - h.ids[exclude]
	}
	if exclude == "" && len(topics) == 2 { // one token and the "*" subscribers: disjoint
		return int(topics[0].nsubs + topics[1].nsubs)
	}
	return countDistinct(topics, h.nextMark(), func(s *Sub) bool { return exclude == "" || s.ID != exclude })
}

// nextMark returns a new mark for countDistinct. A mark is 32 bits, to
// keep Sub small: when they run out, every stream's is cleared, so that no
// old mark is taken for a new one. Called with h.mu held.
func (h *Hub) nextMark() uint32 {
	h.marks++
	if h.marks == 0 {
		for _, t := range []*topic{h.bcast, h.all} { // every stream reads one of them
			for _, ow := range t.subs {
				for _, r := range ow.refs {
					r.s.topics[0].mark = 0
				}
			}
		}
		h.marks = 1
	}
	return h.marks
}

// countDistinct counts the streams reading topics that counts selects,
// each once (mark is the publication's: a stream marked with it was
// seen). Called with h.mu held.
func countDistinct(topics []*topic, mark uint32, counts func(*Sub) bool) int {
	n := 0
	for _, t := range topics {
		for _, ow := range t.subs {
			for _, r := range ow.refs {
				if s := r.s; s.topics[0].mark != mark {
					s.topics[0].mark = mark
					if counts(s) {
						n++
					}
				}
			}
		}
	}
	return n
}

// encode builds the immutable event: the SSE text is written after room
// for the largest chunk header, which is then filled in front of it, so the
// frame is one contiguous buffer. Called with h.mu held (h.enc is shared).
func (h *Hub) encode(id sse.ID, m Message, now int64) *Event {
	h.idbuf = id.AppendTo(h.idbuf[:0])
	buf := append(h.enc[:0], make([]byte, chunked.MaxHeader)...)
	buf = sse.AppendEvent(buf, h.idbuf, m.Event, m.Data)
	n := len(buf) - chunked.MaxHeader
	hdr := chunked.HeaderLen(n)
	chunked.PutHeader(buf[chunked.MaxHeader-hdr:chunked.MaxHeader], n)
	buf = append(buf, chunked.Trailer...)
	ev := &Event{Seq: id.Seq, Exclude: m.Exclude, frame: slices.Clone(buf[chunked.MaxHeader-hdr:]), hdr: uint8(hdr), at: now, end: m.Disconnect}
	h.enc = buf
	if cap(h.enc) > 1<<20 {
		h.enc = nil // do not pin one huge message's buffer
	}
	return ev
}

// wakeOwners calls the wake function of every owner that has new work. The
// owners slice is fixed before the first subscription, so it is read
// without h.mu; owners are few (one per epoll loop and front end).
func (h *Hub) wakeOwners() {
	for _, o := range h.owners {
		if o.wakeReq.Load() && o.wakeReq.Swap(false) {
			o.wakeFn()
		}
	}
}

// append adds ev to t and marks t dirty for every owner with subscribers on
// it. It is called with h.mu held.
func (h *Hub) append(t *topic, ev *Event) {
	t.push(ev, &h.cfg, h.cfg.HistoryBytes+h.cfg.MaxLag, &h.ret)
	h.trims.queue(t)
	for k := range t.subs {
		ow := &t.subs[k]
		if ow.dirty || len(ow.refs) == 0 {
			continue
		}
		ow.dirty = true
		o := h.owners[ow.owner]
		if len(o.dirty) == 0 {
			o.wakeReq.Store(true)
		}
		o.dirty = append(o.dirty, t)
	}
}

// topic returns the topic for an exact token, creating it. Called with h.mu
// held.
func (h *Hub) topic(name string) *topic {
	if t := h.topics[name]; t != nil {
		return t
	}
	t := &topic{name: name, floor: h.lostSeq}
	h.topics[name] = t
	h.names.insert(t)
	return t
}

// releaseTopic is dropTopic after a while: a topic whose last subscriber
// left, with no history to keep, lingers until the second Trim from now
// (1 to 2 s), so that a stream reconnecting at once finds its topics
// again. A storm of reconnections on 64 tokens each would otherwise drop
// and make anew a topic for every token and reconnection, and the
// collections of the garbage would slow every stream.
func (h *Hub) releaseTopic(t *topic) {
	if t.special || t.dropped || t.nsubs > 0 || len(t.entries) > 0 {
		return
	}
	h.lingering = append(h.lingering, lingeringTopic{t: t, trim: h.trims.runs + 2})
}

// lingeringTopic is a topic released by its last subscriber, to be
// dropped by Trim number trim unless taken again.
type lingeringTopic struct {
	t    *topic
	trim uint64
}

// dropLingering drops the released topics whose time has come and that
// are still without subscribers and history, calling yield after each.
// Called with h.mu held.
func (h *Hub) dropLingering(yield func()) {
	for h.lingerHead < len(h.lingering) && h.lingering[h.lingerHead].trim <= h.trims.runs {
		t := h.lingering[h.lingerHead].t
		h.lingering[h.lingerHead] = lingeringTopic{}
		h.lingerHead++
		h.dropTopic(t)
		yield() // releasing after a pause appends
	}
	if n := len(h.lingering) - h.lingerHead; n == 0 || h.lingerHead > n {
		h.lingering = h.lingering[:copy(h.lingering, h.lingering[h.lingerHead:])]
		h.lingerHead = 0
	}
}

// dropTopic removes a topic that has neither subscribers nor history.
func (h *Hub) dropTopic(t *topic) {
	if t.special || t.dropped || t.nsubs > 0 || len(t.entries) > 0 {
		return
	}
	t.dropped = true
	h.lostSeq = max(h.lostSeq, t.floor)
	delete(h.topics, t.name)
	h.names.remove(t.name)
}

// Stats is a snapshot of the hub's size.
type Stats struct {
	Subscribers   int
	Topics        int
	Published     int64
	HistoryEvents int
	HistoryBytes  int64
	LastSeq       uint64
}

// Stats returns a snapshot, taking the hub's lock: for monitoring and the
// server's idle check (ten times a second), not for the hot path.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Stats{Subscribers: h.nsubs, Topics: len(h.topics), Published: h.published.Load(), LastSeq: h.seq}
	h.popReleased()
	s.HistoryEvents = h.ret.events
	s.HistoryBytes = h.ret.bytes
	return s
}

// SubscribedClients returns how many subscribers listen to exactly token
// ("*" subscribers are not counted, as in hasses).
func (h *Hub) SubscribedClients(token string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[token]; t != nil {
		return int(t.nsubs)
	}
	return 0
}
