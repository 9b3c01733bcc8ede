package hub

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reader is a test stream: it drains a subscriber the way an owner does
// (Collect, then Fill until it finds nothing).
type reader struct {
	h   *Hub
	s   *Sub
	b   Batch
	got []string // data of the events received, in order
	// pending is the text of a frame only partly written so far.
	pending string
	lastID  string // id of the last complete event
}

var idRE = regexp.MustCompile(`(?m)^id: (.*)$`)

var dataRE = regexp.MustCompile(`(?m)^data: (.*)$`)

func (r *reader) drain(t *testing.T, limit int) (lagged bool) {
	t.Helper()
	r.h.Collect(r.s.owner, nil)
	for {
		if r.h.Fill(r.s, &r.b, 1024, 1<<20) {
			return true
		}
		if len(r.b.Bufs) == 0 {
			return false
		}
		n := r.b.Bytes
		if limit >= 0 {
			n = min(n, limit)
		}
		var w bytes.Buffer
		for _, buf := range r.b.Bufs {
			w.Write(buf)
		}
		r.s.Wrote(&r.b, n)
		r.parse(w.Bytes()[:n])
		if limit >= 0 {
			return false
		}
	}
}

// fill fills and takes whole batches until a fill finds nothing, with no
// Collect first (drain collects), up to event end if it is not zero; it
// reports whether the stream lagged.
func (r *reader) fill(end uint64) (lagged bool) {
	for {
		if end != 0 && r.h.FillUntil(r.s, &r.b, 1, 1<<20, end) || end == 0 && r.h.Fill(r.s, &r.b, 1024, 1<<20) {
			return true
		}
		if len(r.b.Bufs) == 0 {
			return false
		}
		r.s.Wrote(&r.b, r.b.Bytes)
		r.parse(slices.Concat(r.b.Bufs...))
	}
}

// numbered returns n tokens: prefix0, prefix1, ...
func numbered(prefix string, n int) []string {
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprint(prefix, i)
	}
	return tokens
}

// parse collects the data lines of complete frames; a partially written
// frame is completed by the next write, so the text is joined first.
func (r *reader) parse(p []byte) {
	text := r.pending + string(p)
	for {
		i := strings.Index(text, "\n\n\r\n")
		if i < 0 {
			break
		}
		frame := text[:i+4]
		text = text[i+4:]
		var lines []string
		for _, m := range dataRE.FindAllStringSubmatch(frame, -1) {
			lines = append(lines, m[1])
		}
		r.got = append(r.got, strings.Join(lines, "\n"))
		if m := idRE.FindStringSubmatch(frame); m != nil {
			r.lastID = m[1]
		}
	}
	r.pending = text
}

func newHub(t *testing.T, cfg Config) (*Hub, *Owner, *int) {
	t.Helper()
	wakes := new(int)
	h := New(cfg)
	o := h.NewOwner(func() { *wakes++ })
	return h, o, wakes
}

func sub(h *Hub, o *Owner, id, lastID string, tokens ...string) *reader {
	s, _ := h.Subscribe(o, tokens, id, lastID, nil)
	return &reader{h: h, s: s}
}

