package hub

import (
	"fmt"
	"testing"
	"time"
)

// Trim looks at what may expire, not at every topic: after the first pass
// over new events, idle topics cost nothing until their events age out;
// then they go, topics and all.
func TestTrimLooksOnlyAtWhatExpires(t *testing.T) {
	now := time.Unix(1000, 0)
	h, o, _ := newHub(t, Config{Now: func() time.Time { return now }, HistoryAge: time.Minute})
	const n = 10000
	for i := range n {
		pub(t, h, fmt.Sprint("user", i), "x")
	}
	live := sub(h, o, "", "", "user7")
	pub(t, h, "user7", "mid")
	live.drain(t, -1)
	h.Trim()
	// The topics published to and the two special ones; "*all" holds 10,001
	// events past its count bound and drops them 1,024 at a time.
	if h.trims.looked < n+2 || h.trims.looked > n+2+10 {
		t.Fatalf("first trim looked at %d topics, want %d (and a few more looks at the special ones)", h.trims.looked, n+2)
	}
	h.Trim()
	if h.trims.looked > 2 {
		t.Fatalf("idle trim looked at %d topics, want only the special ones", h.trims.looked)
	}
	pub(t, h, "user5", "y")
	h.Trim()
	if h.trims.looked != 3 {
		t.Fatalf("after one publication: looked at %d topics, want 3", h.trims.looked)
	}
	if st := h.Stats(); st.Topics != n || st.HistoryEvents != n+2 {
		t.Fatalf("before expiry: %+v", st)
	}
	// Past the age, every event goes, and the topics without subscribers.
	now = now.Add(2 * time.Minute)
	h.Trim()
	if st := h.Stats(); st.Topics != 1 || st.HistoryEvents != 0 {
		t.Fatalf("after expiry: %+v, want only the subscribed topic", st)
	}
	if _, replay := h.Subscribe(o, []string{"user5"}, "", "", nil); replay != ReplayNone {
		t.Fatal(replay)
	}
	// A replay from before the expiry answers gap, exactly where history ends.
	pub(t, h, "user7", "after")
	s, replay := h.Subscribe(o, []string{"user7"}, "", live.lastID, nil)
	if live.lastID == "" || replay != ReplayComplete {
		t.Fatalf("replay from the live stream's last id %q (expired, the newest it had): %v", live.lastID, replay)
	}
	r := &reader{h: h, s: s}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[after]" {
		t.Fatalf("replayed %q", r.got)
	}
}

// An event kept past its bounds for a live subscriber goes at the first
// trim after that subscriber read it, without a new publication.
func TestTrimComesBackForKeptEvents(t *testing.T) {
	now := time.Unix(1000, 0)
	h, o, _ := newHub(t, Config{Now: func() time.Time { return now }, HistoryAge: time.Minute})
	r := sub(h, o, "", "", "t")
	pub(t, h, "t", "old")
	now = now.Add(2 * time.Minute)
	h.Trim()
	if st := h.Stats(); st.HistoryEvents != 1 {
		t.Fatalf("an unread event must stay: %+v", st)
	}
	r.drain(t, -1)
	h.Trim()
	if st := h.Stats(); st.HistoryEvents != 0 {
		t.Fatalf("read and expired: %+v", st)
	}
	h.Trim()
	if h.trims.looked > 2 {
		t.Fatalf("looked at %d topics after the kept one went", h.trims.looked)
	}
}
