package hub

import (
	"math/rand/v2"
	"testing"
)

// checkSubs asserts that every subscriber list of t knows its entries'
// places and that every entry is a live subscription of t.
func checkSubs(t *testing.T, tp *topic) {
	t.Helper()
	n := 0
	for _, ow := range tp.subs {
		if len(ow.refs) == 0 && !ow.dirty {
			t.Errorf("%s: owner %d has an empty, clean entry", tp.name, ow.owner)
		}
		for j, r := range ow.refs {
			st := r.s.topics[r.i]
			if st.t != tp || st.slot != int32(j) || int32(r.s.owner.idx) != ow.owner {
				t.Fatalf("%s: owner %d entry %d: topic %s slot %d owner %d", tp.name, ow.owner, j, st.t.name, st.slot, r.s.owner.idx)
			}
			n++
		}
	}
	if n != int(tp.nsubs) {
		t.Errorf("%s: %d entries, nsubs %d", tp.name, n, tp.nsubs)
	}
	// The inline first entry and reference hold nothing once out of use.
	if (cap(tp.subs) == 0 || &tp.subs[:1][0] != &tp.own1[0]) && tp.own1[0].refs != nil {
		t.Errorf("%s: a stale inline owner entry", tp.name)
	}
	if tp.ref1Free() && tp.ref1[0].s != nil {
		t.Errorf("%s: a stale inline reference", tp.name)
	}
}

// A Collect releases the lock between chunks. Streams that unsubscribe or
// subscribe meanwhile, of its owner (a goroutine-per-connection front end)
// or another, must not make it miss one that stays, nor return one twice,
// and a topic published to meanwhile is collected again.
func TestCollectPausesKeepEveryone(t *testing.T) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	o2 := h.NewOwner(func() {})
	h.collectHold = 0 // a pause after every collectCheck streams
	const n = 8 * collectCheck
	var subs, others []*Sub
	for range 3 { // o2's entry first: o's moves when o2's goes
		others = append(others, mustSub(h.Subscribe(o2, []string{"room"}, "", "", nil)))
	}
	for range n {
		subs = append(subs, mustSub(h.Subscribe(o, []string{"room"}, "", "", nil)))
	}
	room := h.topics["room"]
	rnd := rand.New(rand.NewPCG(1, 2))
	gone := make(map[*Sub]bool)
	pauses := 0
	h.testPause = func() {
		pauses++
		// Some of o's streams go, gathered or not yet; new ones come.
		for range 200 {
			i := rnd.IntN(len(subs))
			if s := subs[i]; !gone[s] {
				h.Unsubscribe(s)
				gone[s] = true
			}
		}
		for range 50 {
			subs = append(subs, mustSub(h.Subscribe(o, []string{"room"}, "", "", nil)))
		}
		// The other owner's entry goes and comes back: o's entry moves.
		for _, s := range others {
			h.Unsubscribe(s)
		}
		others = others[:0]
		for range 2 {
			others = append(others, mustSub(h.Subscribe(o2, []string{"room"}, "", "", nil)))
		}
		if pauses == 1 {
			h.Publish(Message{Targets: []string{"room"}, Data: []byte("meanwhile")})
		}
		h.mu.Lock()
		checkSubs(t, room)
		h.mu.Unlock()
	}
	stayed := append([]*Sub(nil), subs...)
	h.Publish(Message{Targets: []string{"room"}, Data: []byte("x")})
	if got := h.Collect(o2, nil); len(got) != len(others) { // o2's entry is clean: it goes at the first pause
		t.Fatalf("other owner: %d streams, want %d", len(got), len(others))
	}
	got := h.Collect(o, nil)
	h.testPause = nil
	if pauses < 4 {
		t.Fatalf("%d pauses, want at least 4", pauses)
	}
	seen := make(map[*Sub]int)
	for _, s := range got {
		seen[s]++
		if seen[s] > 1 {
			t.Fatalf("a stream collected twice")
		}
	}
	missed := 0
	for _, s := range stayed {
		if !gone[s] && seen[s] == 0 {
			missed++
		}
	}
	if missed > 0 {
		t.Fatalf("%d streams that stayed were not collected (%d collected, %d gone)", missed, len(got), len(gone))
	}
	for _, s := range got {
		if s.queued {
			t.Fatal("a collected stream is left queued")
		}
	}
	checkSubs(t, room)

	// Published to during the pause: collected again, every live stream.
	if len(o.dirty) != 1 || o.dirty[0] != room {
		t.Fatalf("dirty after Collect = %d topics, want room", len(o.dirty))
	}
	got = h.Collect(o, nil)
	if want := len(subs) - len(gone); len(got) != want {
		t.Fatalf("second Collect: %d streams, want %d", len(got), want)
	}
	// The other owner is woken for the event published meanwhile.
	if got := h.Collect(o2, nil); len(got) != len(others) {
		t.Fatalf("other owner: %d streams, want %d", len(got), len(others))
	}
}

// A topic keeps nothing per owner once its subscribers are gone, also
// when the last one leaves before the owner collected the topic.
func TestTopicOwnerEntries(t *testing.T) {
	h := New(Config{})
	var owners []*Owner
	for range 4 {
		owners = append(owners, h.NewOwner(func() {}))
	}
	a := mustSub(h.Subscribe(owners[1], []string{"room"}, "", "", nil))
	b := mustSub(h.Subscribe(owners[3], []string{"room"}, "", "", nil))
	room := h.topics["room"]
	if len(room.subs) != 2 {
		t.Fatalf("room has %d owner entries, want 2", len(room.subs))
	}
	if len(h.bcast.subs) != 2 {
		t.Fatalf("the broadcast topic has %d owner entries, want 2", len(h.bcast.subs))
	}
	h.Publish(Message{Targets: []string{"room"}, Data: []byte("x")})
	h.Unsubscribe(a) // dirty for owners[1]: the entry stays until Collect
	checkSubs(t, room)
	if len(room.subs) != 2 {
		t.Fatalf("room has %d owner entries, want 2 (one dirty)", len(room.subs))
	}
	if got := h.Collect(owners[1], nil); len(got) != 0 {
		t.Fatalf("collected %d streams, want 0", len(got))
	}
	if len(room.subs) != 1 || room.subs[0].owner != 3 {
		t.Fatalf("room's owner entries = %+v, want owner 3's", room.subs)
	}
	if got := h.Collect(owners[3], nil); len(got) != 1 || got[0] != b {
		t.Fatalf("owner 3 collected %d streams", len(got))
	}
	h.Unsubscribe(b)
	if room.subs != nil || h.bcast.subs != nil {
		t.Fatalf("per-owner entries left: room %d, broadcast %d", len(room.subs), len(h.bcast.subs))
	}
	if h.topics["room"] != room {
		t.Fatal("room dropped with its history")
	}
}