func pub(t *testing.T, h *Hub, target, data string) Result {
	t.Helper()
	target, exclude, _ := strings.Cut(target, "|")
	r, err := h.Publish(Message{Targets: []string{target}, Exclude: exclude, Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouting(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	a := sub(h, o, "A", "", "room1")
	b := sub(h, o, "B", "", "room2", "room1")
	star := sub(h, o, "S", "", "*")
	none := sub(h, o, "N", "")

	pub(t, h, "room1", "1")
	pub(t, h, "room2", "2")
	pub(t, h, "room*", "3")
	pub(t, h, "*", "4")
	pub(t, h, "room1|A", "5")
	pub(t, h, "*|B", "6")
	pub(t, h, "other", "7")
	pub(t, h, "roo*|S", "8")

	for _, r := range []*reader{a, b, star, none} {
		r.drain(t, -1)
	}
	check := func(name string, r *reader, want string) {
		t.Helper()
		if got := strings.Join(r.got, ","); got != want {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
	check("A", a, "1,3,4,6,8")
	check("B", b, "1,2,3,4,5,8")
	check("star", star, "1,2,3,4,5,6,7")
	check("none", none, "4,6")
}

func TestReceiversAndCounts(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	sub(h, o, "", "", "x")
	sub(h, o, "", "", "x", "y")
	sub(h, o, "", "", "*")
	if got := pub(t, h, "x", "m").Receivers; got != 3 {
		t.Errorf("receivers of x = %d, want 3", got)
	}
	if got := pub(t, h, "*", "m").Receivers; got != 3 {
		t.Errorf("receivers of * = %d, want 3", got)
	}
	if got := h.SubscribedClients("x"); got != 2 {
		t.Errorf("SubscribedClients(x) = %d, want 2", got)
	}
	// Distinct streams: the x-y stream counts once for both; an excluded
	// stream not at all.
	sub(h, o, "ex", "", "y")
	res, err := h.Publish(Message{Targets: []string{"x", "y"}, Data: []byte("m")})
	if err != nil || res.Receivers != 4 {
		t.Errorf("receivers of [x y] = %d (%v), want 4", res.Receivers, err)
	}
	res, _ = h.Publish(Message{Targets: []string{"x", "y"}, Exclude: "ex", Data: []byte("m")})
	if res.Receivers != 3 {
		t.Errorf("receivers of [x y] excluding ex = %d, want 3", res.Receivers)
	}
	res, _ = h.Publish(Message{Targets: []string{"*"}, Exclude: "ex", Data: []byte("m")})
	if res.Receivers != 3 {
		t.Errorf("receivers of * excluding ex = %d, want 3", res.Receivers)
	}
	if got := pub(t, h, "y*", "m").Receivers; got != 3 {
		t.Errorf("receivers of y* = %d, want 3", got)
	}
	if got := h.SubscribedClients("*"); got != 0 {
		t.Errorf("SubscribedClients(*) = %d, want 0", got)
	}
}

func TestPartialWritesNeverSplitOrDuplicate(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	r := sub(h, o, "", "", "t")
	var want []string
	for i := range 50 {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*7))
		want = append(want, msg)
		pub(t, h, "t", msg)
	}
	for step := 0; step < 10000; step++ {
		r.drain(t, 13) // 13 bytes per write: every frame is split
		if len(r.got) == len(want) {
			break
		}
	}
	if strings.Join(r.got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d events, want %d; first %q", len(r.got), len(want), r.got[:min(3, len(r.got))])
	}
	if d := o.Delivered(); d != 50 {
		t.Errorf("delivered = %d, want 50", d)
	}
}

func TestMultilineBodyBecomesDataLines(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	r := sub(h, o, "", "", "t")
	pub(t, h, "t", "line1\nline2\r\nline3\rline4")
	r.drain(t, -1)
	if len(r.got) != 1 || r.got[0] != "line1\nline2\nline3\nline4" {
		t.Fatalf("got %q", r.got)
	}
}

func TestReplayAfterLastEventID(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	first := sub(h, o, "A", "", "room1", "room2")
	var ids []string
	for i := range 6 {
		ids = append(ids, pub(t, h, fmt.Sprintf("room%d", i%3), fmt.Sprint(i)).ID)
	}
	first.drain(t, -1)
	h.Unsubscribe(first.s)
	// Missed: 3 more to room1/room2/room0, one excluding A, one prefix.
	pub(t, h, "room1", "6")
	pub(t, h, "room2|A", "7")
	pub(t, h, "room*", "8")
	pub(t, h, "room0", "9")

	s, replay := h.Subscribe(o, []string{"room1", "room2"}, "A", ids[5], nil)
	if replay != ReplayComplete {
		t.Fatalf("replay = %v, want complete", replay)
	}
	r := &reader{h: h, s: s}
	pub(t, h, "room1", "10")
	r.drain(t, -1)
	if got := strings.Join(r.got, ","); got != "6,8,10" {
		t.Fatalf("replayed %q, want 6,8,10", got)
	}

	if _, replay := h.Subscribe(o, []string{"room1"}, "", "zzz-1", nil); replay != ReplayUnknown {
		t.Errorf("foreign epoch: replay = %v, want unknown", replay)
	}
	if _, replay := h.Subscribe(o, []string{"room1"}, "", "1700000000", nil); replay != ReplayUnknown {
		t.Errorf("hasses id: replay = %v, want unknown", replay)
	}
}

func TestReplayGapAfterTrim(t *testing.T) {
	now := time.Unix(1000, 0)
	h, o, _ := newHub(t, Config{HistoryCount: 3, Now: func() time.Time { return now }})
	first := pub(t, h, "t", "0").ID
	for i := 1; i < 10; i++ {
		pub(t, h, "t", fmt.Sprint(i))
	}
	h.Trim()
	s, replay := h.Subscribe(o, []string{"t"}, "", first, nil)
	if replay != ReplayGap {
		t.Fatalf("replay = %v, want gap", replay)
	}
	r := &reader{h: h, s: s}
	r.drain(t, -1)
	if got := strings.Join(r.got, ","); got != "7,8,9" {
		t.Fatalf("got %q, want the 3 retained events", got)
	}
}

func TestTrimKeepsWhatLiveSubscribersNeed(t *testing.T) {
	h, o, _ := newHub(t, Config{HistoryCount: 2})
	r := sub(h, o, "", "", "t")
	for i := range 10 {
		pub(t, h, "t", fmt.Sprint(i))
	}
	h.Trim()
	r.drain(t, -1)
	if len(r.got) != 10 {
		t.Fatalf("live subscriber got %d events after trim, want 10", len(r.got))
	}
	h.Trim()
	if st := h.Stats(); st.HistoryEvents != 2 {
		t.Errorf("history after delivery = %d events, want 2", st.HistoryEvents)
	}
}

func TestSlowSubscriberIsLaggedOthersUnaffected(t *testing.T) {
	h, o, _ := newHub(t, Config{MaxLag: 10_000})
	slow := sub(h, o, "", "", "t")
	fast := sub(h, o, "", "", "t")
	body := strings.Repeat("y", 1000)
	for range 50 {
		pub(t, h, "t", body)
		if fast.drain(t, -1) {
			t.Fatal("fast reader reported lagged")
		}
	}
	if !h.Lagging(slow.s) {
		t.Error("slow subscriber 50 KB behind is not lagging")
	}
	if !slow.drain(t, -1) {
		t.Error("Fill did not report the slow subscriber as lagged")
	}
	if len(fast.got) != 50 {
		t.Errorf("fast got %d, want 50", len(fast.got))
	}
}

func TestWakeOncePerDirtyPass(t *testing.T) {
	h, o, wakes := newHub(t, Config{})
	sub(h, o, "", "", "t")
	sub(h, o, "", "", "t")
	for range 5 {
		pub(t, h, "t", "m")
	}
	if *wakes != 1 {
		t.Errorf("wakes = %d, want 1 until the owner collects", *wakes)
	}
	if got := h.Collect(o, nil); len(got) != 2 {
		t.Errorf("collected %d subscribers, want 2", len(got))
	}
	pub(t, h, "nobody", "m")
	if *wakes != 1 {
		t.Errorf("publishing to a topic without subscribers woke the owner")
	}
}

// A topic without subscribers and history lingers until the second trim,
// so that a stream reconnecting at once finds it; then it goes.
func TestUnsubscribeDropsEmptyTopics(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	r := sub(h, o, "", "", "a", "b")
	a := h.topics["a"]
	h.Unsubscribe(r.s)
	h.Unsubscribe(r.s) // idempotent
	h.Trim()
	if st := h.Stats(); st.Topics != 2 || st.Subscribers != 0 {
		t.Errorf("stats after unsubscribe and a trim = %+v, want the 2 topics lingering", st)
	}
	// Taken again: the same topic, kept while it has a subscriber.
	r = sub(h, o, "", "", "a")
	if h.topics["a"] != a {
		t.Error("a reconnection within the linger made its topic anew")
	}
	h.Trim()
	h.Trim()
	if st := h.Stats(); st.Topics != 1 || h.topics["a"] != a {
		t.Errorf("after two trims: %+v, want only a, still subscribed", st)
	}
	h.Unsubscribe(r.s)
	h.Trim()
	h.Trim()
	if st := h.Stats(); st.Topics != 0 || len(h.lingering) != 0 {
		t.Errorf("stats after the last unsubscribe and two trims = %+v, %d lingering", st, len(h.lingering))
	}
}

// TestConcurrentPublishAndDrain runs publishers against owners draining in
// their own goroutines; run with -race.
func TestConcurrentPublishAndDrain(t *testing.T) {
	h := New(Config{})
	const owners, subsPer, msgs = 2, 20, 300
	type ow struct {
		o    *Owner
		wake chan struct{}
	}
	var ows []ow
	for range owners {
		w := make(chan struct{}, 1)
		ows = append(ows, ow{h.NewOwner(func() {
			select {
			case w <- struct{}{}:
			default:
			}
		}), w})
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	results := make([][]*reader, owners)
	for i, w := range ows {
		for j := range subsPer {
			results[i] = append(results[i], sub(h, w.o, "", "", fmt.Sprintf("t%d", j%3)))
		}
	}
	for i, w := range ows {
		wg.Go(func() {
			var ready []*Sub
			drainAll := func() {
				ready = h.Collect(w.o, ready[:0])
				for _, s := range ready {
					for _, r := range results[i] {
						if r.s == s {
							r.drain(t, 7)
							r.drain(t, -1)
						}
					}
				}
			}
			for {
				select {
				case <-w.wake:
					drainAll()
				case <-done:
					drainAll()
					return
				}
			}
		})
	}
	var pw sync.WaitGroup
	for p := range 3 {
		pw.Go(func() {
			for k := range msgs {
				h.Publish(Message{Targets: []string{fmt.Sprintf("t%d", p)}, Data: []byte(fmt.Sprint(k))})
			}
		})
	}
	pw.Wait()
	time.Sleep(50 * time.Millisecond)
	close(done)
	wg.Wait()
	for i := range owners {
		for j, r := range results[i] {
			r.drain(t, -1)
			if len(r.got) != msgs {
				t.Errorf("owner %d sub %d got %d events, want %d", i, j, len(r.got), msgs)
			}
			for k, g := range r.got {
				if g != fmt.Sprint(k) {
					t.Fatalf("owner %d sub %d event %d = %q: out of order", i, j, k, g)
				}
			}
		}
	}
}

// FuzzReplay drives a hub with a random script of publications, streams that
// read part of what they are sent, disconnect and come back with the id of
// the last event they received, and history trimming. Whatever happens, a
// stream must never receive an event twice or out of order, never an event
// for another token or one excluding it, and a replay reported complete
// must have no gap. The streams are on two owners, which must collect
// every stream an event was routed to, and the topics' subscriber lists
// must stay consistent.
func FuzzReplay(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200, 3, 17, 99})
	f.Add([]byte{5, 5, 5, 250, 250, 1, 2, 3, 251, 7, 7, 7})
	f.Fuzz(func(t *testing.T, script []byte) {
		now := time.Unix(1000, 0)
		h := New(Config{HistoryCount: 4, MaxLag: 1 << 20, Now: func() time.Time { return now }})
		owners := []*Owner{h.NewOwner(func() {}), h.NewOwner(func() {})}
		tokens := []string{"a", "b", "ab"}
		type client struct {
			o      *Owner
			owes   bool // an event was routed to it since its owner last collected it
			r      *reader
			tokens []string
			seen   map[string]bool // data received
			lastID string
			last   int // data value of the last event received
			gapOK  bool
		}
		var clients []*client
		// The last client reads two tokens: its fills merge them.
		for i, toks := range [][]string{{tokens[0]}, {tokens[1]}, {tokens[2]}, {tokens[1], tokens[2]}} {
			o := owners[i%len(owners)]
			clients = append(clients, &client{o: o, r: sub(h, o, fmt.Sprint(i), "", toks...), tokens: toks, seen: map[string]bool{}, last: -1})
		}
		routed := func(target string, c *client) bool {
			return slices.ContainsFunc(c.tokens, func(tok string) bool {
				return target == "*" || target == tok || (target == "a*" && strings.HasPrefix(tok, "a"))
			})
		}
		published := map[int]Message{}
		seq := 0
		for _, op := range script {
			switch {
			case op < 150: // publish
				targets := []string{"a", "b", "ab", "a*", "*"}
				m := Message{Targets: []string{targets[int(op)%len(targets)]}, Data: []byte(fmt.Sprint(seq))}
				if op%7 == 0 {
					m.Exclude = fmt.Sprint(op % 3)
				}
				published[seq] = m
				seq++
				h.Publish(m)
				for _, c := range clients {
					c.owes = c.owes || routed(m.Targets[0], c)
				}
			case op < 200: // the owners collect; a client reads some
				for _, o := range owners {
					for _, s := range h.Collect(o, nil) {
						for _, c := range clients {
							if c.r.s == s {
								c.owes = false
							}
						}
					}
				}
				for _, c := range clients {
					if c.owes {
						t.Fatalf("client %s not collected after an event for it", c.r.s.ID)
					}
				}
				c := clients[int(op)%len(clients)]
				c.r.drain(t, int(op)*3)
			case op < 240: // a client drops its connection and comes back with its last id
				c := clients[int(op)%len(clients)]
				h.Unsubscribe(c.r.s)
				s, replay := h.Subscribe(c.o, c.tokens, c.r.s.ID, c.lastID, nil)
				c.r = &reader{h: h, s: s}
				c.owes = false // a new stream: its owner flushes it once subscribed
				c.gapOK = replay == ReplayGap || replay == ReplayUnknown || c.lastID == ""
			default: // time passes; the history is trimmed
				now = now.Add(time.Second)
				h.Trim()
			}
			checkSubs(t, h.all)
			checkSubs(t, h.bcast)
			for _, tp := range h.topics {
				checkSubs(t, tp)
			}
			for _, c := range clients {
				for _, d := range c.r.got {
					var v int
					fmt.Sscan(d, &v)
					m := published[v]
					if c.seen[d] {
						t.Fatalf("client %s got %s twice", c.r.s.ID, d)
					}
					if v <= c.last {
						t.Fatalf("client %s got %d after %d", c.r.s.ID, v, c.last)
					}
					if m.Exclude == c.r.s.ID {
						t.Fatalf("client %s got %d, which excludes it", c.r.s.ID, v)
					}
					if !routed(m.Targets[0], c) {
						t.Fatalf("client %v got %d for %q", c.tokens, v, m.Targets[0])
					}
					if !c.gapOK {
						// Every event for it between last and v must have come.
						for w := c.last + 1; w < v; w++ {
							pm := published[w]
							if pm.Exclude != c.r.s.ID && routed(pm.Targets[0], c) && c.last >= 0 {
								t.Fatalf("client %v: gap, %d missing before %d", c.tokens, w, v)
							}
						}
					}
					c.seen[d] = true
					c.last = v
					c.gapOK = false
				}
				c.r.got = nil
				if c.r.lastID != "" {
					c.lastID = c.r.lastID
				}
			}
		}
	})
}

func TestMultiTargetEventReceivedOnce(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	both := sub(h, o, "", "", "room1", "room2")
	one := sub(h, o, "", "", "room2")
	r, err := h.Publish(Message{Targets: []string{"room1", "room2", "room*"}, Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	both.drain(t, -1)
	one.drain(t, -1)
	if len(both.got) != 1 || len(one.got) != 1 {
		t.Fatalf("got %q and %q, want one event each", both.got, one.got)
	}
	if r.Receivers < 2 {
		t.Errorf("receivers %d", r.Receivers)
	}
}

// The ordered topic names agree with a sorted reference through inserts,
// removals and prefix walks.
func TestNamesSkipList(t *testing.T) {
	var s names
	ref := map[string]bool{}
	for i := range 3000 {
		name := fmt.Sprintf("t%d", (i*7919)%1000)
		if ref[name] {
			s.remove(name)
			delete(ref, name)
		} else {
			s.insert(&topic{name: name})
			ref[name] = true
		}
	}
	for _, prefix := range []string{"", "t", "t1", "t99", "t5", "x"} {
		var got, want []string
		s.withPrefix(prefix, func(tp *topic) { got = append(got, tp.name) })
		for name := range ref {
			if strings.HasPrefix(name, prefix) {
				want = append(want, name)
			}
		}
		slices.Sort(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("prefix %q: got %d names, want %d", prefix, len(got), len(want))
		}
	}
}

// The global bound holds over every topic, and the counts are the bytes
// really retained (they once showed one special topic's share).
func TestHistoryTotalBound(t *testing.T) {
	h, o, _ := newHub(t, Config{HistoryTotalBytes: 1 << 20})
	body := strings.Repeat("x", 60<<10)
	first := pub(t, h, "token0", "first")
	for i := range 100 {
		pub(t, h, fmt.Sprintf("token%d", i), body)
		if st := h.Stats(); st.HistoryBytes > 1<<20 || st.HistoryBytes < int64(len(body)) {
			t.Fatalf("after %d messages: %d bytes retained, bound 1 MiB", i+1, st.HistoryBytes)
		}
	}
	st := h.Stats()
	if st.HistoryEvents < 10 || st.HistoryEvents > 17 {
		t.Errorf("%d events retained, want those that fit in 1 MiB", st.HistoryEvents)
	}
	_, replay := h.Subscribe(o, []string{"token0"}, "", first.ID, nil)
	if replay != ReplayGap {
		t.Errorf("replay of an event dropped by the global bound: %v, want gap", replay)
	}
	last := sub(h, o, "", "", "token99")
	pub(t, h, "token99", "live")
	last.drain(t, -1)
	if strings.Join(last.got, ",") != "live" {
		t.Errorf("live delivery after the bound: %q", last.got)
	}
}

// A negative HistoryCount keeps no history: any older id is a gap.
func TestNoHistory(t *testing.T) {
	h, o, _ := newHub(t, Config{HistoryCount: -1})
	a := pub(t, h, "t", "1")
	pub(t, h, "t", "2")
	if _, replay := h.Subscribe(o, []string{"t"}, "", a.ID, nil); replay != ReplayGap {
		t.Errorf("replay without history: %v, want gap", replay)
	}
}

// An event routed to several of a stream's tokens is written once, so it
// counts once against the lag limit: a stream on 64 tokens is not cut by
// one event sent to all of them.
func TestLagCountsAnEventOnce(t *testing.T) {
	h, o, _ := newHub(t, Config{MaxLag: 100_000, HistoryBytes: 1 << 20})
	tokens := make([]string, 64)
	targets := make([]string, 64)
	for i := range tokens {
		tokens[i] = fmt.Sprint("t", i)
		targets[i] = tokens[i]
	}
	r := sub(h, o, "", "", tokens...)
	body := strings.Repeat("x", 60_000) // 64 x 60 KB counted per token: 3.8 MB
	if _, err := h.Publish(Message{Targets: targets, Data: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	if h.Lagging(r.s) || h.Behind(r.s, r.s.Cursor()) {
		t.Fatal("one 60 KB event to 64 tokens counted as over a 100 KB limit")
	}
	if r.drain(t, -1) || len(r.got) != 1 {
		t.Fatalf("lagged or got %d events", len(r.got))
	}
	// Two such events are over it: distinct bytes still add up.
	for range 2 {
		h.Publish(Message{Targets: targets, Data: []byte(body)})
	}
	if !h.Lagging(r.s) || !h.Behind(r.s, r.s.Cursor()) {
		t.Fatal("120 KB of distinct events pending not over a 100 KB limit")
	}
}

// A replay larger than the lag limit is answered as a gap (the stream
// starts live, with hasses-reset) rather than cut before its first write,
// on every reconnect. One within the limit, counted once per event, is
// complete even when the sum over tokens is not.
func TestReplayOverLagLimitIsAGap(t *testing.T) {
	h, o, _ := newHub(t, Config{MaxLag: 50_000, HistoryBytes: 1 << 20, HistoryCount: 1000})
	tokens := make([]string, 20)
	for i := range tokens {
		tokens[i] = fmt.Sprint("t", i)
	}
	first := pub(t, h, "t0", "first")
	body := strings.Repeat("x", 4000)
	for range 10 { // 40 KB, to all 20 tokens: 800 KB per token sum
		h.Publish(Message{Targets: tokens, Data: []byte(body)})
	}
	s, replay := h.Subscribe(o, tokens, "", first.ID, nil)
	if replay != ReplayComplete {
		t.Fatalf("40 KB replay with a 50 KB limit: %v", replay)
	}
	r := &reader{h: h, s: s}
	if r.drain(t, -1) || len(r.got) != 10 {
		t.Fatalf("replay cut, or %d events", len(r.got))
	}
	h.Unsubscribe(s)
	for range 10 { // 80 KB now
		h.Publish(Message{Targets: tokens, Data: []byte(body)})
	}
	pub(t, h, "other", "not for the stream")
	s, replay = h.Subscribe(o, tokens, "", first.ID, nil)
	if replay != ReplayGap {
		t.Fatalf("80 KB replay with a 50 KB limit: %v, want gap", replay)
	}
	if got, want := h.CursorID(s), fmt.Sprintf("%s-%d", strings.Split(first.ID, "-")[0], h.LastSeq()); got != want {
		t.Errorf("gap resumes at %s, want the newest event %s", got, want)
	}
	r = &reader{h: h, s: s}
	if r.drain(t, -1) || len(r.got) != 0 {
		t.Fatalf("gap replay sent %d old events or lagged", len(r.got))
	}
	pub(t, h, "t5", "live")
	if r.drain(t, -1) || strings.Join(r.got, ",") != "live" {
		t.Fatalf("after the gap: %q", r.got)
	}
}
