package hub

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"unsafe"
)

// The requested tokens are not kept in Sub: Tokens names them from its
// topics, in the order requested.
func TestSubTokens(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	for _, toks := range [][]string{{"b", "a", "c"}, {"*"}, {"a", "*"}, {"x"}} {
		s, _ := h.Subscribe(o, toks, "id", "", nil)
		if got := h.Tokens(s); !slices.Equal(got, toks) {
			t.Errorf("Tokens of a subscription to %q = %q", toks, got)
		}
		h.Unsubscribe(s)
		if got := h.Tokens(s); got != nil {
			t.Errorf("Tokens after Unsubscribe = %q, want nil", got)
		}
	}
	if len(h.starTokens) != 0 {
		t.Errorf("%d \"*\" subscriptions' tokens left after they ended", len(h.starTokens))
	}
}

// A receiver count of several topics marks the streams it counted; when
// the 32-bit marks run out, an old mark must not be taken for the new one.
func TestReceiverMarksWrap(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	sub(h, o, "", "", "x", "y")
	sub(h, o, "", "", "z")
	receivers := func(targets ...string) int {
		t.Helper()
		res, err := h.Publish(Message{Targets: targets, Data: []byte("m")})
		if err != nil {
			t.Fatal(err)
		}
		return res.Receivers
	}
	if n := receivers("y", "z"); n != 2 { // mark 1: both streams
		t.Fatalf("receivers of [y z] = %d, want 2", n)
	}
	h.mu.Lock()
	h.marks = math.MaxUint32 - 1
	h.mu.Unlock()
	if n := receivers("x", "y"); n != 1 { // the last mark: the x-y stream
		t.Fatalf("receivers of [x y] = %d, want 1", n)
	}
	if n := receivers("y", "z"); n != 2 { // mark 1 again: the z stream's old one
		t.Fatalf("receivers of [y z] after the marks ran out = %d, want 2", n)
	}
}

// Tens of thousands of subscriptions live at once: Sub stays within the
// 128-byte size class.
func TestSubSize(t *testing.T) {
	if n := unsafe.Sizeof(Sub{}); n > 128 {
		t.Errorf("Sub is %d bytes, over the 128-byte size class", n)
	}
}

// Streams per client id: a "*" publication excluding an id reaches every
// stream but that id's, however many it has, as they come and go.
func TestExcludeCountsStreamsPerID(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	var subs []*Sub
	open := func(id string) {
		s, _ := h.Subscribe(o, []string{"t"}, id, "", nil)
		subs = append(subs, s)
	}
	want := func(exclude string, n int) {
		t.Helper()
		res, err := h.Publish(Message{Targets: []string{"*"}, Exclude: exclude, Data: []byte("m")})
		if err != nil || res.Receivers != n {
			t.Fatalf("receivers of * excluding %q = %d (%v), want %d", exclude, res.Receivers, err, n)
		}
	}
	open("a")
	open("a")
	open("a")
	open("b")
	open("")
	want("a", 2)
	want("b", 4)
	want("c", 5)
	h.Unsubscribe(subs[0])
	want("a", 2)
	h.Unsubscribe(subs[1])
	want("a", 2)
	h.Unsubscribe(subs[2])
	want("a", 2)
	open("a")
	want("a", 2)
	h.Unsubscribe(subs[3])
	h.Unsubscribe(subs[4])
	h.Unsubscribe(subs[5])
	want("a", 0)
	if len(h.ids) != 0 {
		t.Errorf("ids left after every stream ended: %v", h.ids)
	}
}

// A new topic costs about one allocation (its skip-list node, owner entry
// and first reference are in it): a connect storm of streams on 64 new
// tokens each makes hundreds of thousands, and each allocation is work
// for the collector too. It was five per topic.
func TestNewTopicAllocations(t *testing.T) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	const runs, perStream = 200, 64
	tokens := make([][]string, runs+1)
	for i := range tokens {
		for k := range perStream {
			tokens[i] = append(tokens[i], fmt.Sprintf("u%d-%d", i, k))
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		h.Subscribe(o, tokens[i], "", "", nil)
		i++
	})
	// Per stream: the topics, the skip list's upper levels of one node in
	// four, the Sub and its topic list, and the map's growth.
	if max := perStream * 1.5; allocs > max {
		t.Fatalf("%.0f allocations per stream on %d new tokens, want at most %.0f", allocs, perStream, max)
	}
}
