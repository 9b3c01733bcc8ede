package hub

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// clock is a settable Config.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func presenceHub(t *testing.T, c *clock) (*Hub, *Owner) {
	h, o, _ := newHub(t, Config{Now: c.now, Presence: PresenceConfig{Targets: []string{"room*", "lobby"}}})
	return h, o
}

func open(h *Hub, o *Owner, id, user, lastID string, tokens ...string) (*reader, []byte) {
	s, _, snap := h.Open(o, SubRequest{Tokens: tokens, ID: id, User: user, LastID: lastID})
	return &reader{h: h, s: s}, snap
}

type snapshotData struct {
	Presence []TokenPresence `json:"presence"` // without streams
}

func parseSnapshot(t *testing.T, snap []byte) snapshotData {
	t.Helper()
	text := string(snap)
	if !strings.HasPrefix(text, "event: hasses-presence\ndata: ") || !strings.HasSuffix(text, "\n\n") || strings.Contains(text, "id:") {
		t.Fatalf("snapshot %q", text)
	}
	var d snapshotData
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(text, "event: hasses-presence\ndata: "), "\n\n")), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPresenceJoinLeaveWithGrace(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	h, o := presenceHub(t, c)
	watch, snap := open(h, o, "w", "", "", "room1")
	if d := parseSnapshot(t, snap); len(d.Presence) != 1 || d.Presence[0].Count != 0 {
		t.Fatalf("first snapshot %+v", d)
	}
	watch.drain(t, -1)
	// The watcher's own join.
	if want := []string{`{"token":"room1","id":"w"}`}; !slices.Equal(watch.got, want) {
		t.Fatalf("got %q, want %q", watch.got, want)
	}
	watch.got = nil

	a1, _ := open(h, o, "alice", "alice-sub", "", "room1", "news")
	a2, snap := open(h, o, "alice", "alice-sub", "", "room1") // a second tab: no event
	d := parseSnapshot(t, snap)
	if p := d.Presence[0]; p.Count != 2 || p.Clients[0].ID != "alice" || p.Clients[0].User != "alice-sub" || p.Clients[1].ID != "w" {
		t.Fatalf("snapshot %+v", d)
	}
	watch.drain(t, -1)
	if want := []string{`{"token":"room1","id":"alice","user":"alice-sub"}`}; !slices.Equal(watch.got, want) {
		t.Fatalf("got %q, want %q", watch.got, want)
	}
	watch.got = nil

	// One tab closes: still a member. The other closes and the client
	// comes back within the grace period: neither a leave nor a join.
	h.Unsubscribe(a1.s)
	h.Unsubscribe(a2.s)
	c.add(4 * time.Second)
	h.Trim()
	a3, _ := open(h, o, "alice", "alice-sub", "", "room1")
	c.add(10 * time.Second)
	h.Trim()
	watch.drain(t, -1)
	if len(watch.got) != 0 {
		t.Fatalf("a reconnect within the grace period gave %q", watch.got)
	}
	// Gone for good: the leave comes after the grace period, not before.
	h.Unsubscribe(a3.s)
	c.add(4 * time.Second)
	h.Trim()
	watch.drain(t, -1)
	if len(watch.got) != 0 {
		t.Fatalf("leave before the grace period: %q", watch.got)
	}
	c.add(2 * time.Second)
	h.Trim()
	watch.drain(t, -1)
	if want := []string{`{"token":"room1","id":"alice","user":"alice-sub"}`}; !slices.Equal(watch.got, want) {
		t.Fatalf("got %q, want %q", watch.got, want)
	}
	var names []string
	for _, ev := range h.History(HistoryQuery{Tokens: []string{"room1"}, Limit: 10}).Events {
		names = append(names, ev.Event)
	}
	if want := []string{EventJoin, EventJoin, EventLeave}; !slices.Equal(names, want) {
		t.Fatalf("history %q, want %q", names, want)
	}
}

