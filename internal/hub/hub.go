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
	"errors"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/sse"
)

// Config bounds the history and the lag of slow subscribers.
type Config struct {
	// Epoch distinguishes this server instance's event ids from those of an
	// earlier run; zero means the start time in milliseconds.
	Epoch uint64
	// HistoryCount, HistoryBytes and HistoryAge bound the events each topic
	// keeps for replay once every live subscriber has received them.
	HistoryCount int
	HistoryBytes int64
	HistoryAge   time.Duration
	// MaxLag is how many bytes of events a subscriber may have pending before
	// it is disconnected as too slow.
	MaxLag int64
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// Defaults for Config's zero fields.
const (
	DefaultHistoryCount = 100
	DefaultHistoryBytes = 256 << 10
	DefaultHistoryAge   = time.Hour
	DefaultMaxLag       = 4 << 20
)

// Errors returned by Publish.
var (
	ErrEmptyTarget = errors.New("hub: empty target token")
	ErrBadEvent    = errors.New("hub: event name contains CR, LF or NUL")
)

// Event is one encoded publication. It is immutable once published.
type Event struct {
	Seq     uint64
	Frame   []byte // the complete chunk, as written to every receiver
	Exclude string // client id that must not receive it
	at      int64  // publication time, Unix nanoseconds
}

// Hub holds the topics and routes events to them. It is safe for concurrent
// use.
type Hub struct {
	cfg Config

	mu     sync.Mutex
	seq    uint64
	topics map[string]*topic
	names  []string // sorted keys of topics, for prefix routing
	all    *topic   // every event: read by "*" subscribers
	bcast  *topic   // events published to "*": read by every subscriber
	owners []*Owner
	nsubs  int
	idbuf  []byte
	enc    []byte
	// wakeMask has a bit for every owner that must be woken once h.mu is
	// released; owners are few (one per epoll loop and front end).
	wakeMask uint64
	// lostSeq is the newest event a topic created now may have missed: a
	// prefix publication that found no topic of that name, or the history of
	// a topic that was dropped. A new topic's floor starts there.
	lostSeq uint64

	published atomic.Int64
	// remote, when set, sequences publications instead of h.seq (cluster
	// mode; see cluster.go).
	remote func(Message) (Result, error)
}

// New returns a hub with cfg's zero fields set to the defaults.
func New(cfg Config) *Hub {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Epoch == 0 {
		cfg.Epoch = uint64(cfg.Now().UnixMilli())
	}
	if cfg.HistoryCount <= 0 {
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
	h := &Hub{cfg: cfg, topics: make(map[string]*topic)}
	h.all = &topic{name: "*all", special: true}
	h.bcast = &topic{name: "*", special: true}
	return h
}

// Owner drives a set of streams. Its wake function is called, without any
// hub lock held, when topics its subscribers read have new events; the owner
// then calls Collect from its own goroutine.
type Owner struct {
	hub       *Hub
	idx       int
	wakeFn    func()
	dirty     []*topic
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
	if len(h.owners) == 64 {
		panic("hub: more than 64 owners")
	}
	o := &Owner{hub: h, idx: len(h.owners), wakeFn: wake}
	h.owners = append(h.owners, o)
	h.all.grow(len(h.owners))
	h.bcast.grow(len(h.owners))
	return o
}

// Delivered returns how many events this owner's streams have received.
func (o *Owner) Delivered() int64 { return o.delivered.Load() }

// Publish encodes m once and routes it to every topic it targets. It returns
// the assigned id and how many subscribers the message was routed to. In a
// cluster (SetRemote) it hands the checked message to the cluster engine,
// which sequences it and brings it back through Apply.
func (h *Hub) Publish(m Message) (Result, error) {
	if err := check(m); err != nil {
		return Result{}, err
	}
	if h.remote != nil {
		return h.remote(m)
	}
	targets := m.Targets
	if len(targets) == 0 {
		targets = []string{m.Target}
	}
	now := h.cfg.Now().UnixNano()
	h.mu.Lock()
	h.seq++
	id, receivers := h.publishLocked(h.seq, now, targets, m)
	wake := h.wakeMask
	h.wakeMask = 0
	h.mu.Unlock()

	h.wakeOwners(wake)
	h.published.Add(1)
	return Result{ID: id.String(), Receivers: receivers}, nil
}

// check validates m.
func check(m Message) error {
	if len(m.Targets) == 0 && m.Target == "" {
		return ErrEmptyTarget
	}
	for _, t := range m.Targets {
		if t == "" {
			return ErrEmptyTarget
		}
	}
	if strings.ContainsAny(m.Event, "\r\n\x00") {
		return ErrBadEvent
	}
	return nil
}

// publishLocked encodes m as event seq (above h.seq's previous value,
// which the caller has set to seq) and appends it to its topics. Called
// with h.mu held.
func (h *Hub) publishLocked(seq uint64, now int64, targets []string, m Message) (sse.ID, int) {
	id := sse.ID{Epoch: h.cfg.Epoch, Seq: seq}
	h.idbuf = id.AppendTo(h.idbuf[:0])
	h.enc = sse.AppendEvent(h.enc[:0], h.idbuf, m.Event, m.Data)
	ev := &Event{Seq: seq, Frame: slices.Clone(h.enc), Exclude: m.Exclude, at: now}
	if cap(h.enc) > 1<<20 {
		h.enc = nil // do not pin one huge message's buffer
	}
	receivers, everyone := 0, false
	add := func(t *topic) {
		if t.lastSeq != ev.Seq { // a topic selected twice gets the event once
			h.append(t, ev)
			receivers += t.nsubs
		}
	}
	for _, target := range targets {
		switch {
		case target == "*":
			add(h.bcast)
			everyone = true
		case strings.Contains(target, "*"):
			prefix, _, _ := strings.Cut(target, "*")
			h.lostSeq = seq
			i, _ := slices.BinarySearch(h.names, prefix)
			for ; i < len(h.names) && strings.HasPrefix(h.names[i], prefix); i++ {
				add(h.topics[h.names[i]])
			}
		default:
			add(h.topic(target))
		}
	}
	add(h.all)
	if everyone {
		receivers = h.nsubs
	}
	return id, receivers
}

// wakeOwners calls the wake function of every owner in mask. The owners
// slice is fixed before the first subscription, so it is read without h.mu.
func (h *Hub) wakeOwners(mask uint64) {
	for mask != 0 {
		h.owners[bits.TrailingZeros64(mask)].wakeFn()
		mask &= mask - 1
	}
}

// append adds ev to t and marks t dirty for every owner with subscribers on
// it. It is called with h.mu held.
func (h *Hub) append(t *topic, ev *Event) {
	t.push(ev, h.cfg.HistoryBytes+h.cfg.MaxLag)
	for oi, subs := range t.subs {
		if len(subs) == 0 || t.dirty[oi] {
			continue
		}
		t.dirty[oi] = true
		o := h.owners[oi]
		if len(o.dirty) == 0 {
			h.wakeMask |= 1 << oi
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
	t.grow(len(h.owners))
	h.topics[name] = t
	i, _ := slices.BinarySearch(h.names, name)
	h.names = slices.Insert(h.names, i, name)
	return t
}

// dropTopic removes a topic that has neither subscribers nor history.
func (h *Hub) dropTopic(t *topic) {
	if t.special || t.nsubs > 0 || len(t.entries) > 0 {
		return
	}
	h.lostSeq = max(h.lostSeq, t.floor)
	delete(h.topics, t.name)
	if i, ok := slices.BinarySearch(h.names, t.name); ok {
		h.names = slices.Delete(h.names, i, i+1)
	}
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

// Stats returns a snapshot; it walks the topics, so it is for monitoring,
// not for the hot path.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Stats{Subscribers: h.nsubs, Topics: len(h.topics), Published: h.published.Load(), LastSeq: h.seq}
	s.HistoryEvents = len(h.all.entries)
	s.HistoryBytes = h.all.retained()
	return s
}

// SubscribedClients returns how many subscribers listen to exactly token
// ("*" subscribers are not counted, as in hasses).
func (h *Hub) SubscribedClients(token string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[token]; t != nil {
		return t.nsubs
	}
	return 0
}
