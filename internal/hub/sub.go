package hub

import (
	"runtime"
	"time"

	"github.com/hasses-go/hasses/internal/sse"
)

// Sub is one stream's subscription. Apart from ID and Conn, its fields
// belong to the owner's goroutine and to the hub's lock. Tens of thousands
// live at once: it is kept within 128 bytes (a size class), and the
// requested tokens are not kept, as its topics name them (Hub.Tokens).
type Sub struct {
	ID   string // client id from the subscribe URL, for exclusion
	Conn any    // the owner's per-connection state
	// Text, set by the owner before the first Fill, makes Fill hand out the
	// events' SSE text; by default it hands out HTTP/1.1 chunks.
	Text bool

	queued bool   // in the owner's current Collect result
	ended  bool   // received a disconnection, event edge: its last
	mark   uint32 // the last publication count that counted s as a receiver (h.mu, Hub.nextMark)

	owner  *Owner
	topics []subTopic

	cursor  uint64 // sequence number of the last event taken
	partial []byte // unwritten tail of the event with sequence cursor

	user string // who it authenticated as (h.mu), for presence and disconnections
	// edge is, until the stream receives a disconnection (ended), the
	// newest event when it subscribed: older disconnections are not its;
	// then the disconnection it received, its last event. One field, as
	// the first is not needed once the second is known.
	edge uint64
}

// subTopic is a topic a stream reads, with the stream's place in it.
type subTopic struct {
	t    *topic
	next uint64 // absolute index of the first entry after the cursor
	slot int32  // index in the topic's subscribers of the stream's owner
}

// clusterAhead is how far ahead of this node's newest event a cluster
// client's Last-Event-ID may be (events another node already delivered).
const clusterAhead = 1 << 16

// Replay says what became of a requested Last-Event-ID.
type Replay int

const (
	ReplayNone     Replay = iota // no id given: the stream starts live
	ReplayComplete               // every event after the id will be sent
	ReplayGap                    // the id is known but events after it are gone
	ReplayUnknown                // the id is from another server instance or malformed
)

func (r Replay) String() string {
	switch r {
	case ReplayComplete:
		return "complete"
	case ReplayGap:
		return "gap"
	case ReplayUnknown:
		return "unknown"
	}
	return "none"
}

// Subscribe registers a stream of owner o on tokens ("*" meaning every
// token). With lastID non-empty, the stream first receives the retained
// events after that id. Subscribe is called before the response head is
// written, so a message published the moment the client sees the head is
// not missed.
func (h *Hub) Subscribe(o *Owner, tokens []string, id, lastID string, conn any) (*Sub, Replay) {
	s, replay, _ := h.Open(o, SubRequest{Tokens: tokens, ID: id, LastID: lastID, Conn: conn})
	return s, replay
}

// SubRequest is a stream to subscribe.
type SubRequest struct {
	Tokens []string // as requested; "*" means every token
	ID     string   // client id ("id=" of the subscribe URL); may be empty
	User   string   // who it authenticated as (a JWT's "sub"); may be empty
	LastID string   // Last-Event-ID: replay the retained events after it
	Conn   any      // the owner's per-connection state
}