func TestPresenceOnlyOnPresenceTokensWithIDs(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	h, o := presenceHub(t, c)
	if _, snap := open(h, o, "x", "", "", "news"); snap != nil {
		t.Fatalf("snapshot on a token without presence: %q", snap)
	}
	watch, _ := open(h, o, "", "", "", "lobby", "room-a") // no id: sees, is not seen
	open(h, o, "y", "", "", "news")
	open(h, o, "", "", "", "lobby")
	watch.drain(t, -1)
	if len(watch.got) != 0 {
		t.Fatalf("got %q", watch.got)
	}
	d := parseSnapshot(t, func() []byte { _, s := open(h, o, "", "", "", "lobby", "room-a", "lobby"); return s }())
	if len(d.Presence) != 2 || d.Presence[0].Token != "lobby" || d.Presence[1].Token != "room-a" {
		t.Fatalf("snapshot %+v", d)
	}
}

func TestPresenceSnapshotSkippedOnCompleteResume(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	h, o := presenceHub(t, c)
	r, _ := open(h, o, "a", "", "", "room1")
	r.drain(t, -1)
	if _, snap := open(h, o, "a", "", r.lastID, "room1"); snap != nil {
		t.Fatalf("a complete resume got a snapshot %q", snap)
	}
	if _, snap := open(h, o, "a", "", "1-1", "room1"); snap == nil {
		t.Fatal("an unknown resume got no snapshot")
	}
}

func TestPresenceListing(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	h, o, _ := newHub(t, Config{Now: c.now, Presence: PresenceConfig{Max: 2}})
	for _, id := range []string{"c", "a", "b", "a", ""} {
		open(h, o, id, "u-"+id, "", "news")
	}
	got := h.Presence([]string{"news", "none"})
	want := []TokenPresence{
		{Token: "news", Streams: 5, Count: 3, Clients: []Member{{ID: "a", User: "u-a", Streams: 2}, {ID: "b", User: "u-b", Streams: 1}}},
		{Token: "none", Clients: []Member{}},
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("got %s\nwant %s", gj, wj)
	}
	other := TokenPresence{Token: "news", Streams: 1, Count: 1, Clients: []Member{{ID: "0", Streams: 1}}}
	m := MergePresence(got[0], other, 2)
	if m.Streams != 6 || m.Count != 3 || m.Clients[0].ID != "0" || m.Clients[1].ID != "a" {
		t.Fatalf("merged %+v", m)
	}
}

func TestOccupancy(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var got []string
	h, o, _ := newHub(t, Config{Now: c.now, Presence: PresenceConfig{Occupancy: func(tok string, occupied bool) {
		if occupied {
			got = append(got, "+"+tok)
		} else {
			got = append(got, "-"+tok)
		}
	}}})
	a, _ := open(h, o, "", "", "", "t1", "t2")
	b, _ := open(h, o, "", "", "", "t1")
	open(h, o, "", "", "", "*") // on no token
	h.Unsubscribe(a.s)
	c.add(6 * time.Second)
	h.Trim()
	h.Unsubscribe(b.s)
	c.add(6 * time.Second)
	h.Trim()
	if want := []string{"+t1", "+t2", "-t2", "-t1"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestReplicaHandsChangesToRemote(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var got []Change
	h, o, _ := newHub(t, Config{Now: c.now, Presence: PresenceConfig{Targets: []string{"room1"}, Grace: -1,
		Remote: func(ch Change) { got = append(got, ch) }}})
	h.SetReplica()
	r, _ := open(h, o, "a", "ua", "", "room1")
	h.Unsubscribe(r.s)
	if want := []Change{{Token: "room1", ID: "a", User: "ua", Join: true}, {Token: "room1", ID: "a", User: "ua"}}; !slices.Equal(got, want) {
		t.Fatalf("got %+v", got)
	}
	// The events come back through Apply and make the members.
	if _, err := h.Apply(5, c.now(), PresenceMessage(got[0])); err != nil {
		t.Fatal(err)
	}
	_, snap := open(h, o, "b", "", "", "room1")
	if d := parseSnapshot(t, snap); d.Presence[0].Count != 1 || d.Presence[0].Clients[0].ID != "a" {
		t.Fatalf("snapshot %+v", d)
	}
}
