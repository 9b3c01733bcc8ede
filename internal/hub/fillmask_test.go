package hub

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// markedStream is a test stream on many tokens of its own and the shared
// "room", with the events it must receive.
type markedStream struct {
	r      *reader
	tokens []string
	want   []string
	kicked bool // its disconnection was published: nothing after it
}

// A fill looks only at the topics Collect marked. Streams on 70 tokens
// (past the 63 with a bit of their own) get exactly every event of their
// tokens, in order, once, while events are published during Collect's
// pauses (to topics it has done and topics it has yet to do) and between
// Collect and the fills, fills take one or two events at a time, writes
// stop mid-event, events go to several tokens of a stream at once, to
// "*", excluding a stream, or disconnecting one.
func TestFillMarksEveryEventInOrder(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { fillMarksRun(t, seed) })
	}
}

func fillMarksRun(t *testing.T, seed uint64) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	h.collectHold = 0 // a pause at every look at the clock
	rnd := rand.New(rand.NewPCG(seed, 99))
	const nstreams, ntokens = 24, 70
	var streams []*markedStream
	for i := range nstreams {
		ms := &markedStream{}
		for j := range ntokens {
			ms.tokens = append(ms.tokens, fmt.Sprintf("s%d-%d", i, j))
		}
		ms.tokens = append(ms.tokens, "room")
		rnd.Shuffle(len(ms.tokens), func(a, b int) { ms.tokens[a], ms.tokens[b] = ms.tokens[b], ms.tokens[a] })
		s, _ := h.Subscribe(o, ms.tokens, fmt.Sprint("id", i), "", nil)
		ms.r = &reader{h: h, s: s}
		streams = append(streams, ms)
	}
	// Enough streams on "room" that Collect pauses inside its list (the
	// first look at the clock only reads it).
	for range 3 * collectCheck {
		h.Subscribe(o, []string{"room"}, "", "", nil)
	}
	byStream := make(map[*Sub]*markedStream)
	for _, ms := range streams {
		byStream[ms.r.s] = ms
		ms.r.h.Collect(o, nil)
		for !fillSome(t, h, ms, rnd) { // the first fill, of every topic
		}
	}

	n := 0
	kicks := 0
	publish := func() {
		n++
		data := fmt.Sprint("e", n)
		m := Message{Data: []byte(data)}
		a := streams[rnd.IntN(nstreams)]
		switch x := rnd.IntN(100); {
		case x < 3:
			m.Targets = []string{"*"}
		case x < 8:
			m.Targets = []string{"room"}
		case x < 15: // two tokens of one stream: delivered once
			m.Targets = []string{a.tokens[rnd.IntN(len(a.tokens))], a.tokens[rnd.IntN(len(a.tokens))]}
		case x < 20: // tokens of two streams
			b := streams[rnd.IntN(nstreams)]
			m.Targets = []string{a.tokens[rnd.IntN(len(a.tokens))], b.tokens[rnd.IntN(len(b.tokens))]}
		default:
			m.Targets = []string{a.tokens[rnd.IntN(len(a.tokens))]}
		}
		if rnd.IntN(10) == 0 {
			m.Exclude = a.r.s.ID
		}
		if kicks < 3 && !a.kicked && rnd.IntN(200) == 0 {
			kicks++
			m.Targets, m.Exclude = []string{a.tokens[rnd.IntN(len(a.tokens))]}, ""
			m.Disconnect = &Match{ID: a.r.s.ID}
		}
		if _, err := h.Publish(m); err != nil {
			t.Fatal(err)
		}
		for _, ms := range streams {
			if ms.kicked || m.Exclude == ms.r.s.ID {
				continue
			}
			if slices.ContainsFunc(m.Targets, func(tok string) bool { return tok == "*" || slices.Contains(ms.tokens, tok) }) &&
				(m.Disconnect == nil || m.Disconnect.ID == ms.r.s.ID) {
				ms.want = append(ms.want, data)
				ms.kicked = m.Disconnect != nil
			}
		}
	}

	pauses := 0
	h.testPause = func() {
		pauses++
		for range rnd.IntN(6) {
			publish()
		}
	}
	for range 60 {
		for range rnd.IntN(300) {
			publish()
		}
		for _, s := range h.Collect(o, nil) {
			ms := byStream[s]
			if ms == nil {
				continue // one of room's other streams
			}
			for k := 0; !fillSome(t, h, ms, rnd); k++ {
				if k < 3 && rnd.IntN(3) == 0 {
					publish() // between Collect and the fills
				}
			}
		}
	}
	h.testPause = nil
	if pauses < 10 {
		t.Fatalf("%d pauses, want many", pauses)
	}
	// The events published last: one more Collect takes them.
	for _, s := range h.Collect(o, nil) {
		if ms := byStream[s]; ms != nil {
			for !fillSome(t, h, ms, rnd) {
			}
		}
	}
	if len(o.dirty) != 0 {
		t.Fatalf("%d topics dirty after the last Collect", len(o.dirty))
	}
	for i, ms := range streams {
		if !slices.Equal(ms.r.got, ms.want) {
			k := 0
			for k < min(len(ms.r.got), len(ms.want)) && ms.r.got[k] == ms.want[k] {
				k++
			}
			t.Fatalf("stream %d: got %d events, want %d; from event %d: got %q, want %q", i, len(ms.r.got), len(ms.want), k,
				ms.r.got[k:min(k+5, len(ms.r.got))], ms.want[k:min(k+5, len(ms.want))])
		}
		if ms.r.s.Ended() != ms.kicked {
			t.Errorf("stream %d: ended %v, disconnected %v", i, ms.r.s.Ended(), ms.kicked)
		}
		// Marked: exactly the topics with entries after the cursor (an
		// excluded event stays until a write moves the cursor past it).
		s, left := ms.r.s, uint64(0)
		for j, st := range s.topics {
			if st.t.head() > st.t.base && st.t.entries[len(st.t.entries)-1].ev.Seq > s.cursor {
				left |= topicBit(j)
			}
		}
		if s.pend != left && !ms.kicked {
			t.Errorf("stream %d: topics %x marked, %x with entries left", i, s.pend, left)
		}
	}
	if kicks == 0 {
		t.Log("no disconnection drawn")
	}
}