// Open is Subscribe with the stream's user. On presence tokens the stream
// counts as its client's (a join when it is the first), and snapshot is
// the hasses-presence event it should receive before any other: the
// members as of its cursor (nil when it is on no presence token, or
// resumes completely and so replays the joins and leaves it missed).
func (h *Hub) Open(o *Owner, r SubRequest) (s *Sub, replay Replay, snapshot []byte) {
	s = &Sub{ID: r.ID, Conn: r.Conn, owner: o, user: r.User}
	tokens, id, lastID := r.Tokens, r.ID, r.LastID
	h.mu.Lock()
	defer h.wakeOwners() // a join event
	defer h.mu.Unlock()
	star := false
	for _, tok := range tokens {
		if tok == "*" {
			star = true
		}
	}
	if star {
		s.topics = []subTopic{{t: h.all}}
		if len(tokens) != 1 {
			h.starTokens[s] = tokens // "*" with others: what Tokens reports
		}
	} else {
		s.topics = make([]subTopic, 1, len(tokens)+1)
		s.topics[0].t = h.bcast
		for _, tok := range tokens {
			s.topics = append(s.topics, subTopic{t: h.topic(tok)})
		}
	}

	replay = ReplayNone
	s.cursor = h.seq
	s.edge = h.seq
	if lastID != "" {
		replay = ReplayUnknown
		// In a cluster, a client may reconnect to this node before it has
		// applied the client's last event: an id of this epoch a little
		// ahead is complete too, and the events up to it are skipped when
		// they arrive (a client can only make itself miss events this way).
		ahead := uint64(0)
		if h.replica {
			ahead = clusterAhead
		}
		if lid, ok := sse.ParseID(lastID); ok && lid.Epoch == h.cfg.Epoch && lid.Seq <= h.seq+ahead {
			replay = ReplayComplete
			var lost uint64
			for _, st := range s.topics {
				lost = max(lost, h.replayFloor(st.t))
			}
			s.cursor = lid.Seq
			if lost > lid.Seq {
				// The stream resumes after the newest event it may have
				// lost: CursorID, sent with the reset, is then an id that
				// replays completely if the client reconnects at once.
				replay = ReplayGap
				s.cursor = lost
			}
		}
	}
	for i := range s.topics {
		s.topics[i].next = s.topics[i].t.after(s.cursor)
	}
	if replay != ReplayUnknown && h.pendingOver(s, nil, h.cfg.MaxLag) {
		// A replay the stream would be cut for before its first write
		// (and again on every reconnect): answer it as a gap, and the
		// stream starts live.
		replay = ReplayGap
		s.cursor = h.seq
		for i := range s.topics {
			s.topics[i].next = s.topics[i].t.after(s.cursor)
		}
	}
	for i := range s.topics {
		s.topics[i].t.addSub(o.idx, s, i)
	}
	h.nsubs++
	if id != "" {
		h.ids[id]++
	}
	if replay != ReplayComplete {
		snapshot = h.snapshot(tokens)
	}
	h.presenceOpened(s)
	return s, replay, snapshot
}

// CursorID returns the id of the last event s has been given (or skipped):
// the id a client should resume from. Before the epoch's first event it is
// "<epoch>-0", which resumes from the start of the epoch. Only the owner's
// goroutine may call it.
func (h *Hub) CursorID(s *Sub) string { return h.CursorEventID(s).String() }

// CursorEventID is CursorID as an sse.ID, to be appended without making a
// string.
func (h *Hub) CursorEventID(s *Sub) sse.ID {
	h.mu.Lock() // a cluster's Reset changes the epoch
	epoch := h.cfg.Epoch
	h.mu.Unlock()
	return sse.ID{Epoch: epoch, Seq: s.cursor}
}

// Tokens returns the tokens s subscribed to, as requested ("*" meaning
// every token); nil once it is unsubscribed.
func (h *Hub) Tokens(s *Sub) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case s.topics == nil:
		return nil
	case s.topics[0].t == h.all:
		if toks, ok := h.starTokens[s]; ok {
			return toks
		}
		return []string{"*"}
	}
	toks := make([]string, 0, len(s.topics)-1)
	for _, st := range s.topics[1:] { // after the "*" publications
		toks = append(toks, st.t.name)
	}
	return toks
}

// Unsubscribe removes s. Its topics keep their history.
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.wakeOwners() // a leave event, without a grace period
	defer h.mu.Unlock()
	if s.topics == nil {
		return
	}
	h.presenceClosed(s, s.topics)
	for i := range s.topics {
		t := s.topics[i].t
		t.removeSub(s.owner, s, i)
		h.dropTopic(t)
	}
	s.topics = nil
	delete(h.starTokens, s)
	h.nsubs--
	if s.ID != "" {
		if h.ids[s.ID]--; h.ids[s.ID] == 0 {
			delete(h.ids, s.ID)
		}
	}
}

// Collect looks at the clock after every collectCheck subscribers (or
// topics) and lets go of the lock once it has held it for
// defaultCollectHold: a pause costs a few µs (another thread may take the
// goroutine), so it pauses only when a hold would otherwise be long.
const collectCheck = 1024

// defaultCollectHold is the longest Collect holds the hub's lock at a
// time, about: it looks at the clock every collectCheck subscribers (0.13
// ms when each is a cache miss, as at a million streams), first after the
// first collectCheck.
const defaultCollectHold = 500 * time.Microsecond

