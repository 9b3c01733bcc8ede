package hub

import (
	"fmt"
	"reflect"
	"testing"
)

func TestTopTokens(t *testing.T) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	for i, tok := range []string{"a", "b", "b", "c", "c", "c", "d"} {
		h.Subscribe(o, []string{tok}, fmt.Sprint(i), "", nil)
	}
	h.Subscribe(o, []string{"*"}, "star", "", nil) // not a token: never listed
	pub := func(target string, n int) {
		for range n {
			if _, err := h.Publish(Message{Targets: []string{target}, Data: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub("a", 5)
	pub("c", 2)
	pub("e", 2) // history only, no subscriber
	pub("*", 3) // to everyone, not to any one token

	bySubs, byEvents := h.TopTokens(3)
	wantSubs := []TokenCount{{"c", 3, 2}, {"b", 2, 0}, {"a", 1, 5}}
	wantEvents := []TokenCount{{"a", 1, 5}, {"c", 3, 2}, {"e", 0, 2}}
	if !reflect.DeepEqual(bySubs, wantSubs) || !reflect.DeepEqual(byEvents, wantEvents) {
		t.Fatalf("first walk:\nby subscribers %+v\nwant %+v\nby events %+v\nwant %+v", bySubs, wantSubs, byEvents, wantEvents)
	}

	// Event counts restart at every call; ties are ordered by name.
	pub("d", 1)
	pub("b", 1)
	pub("b*", 1) // a prefix publication counts for the token it reaches
	_, byEvents = h.TopTokens(3)
	wantEvents = []TokenCount{{"b", 2, 2}, {"d", 1, 1}}
	if !reflect.DeepEqual(byEvents, wantEvents) {
		t.Fatalf("second walk by events %+v, want %+v", byEvents, wantEvents)
	}
	if _, byEvents = h.TopTokens(3); len(byEvents) != 0 {
		t.Fatalf("no publication since, yet %+v", byEvents)
	}
	if a, b := h.TopTokens(0); a != nil || b != nil {
		t.Fatalf("n=0: %v %v", a, b)
	}
}

func TestInsertTop(t *testing.T) {
	before := func(a, b TokenCount) bool { return a.Events > b.Events }
	var top []TokenCount
	for _, e := range []int64{3, 9, 1, 7, 5, 9, 2} {
		top = insertTop(top, TokenCount{Events: e}, 4, before)
	}
	var got []int64
	for _, c := range top {
		got = append(got, c.Events)
	}
	if !reflect.DeepEqual(got, []int64{9, 9, 7, 5}) {
		t.Fatalf("top 4 = %v", got)
	}
}

// BenchmarkTopTokens measures one dashboard walk over 100,000 tokens: the
// time the hub's lock is held once a second while a dashboard is open.
func BenchmarkTopTokens(b *testing.B) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	for i := range 100_000 {
		h.Subscribe(o, []string{fmt.Sprintf("user-%d", i)}, "", "", nil)
	}
	b.ResetTimer()
	for b.Loop() {
		h.TopTokens(10)
	}
}

// A walk over many topics lets go of the lock now and then; topics made
// and dropped meanwhile do not upset it.
func TestTopTokensPauses(t *testing.T) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	const n = 5 * collectCheck
	for i := range n {
		h.Subscribe(o, []string{fmt.Sprint("t", i)}, "", "", nil)
	}
	for range 3 {
		h.Subscribe(o, []string{"t7"}, "", "", nil)
	}
	pauses := 0
	var extra []*Sub
	h.testPause = func() { // runs without the lock
		pauses++
		s, _ := h.Subscribe(o, []string{fmt.Sprint("new", pauses)}, "", "", nil)
		extra = append(extra, s)
		if len(extra) > 1 {
			h.Unsubscribe(extra[0]) // its topic is dropped
			extra = extra[1:]
		}
	}
	bySubs, _ := h.TopTokens(1)
	if pauses < n/collectCheck {
		t.Fatalf("%d pauses over %d topics", pauses, n)
	}
	if want := []TokenCount{{"t7", 4, 0}}; !reflect.DeepEqual(bySubs, want) {
		t.Fatalf("top by subscribers %+v, want %+v", bySubs, want)
	}
}