// fillSome fills ms once, with one to three buffers, writes all or part of
// the batch, and reports whether the fill found nothing.
func fillSome(t *testing.T, h *Hub, ms *markedStream, rnd *rand.Rand) (empty bool) {
	t.Helper()
	r := ms.r
	if h.Fill(r.s, &r.b, 1+rnd.IntN(3), 1<<20) {
		t.Fatal("lagged")
	}
	if len(r.b.Bufs) == 0 {
		return true
	}
	n := r.b.Bytes
	if rnd.IntN(4) == 0 {
		n = 1 + rnd.IntN(n)
	}
	var w strings.Builder
	for _, buf := range r.b.Bufs {
		w.Write(buf)
	}
	r.s.Wrote(&r.b, n)
	r.parse([]byte(w.String()[:n]))
	return false
}

// The trap: an event published after Collect began, to a topic it had
// not marked, must not be overtaken by a later one in a marked topic (the
// stream's cursor would pass it), and is delivered by the next Collect,
// whether the topic was published to before its turn in the pausing
// Collect or after it. (A stream on fewTopics or fewer looks at them all:
// TestFillFewTopicsTakesNewEvents.)
func TestFillMarksBoundedByCollect(t *testing.T) {
	h, o, w := newHub(t, Config{})
	r := sub(h, o, "me", "", "a", "b", "c", "d", "e")
	r.drain(t, -1)
	pub(t, h, "a", "1")
	h.Collect(o, nil)
	pub(t, h, "b", "2") // b is not marked
	pub(t, h, "a", "3")
	if r.fill(0) {
		t.Fatal("lagged")
	}
	if fmt.Sprint(r.got) != "[1]" {
		t.Fatalf("before the next Collect: %q, want [1]", r.got)
	}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[1 2 3]" {
		t.Fatalf("got %q, want [1 2 3]", r.got)
	}

	// During a pausing Collect: room's long list pauses it; its dirty
	// topics are room, then c. At the first pause, c (yet to be done)
	// gets an event: the marks cover it, the bound does not, so the next
	// Collect must gather the stream again.
	for range 3 * collectCheck {
		h.Subscribe(o, []string{"room"}, "", "", nil)
	}
	h.collectHold = 0
	r.drain(t, -1)
	r.got = nil
	pub(t, h, "room", "x") // the stream is not on room
	pub(t, h, "c", "4")
	wakes := *w
	once := false
	h.testPause = func() {
		if !once {
			once = true
			pub(t, h, "c", "5")
		}
	}
	found := false
	for _, s := range h.Collect(o, nil) {
		found = found || s == r.s
	}
	h.testPause = nil
	if !once || !found {
		t.Fatalf("paused %v, stream collected %v", once, found)
	}
	// 5 waits for the next Collect: c stays dirty and the owner is woken.
	if len(o.dirty) != 1 || o.dirty[0] != h.topics["c"] || *w != wakes+1 {
		t.Fatalf("after the Collect: %d dirty topics, %d wakes (want c and 1)", len(o.dirty), *w-wakes)
	}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[4 5]" {
		t.Fatalf("got %q, want [4 5]", r.got)
	}
	if len(o.dirty) != 0 || r.s.pend != 0 {
		t.Fatalf("dirty %d, marks %x after the stream has everything", len(o.dirty), r.s.pend)
	}
}