// Collect appends to dst the subscribers of o that may have new events, and
// resets o's dirty set. Only o's goroutine may call it.
//
// It lets go of the lock now and then (collectHold), so that a broadcast
// to half a million streams of one owner does not hold up publishing. A
// topic made dirty meanwhile waits for the next Collect (the owner is
// woken for it); subscribers that come meanwhile may be gathered too; one
// that goes may still be in dst, as it may once Collect returns.
func (h *Hub) Collect(o *Owner, dst []*Sub) []*Sub {
	h.mu.Lock()
	var held time.Time // read at the first check: most Collects never get there
	spent := 0
	// check pauses if the lock has been held long enough.
	check := func() {
		if spent < collectCheck {
			return
		}
		spent = 0
		switch now := time.Now(); {
		case held.IsZero():
			held = now
		case now.Sub(held) >= h.collectHold:
			h.collectPause()
			held = time.Now()
		}
	}
	work := o.dirty
	o.dirty = o.spare[:0]
	for _, t := range work {
		k := t.ownerEntry(o.idx)
		t.subs[k].dirty = false
		o.scanning, o.scanned = t, 0
		for {
			// Found again after a pause: other owners' entries come and go.
			if k = t.ownerEntry(o.idx); k < 0 {
				break // its last subscriber left during a pause
			}
			ow := &t.subs[k]
			from := int(o.scanned)
			end := min(len(ow.refs), from+collectCheck-spent)
			for _, r := range ow.refs[from:end] {
				if s := r.s; !s.queued {
					s.queued = true
					dst = append(dst, s)
				}
			}
			spent += end - from
			o.scanned = int32(end)
			done := end == len(ow.refs)
			if done && len(ow.refs) == 0 && !ow.dirty { // its last subscriber left
				t.dropOwner(k)
			}
			check()
			if done {
				break
			}
		}
		spent++
		check()
	}
	o.scanning = nil
	clear(work)
	o.spare = work[:0]
	h.mu.Unlock()
	for _, s := range dst {
		s.queued = false
	}
	return dst
}

// collectPause lets publishers take the lock between two chunks of a
// Collect. Called with h.mu held.
func (h *Hub) collectPause() {
	h.mu.Unlock()
	if h.testPause != nil {
		h.testPause()
	}
	runtime.Gosched()
	h.mu.Lock()
}

// Batch is the data for one write to a stream: Bufs are slices of immutable
// event frames, safe to use after Fill returns.
type Batch struct {
	Bufs  [][]byte
	Bytes int
	items []item
}

type item struct {
	seq  uint64
	buf  []byte // empty for an event skipped by exclusion
	cont bool   // the rest of an event begun in an earlier write
}

func (b *Batch) reset() {
	clear(b.Bufs)
	b.Bufs = b.Bufs[:0]
	clear(b.items)
	b.items = b.items[:0]
	b.Bytes = 0
}

func (b *Batch) add(seq uint64, buf []byte, cont bool) {
	b.items = append(b.items, item{seq: seq, buf: buf, cont: cont})
	if len(buf) > 0 {
		b.Bufs = append(b.Bufs, buf)
		b.Bytes += len(buf)
	}
}

// Fill puts into b the pending data of s, at most maxBufs buffers and about
// maxBytes bytes. It reports lagged when s is too far behind (over the lag
// limit, or events it had not received were dropped): the owner must then
// close the stream.
func (h *Hub) Fill(s *Sub, b *Batch, maxBufs, maxBytes int) (lagged bool) {
	return h.FillUntil(s, b, maxBufs, maxBytes, ^uint64(0))
}

