package hub

import (
	"math/bits"
	"runtime"
	"time"

	"github.com/hasses-go/hasses/internal/sse"
)

// Sub is one stream's subscription. Apart from ID, Conn and Text, its
// fields belong to the owner's goroutine and to the hub's lock. Tens of
// thousands live at once: it is kept small (a size class; TestSubSize),
// and the requested tokens are not kept, as its topics name them
// (Hub.Tokens).
type Sub struct {
	// Collect touches only the first 16 bytes of each stream it gathers:
	// one cache line.
	queued bool // in the owner's current Collect result
	ended  bool // received a disconnection, event edge: its last
	// Text, set by the owner before the first Fill, makes Fill hand out the
	// events' SSE text; by default it hands out HTTP/1.1 chunks.
	Text bool
	// partOff is where the unwritten rest of event partEv begins in its
	// frame (the event with sequence number cursor), when partEv is set.
	partOff uint32
	// pend marks the topics that may have entries after s's cursor (h.mu):
	// bit i for topics[i], bit 63 for topics[63:] together. Every entry
	// up to owner.upto after the cursor is in a marked topic, so a fill
	// need only look at those (see Collect). All ones: look at every topic.
	pend uint64

	ID   string // client id from the subscribe URL, for exclusion
	Conn any    // the owner's per-connection state

	owner  *Owner
	topics []subTopic

	cursor uint64 // sequence number of the last event taken
	partEv *Event // the event with sequence cursor, when partly written

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
	// mark, in topics[0] (where a field costs nothing: it was padding),
	// is the last publication count that counted the stream as a
	// receiver (h.mu, Hub.nextMark).
	mark uint32
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

	s.pend = allTopics // no Collect has seen it yet
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
	if replay != ReplayUnknown && h.pendingOver(s, nil, s.topicsIn(allTopics, h.ix[:0]), h.cfg.MaxLag) {
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
		h.releaseTopic(t)
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
//
// It marks each gathered subscriber's dirty topics (Sub.pend), so that a
// fill looks only at the topics with news. Once it returns, every event
// up to the newest at its start (o.upto) that a stream of o has yet to
// take is in a marked topic: an event published before a topic's turn is
// marked with it; one published during a pause to a topic already done
// makes the topic dirty again. A fill that uses the marks delivers events
// up to o.upto only, since a later event may be in a topic not marked yet:
// delivering it would move the cursor past an earlier one.
func (h *Hub) Collect(o *Owner, dst []*Sub) []*Sub {
	h.mu.Lock()
	upto := h.seq
	rewake := false
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
		if t.lastSeq > upto {
			// Published to during a pause, before its turn: the marks set
			// now cover that event, but a fill bounded by upto does not
			// deliver it, so the topic stays dirty for the next Collect.
			if len(o.dirty) == 0 {
				o.wakeReq.Store(true)
				rewake = true
			}
			o.dirty = append(o.dirty, t)
		} else {
			t.subs[k].dirty = false
		}
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
				s := r.s
				s.pend |= topicBit(r.i)
				if !s.queued {
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
	o.upto = max(o.upto, upto)
	clear(work)
	o.spare = work[:0]
	h.mu.Unlock()
	if rewake {
		h.wakeOwners()
	}
	for _, s := range dst {
		s.queued = false
	}
	return dst
}

// fewTopics is the most topics a stream may read for its fills to look at
// all of them, and so take the events published since its owner's last
// Collect too: cheap for a few topics, and in a long pass (a broadcast to
// thousands) the streams near its end get what was published meanwhile
// instead of waiting for the next pass.
const fewTopics = 4

// allTopics in Sub.pend marks every topic.
const allTopics = ^uint64(0)

// topicBit is the bit of Sub.pend that marks topics[i].
func topicBit(i int) uint64 { return 1 << min(i, 63) }

// topicsIn appends to dst the indices of s's topics that mask marks.
func (s *Sub) topicsIn(mask uint64, dst []int32) []int32 {
	n := len(s.topics)
	for m := mask &^ (1 << 63); m != 0; m &= m - 1 {
		i := bits.TrailingZeros64(m)
		if i >= n {
			break
		}
		dst = append(dst, int32(i))
	}
	if mask&(1<<63) != 0 {
		for i := 63; i < n; i++ {
			dst = append(dst, int32(i))
		}
	}
	return dst
}

// Waiting returns how many streams of o have events its next Collect
// will gather, counting no further than past limit: an owner in the
// middle of a long pass asks it to decide whether to collect at once.
func (h *Hub) Waiting(o *Owner, limit int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range o.dirty {
		if k := t.ownerEntry(o.idx); k >= 0 {
			if n += len(t.subs[k].refs); n > limit {
				break
			}
		}
	}
	return n
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
	ev   *Event // nil for an event skipped by exclusion
	buf  []byte // ev's frame from off on; empty for a skipped event
	off  int
	cont bool // the rest of an event begun in an earlier write
}

func (b *Batch) reset() {
	clear(b.Bufs)
	b.Bufs = b.Bufs[:0]
	clear(b.items)
	b.items = b.items[:0]
	b.Bytes = 0
}

func (b *Batch) add(seq uint64, ev *Event, buf []byte, off int, cont bool) {
	b.items = append(b.items, item{seq: seq, ev: ev, buf: buf, off: off, cont: cont})
	if len(buf) > 0 {
		b.Bufs = append(b.Bufs, buf)
		b.Bytes += len(buf)
	}
}

// Fill puts into b the pending data of s, at most maxBufs buffers and about
// maxBytes bytes. It reports lagged when s is too far behind (over the lag
// limit, or events it had not received were dropped): the owner must then
// close the stream. Events published since the last Collect of s's owner
// may wait for the next one (the owner is woken for them).
func (h *Hub) Fill(s *Sub, b *Batch, maxBufs, maxBytes int) (lagged bool) {
	return h.fill(s, b, maxBufs, maxBytes, ^uint64(0), false)
}

// LastSeq returns the sequence number of the newest event: an ending
// stream takes the events up to it (FillUntil), and no later ones.
func (h *Hub) LastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// FillUntil is Fill for events up to sequence number last, all of them:
// when it puts nothing into b, s has every event up to last.
func (h *Hub) FillUntil(s *Sub, b *Batch, maxBufs, maxBytes int, last uint64) (lagged bool) {
	return h.fill(s, b, maxBufs, maxBytes, last, true)
}

// fill is Fill (every, false: the events the marks cover) and FillUntil
// (every: all events up to last).
func (h *Hub) fill(s *Sub, b *Batch, maxBufs, maxBytes int, last uint64, every bool) (lagged bool) {
	b.reset()
	if ev := s.partEv; ev != nil {
		b.add(s.cursor, ev, s.frame(ev)[s.partOff:], int(s.partOff), true)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.topics == nil {
		return false
	}
	// The marked topics hold every event after the cursor up to the
	// owner's last Collect; later ones may be in a topic not marked yet.
	mask := s.pend
	switch {
	case s.ended:
		if s.cursor >= s.edge {
			return false
		}
		// A write stopped before its disconnection: take it again (rare).
		mask, last = allTopics, s.edge
	case mask != allTopics && last > s.owner.upto:
		if every || len(s.topics) <= fewTopics {
			mask = allTopics
		} else {
			last = s.owner.upto
		}
	}
	ix, lost := h.advance(s, mask, h.ix[:0])
	h.ix = ix
	if lost || h.pendingOver(s, nil, ix, h.cfg.MaxLag) {
		return true
	}
	// Merge the topics' logs by sequence number; an event routed to several
	// of s's topics is taken once.
	idx := h.pos[:0]
	for _, i := range ix {
		idx = append(idx, s.topics[i].next)
	}
	h.pos = idx
	for len(b.Bufs) < maxBufs && b.Bytes < maxBytes {
		var ev *Event
		for j, i := range ix {
			t := s.topics[i].t
			if idx[j] < t.head() {
				if e := t.entries[idx[j]-t.base].ev; ev == nil || e.Seq < ev.Seq {
					ev = e
				}
			}
		}
		if ev == nil || ev.Seq > last {
			break
		}
		for j, i := range ix {
			if t := s.topics[i].t; idx[j] < t.head() && t.entries[idx[j]-t.base].ev == ev {
				idx[j]++
			}
		}
		if ev.Exclude != "" && ev.Exclude == s.ID {
			b.add(ev.Seq, nil, nil, 0, false)
			continue
		}
		if ev.end != nil {
			if ev.Seq < s.edge || ev.Seq == s.edge && !s.ended || !ev.end.matches(s) {
				b.add(ev.Seq, nil, nil, 0, false) // not this stream's
				continue
			}
			s.edge, s.ended = ev.Seq, true // its last event
			last = ev.Seq
		}
		b.add(ev.Seq, ev, s.frame(ev), 0, false)
	}
	return false
}

// frame is what s writes of ev: its SSE text, or its HTTP/1.1 chunk.
func (s *Sub) frame(ev *Event) []byte {
	if s.Text {
		return ev.Text()
	}
	return ev.Chunk()
}

// Lagging reports whether s is past the lag limit or has lost events. An
// owner checks it for streams that are blocked on a full socket, which Fill
// does not see.
func (h *Hub) Lagging(s *Sub) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.topics == nil {
		return false
	}
	ix, lost := h.advance(s, allTopics, h.ix[:0]) // rare: every topic
	h.ix = ix
	return lost || h.pendingOver(s, nil, ix, h.cfg.MaxLag)
}

// Cursor returns the sequence number of the last event s was given. Only
// the owner's goroutine may call it.
func (s *Sub) Cursor() uint64 { return s.cursor }

// Behind reports whether s, having been given the events up to cursor, is
// past the lag limit or has lost events. Unlike Lagging it changes nothing
// in s, so a watchdog may call it while the owner is blocked in a write
// (with a cursor the owner published before the write). It looks at every
// topic of s.
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
	ix := s.topicsIn(allTopics, h.ix[:0])
	h.ix = ix
	return h.pendingOver(s, next, ix, h.cfg.MaxLag)
}

// advance moves s's positions in the topics mask marks past its cursor,
// and marks in s.pend exactly those of them with entries left, which it
// appends to ix. lost reports that one of them dropped events s had not
// taken. Called with h.mu held.
func (h *Hub) advance(s *Sub, mask uint64, ix []int32) (_ []int32, lost bool) {
	ix = s.topicsIn(mask, ix)
	left := uint64(0)
	j := 0
	for _, i := range ix {
		st := &s.topics[i]
		t, n := st.t, st.next
		if n < t.base {
			if t.floor > s.cursor {
				return ix, true
			}
			n = t.base
		}
		for n < t.head() && t.entries[n-t.base].ev.Seq <= s.cursor {
			n++
		}
		st.next = n
		if n < t.head() {
			left |= topicBit(int(i))
			ix[j] = i
			j++
		}
	}
	s.pend = s.pend&^mask | left
	return ix[:j], false
}

// pendingOver reports whether the events s has yet to receive from its
// topics ix, from the per-topic positions next (nil: s's own; else indexed
// like s.topics), weigh more than limit bytes. An event routed to several
// of s's topics is written once, so it counts once. The sum over topics,
// from their stream offsets, is an upper bound found in O(topics): only
// when it is over the limit are the distinct events counted, merging the
// topics by sequence number until the count passes the limit. Called with
// h.mu held.
func (h *Hub) pendingOver(s *Sub, next []uint64, ix []int32, limit int64) bool {
	at := func(i int32) uint64 {
		if next == nil {
			return s.topics[i].next
		}
		return next[i]
	}
	var sum int64
	for _, i := range ix {
		if t, n := s.topics[i].t, at(i); n < t.head() {
			sum += t.total - t.entries[n-t.base].off
		}
	}
	if sum <= limit || len(ix) == 1 {
		return sum > limit
	}
	idx := make([]uint64, 0, len(ix)) // rare: only past the bound
	for _, i := range ix {
		idx = append(idx, at(i))
	}
	var distinct int64
	for {
		var ev *Event
		for j, i := range ix {
			if t := s.topics[i].t; idx[j] < t.head() {
				if e := t.entries[idx[j]-t.base].ev; ev == nil || e.Seq < ev.Seq {
					ev = e
				}
			}
		}
		if ev == nil {
			return false
		}
		for j, i := range ix {
			if t := s.topics[i].t; idx[j] < t.head() && t.entries[idx[j]-t.base].ev == ev {
				idx[j]++
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
				s.partEv, s.partOff = it.ev, uint32(it.off+n)
			}
			break
		}
		n -= len(it.buf)
		s.cursor = it.seq
		s.partEv, s.partOff = nil, 0
		if len(it.buf) > 0 {
			delivered++
		}
	}
	s.owner.delivered.Add(int64(delivered))
	return delivered
}

// Pending reports whether s is in the middle of an event: nothing else may
// be written to the connection until the event is complete.
func (s *Sub) Pending() bool { return s.partEv != nil }