// An ending stream takes every event up to its end, marked or not (the
// owner does not collect for it).
func TestFillUntilTakesUnmarkedEvents(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	tokens := numbered("t", 70)
	r := sub(h, o, "me", "", tokens...)
	r.drain(t, -1)
	pub(t, h, "t5", "1")
	pub(t, h, "t66", "2") // in the topics sharing the last bit
	pub(t, h, "*", "3")
	end := h.LastSeq()
	pub(t, h, "t1", "after")
	if r.fill(end) {
		t.Fatal("lagged")
	}
	if fmt.Sprint(r.got) != "[1 2 3]" {
		t.Fatalf("got %q, want [1 2 3]", r.got)
	}
}

// Events a stream had yet to take are dropped from a topic it has no mark
// on (the per-topic cap): once Collect marks it, the fill sees the loss,
// and a fill before that Collect does not deliver past it.
func TestFillMarksSeeLossInUnmarkedTopic(t *testing.T) {
	for _, tok := range []string{"t3", "t68"} {
		t.Run(tok, func(t *testing.T) {
			h, o, _ := newHub(t, Config{HistoryBytes: 1 << 10, MaxLag: 4 << 10})
			tokens := numbered("t", 70)
			r := sub(h, o, "me", "", tokens...)
			r.drain(t, -1)
			pub(t, h, "t10", "first")
			h.Collect(o, nil)
			big := strings.Repeat("x", 1000)
			for range 10 { // past the cap of 5 KiB: the oldest go
				pub(t, h, tok, big)
			}
			pub(t, h, "t10", "later")
			if h.topics[tok].floor == 0 {
				t.Fatal("nothing dropped")
			}
			r.got = nil
			if r.fill(0) {
				t.Fatal("lagged before the Collect that marks the topic")
			}
			if fmt.Sprint(r.got) != "[first]" {
				t.Fatalf("got %q, want [first]", r.got)
			}
			if !r.drain(t, -1) {
				t.Fatalf("not lagged after the Collect; got %d events", len(r.got))
			}
		})
	}
}

