package hub

import (
	"slices"
	"sort"
)

// topic is the log of events routed to one token (or one of the two special
// topics). Its entries are the history; live subscribers read them too.
type topic struct {
	name    string
	special bool
	dropped bool // out of h.topics: a queued reference is stale
	queued  bool // in the hub's trims.queued
	nsubs   int32

	entries []entry // retained events, oldest first
	base    uint64  // absolute index of entries[0]
	total   int64   // bytes ever appended: the stream offset of the next event
	// floor is the highest sequence number this topic may have lost (trimmed
	// or published before the topic existed). A replay from a cursor below it
	// would have a hole.
	floor uint64
	// lastSeq is the newest event appended, so that a publication selecting
	// the topic through several targets appends it once.
	lastSeq uint64
	// hist is the absolute index of the oldest entry that is history: the
	// count and size bounds hold from the moment an event is published,
	// while older entries may stay until live subscribers have them.
	hist uint64

	// counted is head() at the last TopTokens walk, so the walk can rank
	// topics by the events they received since.
	counted uint64

	// subs has an entry for each owner with subscribers reading this topic
	// (in no order; found by a linear scan, as a topic is mostly read from
	// one or two owners), and for an owner that still has the topic in its
	// dirty list: a topic costs nothing per owner that does not read it.
	subs []ownerSubs

	links nameLinks // in the hub's names

	// own1 and ref1 hold subs and its first refs while a topic has one
	// owner and one subscriber, as most per-user topics do: a new topic is
	// then one allocation, which a connect storm of 64 new tokens per
	// stream makes by the hundred thousand.
	own1 [1]ownerSubs
	ref1 [1]subRef
}

// ownerSubs is one owner's subscribers reading a topic.
type ownerSubs struct {
	owner int32 // Owner.idx
	dirty bool  // the topic is in the owner's dirty list
	refs  []subRef
}

type entry struct {
	ev  *Event
	off int64 // stream offset of the event's first byte
}

// subRef names one subscription: subscriber s reads this topic as its
// topics[i].
type subRef struct {
	s *Sub
	i int
}

// ownerEntry returns the index in t.subs of owner o's entry, or -1.
func (t *topic) ownerEntry(o int) int {
	for k := range t.subs {
		if int(t.subs[k].owner) == o {
			return k
		}
	}
	return -1
}

// dropOwner removes t.subs[k], which has no subscribers and is not dirty.
func (t *topic) dropOwner(k int) {
	last := len(t.subs) - 1
	t.subs[k] = t.subs[last]
	t.subs[last] = ownerSubs{}
	t.subs = t.subs[:last]
	if last == 0 {
		t.subs = nil // a topic without subscribers holds nothing per owner
	}
}

// addOwner appends an entry for owner o to t.subs and returns its index.
func (t *topic) addOwner(o int) int {
	if t.subs == nil {
		t.subs = t.own1[:0]
	}
	appendInline(&t.subs, &t.own1, ownerSubs{owner: int32(o)})
	return len(t.subs) - 1
}

// addRef appends r to ow, one of t's owner entries.
func (t *topic) addRef(ow *ownerSubs, r subRef) {
	if ow.refs == nil && t.ref1Free() {
		ow.refs = t.ref1[:0]
	}
	appendInline(&ow.refs, &t.ref1, r)
}

// ref1Free reports whether no owner entry's refs are in t.ref1.
func (t *topic) ref1Free() bool {
	for k := range t.subs {
		if inArray(t.subs[k].refs, &t.ref1) {
			return false
		}
	}
	return true
}

// appendInline appends v to *s, which may live in the one-element array
// inline: when the append moves it out, inline is cleared, so that it
// keeps no stale references.
func appendInline[T any](s *[]T, inline *[1]T, v T) {
	was := inArray(*s, inline)
	*s = append(*s, v)
	if was && !inArray(*s, inline) {
		var zero T
		inline[0] = zero
	}
}

// inArray reports whether s's backing array is a.
func inArray[T any](s []T, a *[1]T) bool {
	return cap(s) > 0 && &s[:1][0] == &a[0]
}

// head is the absolute index one past the newest entry.
func (t *topic) head() uint64 { return t.base + uint64(len(t.entries)) }

// retained is the number of bytes the topic keeps.
func (t *topic) retained() int64 {
	if len(t.entries) == 0 {
		return 0
	}
	return t.total - t.entries[0].off
}