// LastSeq returns the sequence number of the newest event: an ending
// stream takes the events up to it (FillUntil), and no later ones.
func (h *Hub) LastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// FillUntil is Fill for events up to sequence number last.
func (h *Hub) FillUntil(s *Sub, b *Batch, maxBufs, maxBytes int, last uint64) (lagged bool) {
	b.reset()
	if len(s.partial) > 0 {
		b.add(s.cursor, s.partial, true)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.topics == nil || s.ended {
		return false
	}
	if h.lagging(s) {
		return true
	}
	// Merge the topics' logs by sequence number; an event routed to several
	// of s's topics is taken once.
	var pos [8]uint64
	idx := pos[:0]
	if len(s.topics) > len(pos) {
		idx = make([]uint64, 0, len(s.topics))
	}
	for _, st := range s.topics {
		idx = append(idx, st.next)
	}
	for len(b.Bufs) < maxBufs && b.Bytes < maxBytes {
		var ev *Event
		for i, st := range s.topics {
			if t := st.t; idx[i] < t.head() {
				if e := t.entries[idx[i]-t.base].ev; ev == nil || e.Seq < ev.Seq {
					ev = e
				}
			}
		}
		if ev == nil || ev.Seq > last {
			break
		}
		for i, st := range s.topics {
			if t := st.t; idx[i] < t.head() && t.entries[idx[i]-t.base].ev == ev {
				idx[i]++
			}
		}
		if ev.Exclude != "" && ev.Exclude == s.ID {
			b.add(ev.Seq, nil, false)
			continue
		}
		if ev.end != nil {
			if ev.Seq <= s.edge || !ev.end.matches(s) {
				b.add(ev.Seq, nil, false) // not this stream's
				continue
			}
			s.edge, s.ended = ev.Seq, true // its last event
			last = ev.Seq
		}
		if s.Text {
			b.add(ev.Seq, ev.Text(), false)
		} else {
			b.add(ev.Seq, ev.Chunk(), false)
		}
	}
	return false
}

// Lagging reports whether s is past the lag limit or has lost events. An
// owner checks it for streams that are blocked on a full socket, which Fill
// does not see.
func (h *Hub) Lagging(s *Sub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return s.topics != nil && h.lagging(s)
}

// Cursor returns the sequence number of the last event s was given. Only
// the owner's goroutine may call it.
func (s *Sub) Cursor() uint64 { return s.cursor }

// Behind reports whether s, having been given the events up to cursor, is
// past the lag limit or has lost events. Unlike Lagging it changes nothing
// in s, so a watchdog may call it while the owner is blocked in a write
// (with a cursor the owner published before the write).
func (h *Hub) Behind(s *Sub, cursor uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	var pos [8]uint64
	next := pos[:0]
	for _, st := range s.topics { // nil once unsubscribed
		if st.t.floor > cursor { // dropped after the stream subscribed
			return true
		}
		next = append(next, st.t.after(cursor))
	}
	return h.pendingOver(s, next, h.cfg.MaxLag)
}

// lagging moves s's per-topic positions past its cursor and reports
// whether it lost events or what is pending is over the lag limit. Called
// with h.mu held.
func (h *Hub) lagging(s *Sub) bool {
	for i := range s.topics {
		t, n := s.topics[i].t, s.topics[i].next
		if n < t.base {
			if t.floor > s.cursor {
				return true
			}
			n = t.base
		}
		for n < t.head() && t.entries[n-t.base].ev.Seq <= s.cursor {
			n++
		}
		s.topics[i].next = n
	}
	return h.pendingOver(s, nil, h.cfg.MaxLag)
}

// pendingOver reports whether the events s has yet to receive from the
// per-topic positions next (nil: s's own) weigh more than limit bytes. An event routed to
// several of s's topics is written once, so it counts once. The sum over
// topics, from their stream offsets, is an upper bound found in O(topics):
// only when it is over the limit are the distinct events counted, merging
// the topics by sequence number until the count passes the limit. Called
// with h.mu held.
func (h *Hub) pendingOver(s *Sub, next []uint64, limit int64) bool {
	at := func(i int) uint64 {
		if next == nil {
			return s.topics[i].next
		}
		return next[i]
	}
	var sum int64
	for i, st := range s.topics {
		if t, n := st.t, at(i); n < t.head() {
			sum += t.total - t.entries[n-t.base].off
		}
	}
	if sum <= limit || len(s.topics) == 1 {
		return sum > limit
	}
	var pos [8]uint64
	idx := pos[:0]
	for i := range s.topics {
		idx = append(idx, at(i))
	}
	var distinct int64
	for {
		var ev *Event
		for i, st := range s.topics {
			if t := st.t; idx[i] < t.head() {
				if e := t.entries[idx[i]-t.base].ev; ev == nil || e.Seq < ev.Seq {
					ev = e
				}
			}
		}
		if ev == nil {
			return false
		}
		for i, st := range s.topics {
			if t := st.t; idx[i] < t.head() && t.entries[idx[i]-t.base].ev == ev {
				idx[i]++
			}
		}
		if ev.Exclude == "" || ev.Exclude != s.ID {
			if distinct += ev.size(); distinct > limit {
				return true
			}
		}
	}
}

// Wrote records that the first n bytes of b reached s's connection, and
// returns how many events were completed. Only the owner's goroutine may
// call it, after the Fill that produced b.
func (s *Sub) Wrote(b *Batch, n int) (delivered int) {
	for _, it := range b.items {
		if n < len(it.buf) {
			if n > 0 || it.cont {
				s.cursor = it.seq
				s.partial = it.buf[n:]
			}
			break
		}
		n -= len(it.buf)
		s.cursor = it.seq
		s.partial = nil
		if len(it.buf) > 0 {
			delivered++
		}
	}
	s.owner.delivered.Add(int64(delivered))
	return delivered
}

// Pending reports whether s is in the middle of an event: nothing else may
// be written to the connection until the event is complete.
func (s *Sub) Pending() bool { return len(s.partial) > 0 }