// The global bound drops the oldest events from every topic: a stream
// behind on an unmarked topic is lagged once Collect marks it; trims while
// it is behind keep what it has yet to take.
func TestFillMarksTrimWhileBehind(t *testing.T) {
	now := time.Unix(1000, 0)
	h, o, _ := newHub(t, Config{HistoryAge: time.Second, Now: func() time.Time { return now }})
	tokens := numbered("t", 70)
	r := sub(h, o, "me", "", tokens...)
	r.drain(t, -1)
	pub(t, h, "t2", "a")
	pub(t, h, "t65", "b")
	h.Collect(o, nil)
	pub(t, h, "t40", "c")
	now = now.Add(time.Hour)
	h.Trim() // everything is past its age, but the stream has yet to take it
	if len(h.topics["t2"].entries) != 1 || len(h.topics["t40"].entries) != 1 {
		t.Fatal("trim dropped events a live stream had yet to take")
	}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[a b c]" {
		t.Fatalf("got %q, want [a b c]", r.got)
	}
	h.Trim()
	if len(h.topics["t2"].entries)+len(h.topics["t40"].entries)+len(h.topics["t65"].entries) != 0 {
		t.Fatal("taken events not trimmed")
	}

	// Dropped by the global bound before the Collect that marks t50.
	h2, o2, _ := newHub(t, Config{HistoryTotalBytes: 8 << 10})
	r2 := sub(h2, o2, "me", "", tokens...)
	pub(t, h2, "t1", "x")
	r2.drain(t, -1)
	pub(t, h2, "t50", "lost")
	for i := range 100 { // other topics: the oldest events go
		pub(t, h2, fmt.Sprint("other", i), strings.Repeat("y", 200))
	}
	if len(h2.topics["t50"].entries) != 0 {
		t.Fatal("the global bound did not drop the event")
	}
	if !r2.drain(t, -1) {
		t.Fatalf("not lagged: got %q", r2.got)
	}
}

// Replays and gaps on many tokens: the first fill looks at every topic.
func TestFillMarksReplay(t *testing.T) {
	h, o, _ := newHub(t, Config{HistoryCount: 3})
	tokens := numbered("t", 70)
	first := sub(h, o, "a", "", tokens...)
	var want []string
	for i := range 20 {
		tok := tokens[(i*37)%len(tokens)]
		pub(t, h, tok, fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	first.drain(t, -1)
	if !slices.Equal(first.got, want) {
		t.Fatalf("live: %q", first.got)
	}
	// Resume after event 10 (its id from a reader that stopped there).
	h.Unsubscribe(first.s)
	var lastID string
	{
		s, _ := h.Subscribe(o, tokens, "b", "", nil)
		s.cursor = 10 // as if it had taken the first ten
		lastID = h.CursorID(s)
		h.Unsubscribe(s)
	}
	s, replay := h.Subscribe(o, tokens, "c", lastID, nil)
	if replay != ReplayComplete {
		t.Fatalf("replay %v", replay)
	}
	re := &reader{h: h, s: s}
	pub(t, h, "t69", "live")
	re.drain(t, -1)
	if fmt.Sprint(re.got) != fmt.Sprint(append(want[10:], "live")) {
		t.Fatalf("replay: %q", re.got)
	}

	// A token that kept fewer events than were published: a gap, then live.
	for range 5 {
		pub(t, h, "t0", "old")
	}
	s2, replay := h.Subscribe(o, tokens, "d", lastID, nil)
	if replay != ReplayGap {
		t.Fatalf("replay %v, want gap", replay)
	}
	re2 := &reader{h: h, s: s2}
	pub(t, h, "t64", "new")
	re2.drain(t, -1)
	if n := len(re2.got); n == 0 || re2.got[n-1] != "new" || slices.Contains(re2.got, "0") {
		t.Fatalf("after a gap: %q", re2.got)
	}
}

// A stream on a few topics looks at them all: a fill takes what was
// published since its owner's last Collect too, as a stream near the end
// of a long pass should.
func TestFillFewTopicsTakesNewEvents(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	r := sub(h, o, "me", "", "a", "b")
	r.drain(t, -1)
	pub(t, h, "a", "1")
	h.Collect(o, nil)
	pub(t, h, "b", "2")
	pub(t, h, "a", "3")
	if h.Fill(r.s, &r.b, 1024, 1<<20) {
		t.Fatal("lagged")
	}
	var w strings.Builder
	for _, buf := range r.b.Bufs {
		w.Write(buf)
	}
	r.s.Wrote(&r.b, r.b.Bytes)
	r.parse([]byte(w.String()))
	if fmt.Sprint(r.got) != "[1 2 3]" {
		t.Fatalf("one fill after the Collect: %q, want [1 2 3]", r.got)
	}
}
