package hub

import (
	"fmt"
	"strings"
	"testing"
)

func TestDisconnectEndsMatchingStreams(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	a1 := sub(h, o, "tab1", "", "room1")
	a2 := sub(h, o, "tab2", "", "room1", "room2")
	b := sub(h, o, "tab3", "", "room2")
	a1.s.user, a2.s.user, b.s.user = "alice", "alice", "bob"
	pub(t, h, "room1", "before")
	kick := Message{Targets: []string{"*"}, Event: "hasses-disconnect", Data: []byte(`{"reason":"disconnect"}`), Disconnect: &Match{User: "alice"}}
	if err := kick.Validate(Limits{}); err != nil {
		t.Fatal(err)
	}
	r, _ := h.Publish(kick)
	if r.Receivers != 2 {
		t.Fatalf("receivers %d, want alice's 2 streams", r.Receivers)
	}
	pub(t, h, "room1", "after")
	pub(t, h, "room2", "after2")
	for _, c := range []struct {
		r     *reader
		want  string
		ended bool
	}{{a1, "[before {\"reason\":\"disconnect\"}]", true}, {a2, "[before {\"reason\":\"disconnect\"}]", true}, {b, "[after2]", false}} {
		c.r.drain(t, -1)
		if fmt.Sprint(c.r.got) != c.want || c.r.s.Ended() != c.ended {
			t.Errorf("%s: got %q (ended %v), want %s (ended %v)", c.r.s.ID, c.r.got, c.r.s.Ended(), c.want, c.ended)
		}
	}
	// A stream that reconnects from before the disconnection replays the
	// events, not the disconnection.
	s, _ := h.Subscribe(o, []string{"room1"}, "tab1", a1.lastID, nil)
	s.user = "alice"
	re := &reader{h: h, s: s}
	re.drain(t, -1)
	if fmt.Sprint(re.got) != "[after]" || s.Ended() {
		t.Errorf("reconnected: %q (ended %v)", re.got, s.Ended())
	}
	// By id, on one token; and history never shows a disconnection.
	r, _ = h.Publish(Message{Targets: []string{"room2"}, Event: "hasses-disconnect", Data: []byte("x"), Disconnect: &Match{ID: "tab3"}})
	if r.Receivers != 1 {
		t.Fatalf("by id: %d receivers", r.Receivers)
	}
	hist := h.History(HistoryQuery{Tokens: []string{"room1", "room2"}, After: "", Limit: 100})
	for _, e := range hist.Events {
		if strings.Contains(string(e.Data), "disconnect") || string(e.Data) == "x" {
			t.Errorf("history shows a disconnection: %+v", e)
		}
	}
}

// A write that stops right before a stream's disconnection leaves it to
// the next fill: the stream still receives it, then ends.
func TestDisconnectAfterAWriteStoppedBeforeIt(t *testing.T) {
	h, o, _ := newHub(t, Config{})
	r := sub(h, o, "tab", "", "room")
	pub(t, h, "room", "before")
	h.Publish(Message{Targets: []string{"room"}, Event: "hasses-disconnect", Data: []byte("bye"), Disconnect: &Match{ID: "tab"}})
	pub(t, h, "room", "after")
	h.Collect(o, nil)
	if h.Fill(r.s, &r.b, 1024, 1<<20) || len(r.b.Bufs) != 2 {
		t.Fatalf("first fill: %d buffers, want before and the disconnection", len(r.b.Bufs))
	}
	first := r.b.Bufs[0]
	r.s.Wrote(&r.b, len(first))
	r.parse(first)
	if r.s.Ended() {
		t.Fatal("ended before its disconnection was written")
	}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[before bye]" || !r.s.Ended() {
		t.Fatalf("got %q (ended %v), want [before bye], ended", r.got, r.s.Ended())
	}
}