// push appends ev and applies the history's count and size bounds. hardCap
// bounds the retained bytes whatever the live subscribers still need:
// anyone that far behind is past the lag limit.
func (t *topic) push(ev *Event, cfg *Config, hardCap int64, ret *retention) {
	t.lastSeq = ev.Seq
	t.entries = append(t.entries, entry{ev: ev, off: t.total})
	t.total += ev.size()
	ev.topics = append(ev.topics, t)
	for len(t.entries) > 1 && t.retained() > hardCap {
		t.dropFront(1, ret)
	}
	for t.hist < t.head() && (t.head()-t.hist > uint64(max(cfg.HistoryCount, 0)) ||
		t.total-t.entries[t.hist-t.base].off > cfg.HistoryBytes) {
		t.hist++
	}
}

// replayFloor is the newest sequence number a replay from topic t
// cannot offer: trimmed, published before the topic existed, out of the
// history bounds, or lost in a cluster reset. Called with h.mu held.
func (h *Hub) replayFloor(t *topic) uint64 {
	floor := max(t.floor, h.resetFloor)
	if t.hist > t.base {
		return max(floor, t.entries[t.hist-1-t.base].ev.Seq)
	}
	return floor
}

// dropFront forgets the n oldest entries; ret counts the events no topic
// holds any more.
func (t *topic) dropFront(n int, ret *retention) {
	if n <= 0 {
		return
	}
	t.floor = max(t.floor, t.entries[n-1].ev.Seq)
	for _, e := range t.entries[:n] {
		e.ev.topics = slices.DeleteFunc(e.ev.topics, func(x *topic) bool { return x == t })
		if len(e.ev.topics) == 0 {
			ret.released(e.ev)
		}
	}
	clear(t.entries[:n])
	t.entries = t.entries[n:]
	t.base += uint64(n)
	t.hist = max(t.hist, t.base)
	// Give the backing array back once most of it is dead.
	if cap(t.entries) > 64 && len(t.entries) < cap(t.entries)/4 {
		t.entries = append([]entry(nil), t.entries...)
	}
}

// dropThrough forgets the entries up to sequence number seq.
func (t *topic) dropThrough(seq uint64, ret *retention) {
	n := 0
	for n < len(t.entries) && t.entries[n].ev.Seq <= seq {
		n++
	}
	t.dropFront(n, ret)
}

// after returns the absolute index of the first entry with a sequence number
// above seq.
func (t *topic) after(seq uint64) uint64 {
	i := sort.Search(len(t.entries), func(i int) bool { return t.entries[i].ev.Seq > seq })
	return t.base + uint64(i)
}

// trim applies the history bounds, but never drops an event that a live
// subscriber has yet to receive (the hard cap in push bounds that). It
// drops at most limit entries (0: no limit) and reports how many it
// dropped and whether more are due.
func (t *topic) trim(cfg *Config, now int64, limit int, ret *retention) (dropped int, more bool) {
	keep := t.head()
	for _, ow := range t.subs {
		for _, r := range ow.refs {
			keep = min(keep, r.s.topics[r.i].next)
		}
	}
	n := 0
	for n < len(t.entries) && t.base+uint64(n) < keep {
		if t.base+uint64(n) >= t.hist && now-t.entries[n].ev.at <= int64(cfg.HistoryAge) {
			break
		}
		if n == limit && limit > 0 {
			more = true
			break
		}
		n++
	}
	t.dropFront(n, ret)
	return n, more
}

func (t *topic) addSub(o int, s *Sub, i int) {
	k := t.ownerEntry(o)
	if k < 0 {
		k = t.addOwner(o)
	}
	ow := &t.subs[k]
	s.topics[i].slot = int32(len(ow.refs))
	t.addRef(ow, subRef{s: s, i: i})
	t.nsubs++
}

func (t *topic) removeSub(o *Owner, s *Sub, i int) {
	k := t.ownerEntry(o.idx)
	ow := &t.subs[k]
	list := ow.refs
	at := s.topics[i].slot
	last := int32(len(list) - 1)
	move := func(from, to int32) {
		if from != to {
			list[to] = list[from]
			list[to].s.topics[list[to].i].slot = to
		}
	}
	if o.scanning == t && at < o.scanned {
		// A Collect paused after gathering list[:o.scanned]: the last
		// gathered one fills the hole, and the last one, which it has yet
		// to see, takes that one's place, still ahead of it.
		o.scanned--
		move(o.scanned, at)
		at = o.scanned
	}
	move(last, at)
	list[last] = subRef{}
	ow.refs = list[:last]
	t.nsubs--
	if last == 0 {
		// The owner's last subscriber: its entry goes, unless the topic
		// is still in the owner's dirty list (Collect drops it then).
		ow.refs = nil
		if !ow.dirty {
			t.dropOwner(k)
		}
	}
}
