package itest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// presenceOf asks d's publish API who is on tokens.
func presenceOf(t *testing.T, d *daemon, tokens ...string) []publish.TokenPresence {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := (&publish.Client{URL: "http://" + d.pub + "/publish"}).Presence(ctx, tokens...)
	if err != nil {
		t.Fatalf("presence %q: %v", tokens, err)
	}
	return p
}

// presenceEvent is the data of a hasses-join or hasses-leave event.
type presenceEvent struct{ Token, ID, User string }

// expectPresence reads s's next event: name with data want.
func (s *stream) expectPresence(name string, want presenceEvent) event {
	s.t.Helper()
	ev, err := s.next(10 * time.Second)
	var got presenceEvent
	if err != nil || ev.Event != name || json.Unmarshal([]byte(ev.Data), &got) != nil || got != want || ev.ID == "" {
		s.t.Fatalf("want %s %+v, got %+v %v", name, want, ev, err)
	}
	return ev
}

// expectSnapshot reads s's hasses-presence event: the ids on its token.
func (s *stream) expectSnapshot(count int, ids ...string) {
	s.t.Helper()
	ev, err := s.next(5 * time.Second)
	var snap struct {
		Presence []struct {
			Token   string
			Count   int
			Clients []struct{ ID, User string }
		}
	}
	if err != nil || ev.Event != "hasses-presence" || ev.ID != "" || json.Unmarshal([]byte(ev.Data), &snap) != nil || len(snap.Presence) != 1 {
		s.t.Fatalf("want a hasses-presence event without id, got %+v %v", ev, err)
	}
	var got []string
	for _, c := range snap.Presence[0].Clients {
		got = append(got, c.ID)
	}
	if snap.Presence[0].Count != count || strings.Join(got, ",") != strings.Join(ids, ",") {
		s.t.Fatalf("snapshot %s, want count %d ids %q", ev.Data, count, ids)
	}
}

// Presence on one node: a snapshot first, a join on a client's first
// stream, a leave only once its last stream stayed gone for the grace
// period (a reconnect in between is neither), and GET /presence and
// tcppresence: list the streams per client.
func TestPresence(t *testing.T) {
	keyFile, issue := jwtFixture(t)
	d := start(t, "-pub=127.0.0.1:0", "-jwt-key="+keyFile, "-presence=room*", "-presence-grace=1s")
	tok := func(sub string) string { return issue(sub, time.Now()) }

	watch := d.subscribe("?subscribe=room1&id=w&access_token=" + tok("wendy"))
	watch.expectSnapshot(0)
	watch.expectPresence("hasses-join", presenceEvent{"room1", "w", "wendy"})

	tab1 := d.subscribe("?subscribe=room1-news&id=alice1&access_token=" + tok("alice"))
	tab1.expectSnapshot(1, "w")
	tab1.expectPresence("hasses-join", presenceEvent{"room1", "alice1", "alice"})
	watch.expectPresence("hasses-join", presenceEvent{"room1", "alice1", "alice"})
	tab1b := d.subscribe("?subscribe=room1&id=alice1&access_token=" + tok("alice")) // a second tab: no join
	tab1b.expectSnapshot(2, "alice1", "w")
	d.subscribe("?subscribe=news&id=nobody&access_token=" + tok("nobody")) // not a presence token
	anon := d.subscribe("?subscribe=room1&access_token=" + tok("anon"))    // no id: sees, is not seen
	anon.expectSnapshot(2, "alice1", "w")

	p := presenceOf(t, d, "room1", "news")
	if len(p) != 2 || p[0].Streams != 4 || p[0].Count != 2 || len(p[0].Clients) != 2 ||
		p[0].Clients[0] != (publish.Member{ID: "alice1", User: "alice", Streams: 2}) || p[0].Clients[1] != (publish.Member{ID: "w", User: "wendy", Streams: 1}) ||
		p[1].Streams != 2 || p[1].Count != 2 {
		t.Fatalf("presence %+v", p)
	}
	code, out, errOut := runHasses(t, nil, "presence", "-to", "http://"+d.pub+"/publish", "room1,news")
	var cli struct{ Presence []publish.TokenPresence }
	if code != 0 || json.Unmarshal([]byte(out), &cli) != nil || len(cli.Presence) != 2 || cli.Presence[0].Count != 2 || cli.Presence[1].Streams != 2 {
		t.Errorf("hasses presence: exit %d %q %q", code, out, errOut)
	}
	if got := d.command("tcppresence:room1"); !strings.Contains(got, `"clients":[{"id":"alice1","user":"alice","streams":2},{"id":"w","user":"wendy","streams":1}]`) {
		t.Fatalf("tcppresence: %s", got)
	}

	// Both tabs close and one comes back at once: neither a leave nor a join.
	tab1.c.Close()
	tab1b.c.Close()
	back := d.subscribe("?subscribe=room1&id=alice1&access_token=" + tok("alice"))
	back.expectSnapshot(2, "alice1", "w")
	d.send("room1=hello")
	watch.expect("hello")
	// Gone for good: the leave comes after the grace period.
	back.c.Close()
	leave := watch.expectPresence("hasses-leave", presenceEvent{"room1", "alice1", "alice"})
	anon.expect("hello")
	anon.expectPresence("hasses-leave", presenceEvent{"room1", "alice1", "alice"})

	// They are the token's events: in its history, replayed from an id.
	h, err := (&publish.Client{URL: "http://" + d.pub + "/publish"}).History(context.Background(), publish.HistoryQuery{Tokens: []string{"room1"}, Limit: 10})
	if err != nil || len(h.Events) != 4 || h.Events[3].ID != leave.ID || h.Events[3].Event != "hasses-leave" {
		t.Fatalf("history %+v %v", h, err)
	}
	resumed := d.subscribe("?subscribe=room1&lastEventId=" + h.Events[1].ID + "&access_token=" + tok("anon"))
	resumed.expect("hello")
	resumed.expectPresence("hasses-leave", presenceEvent{"room1", "alice1", "alice"})
}

// Presence across 3 nodes on a real redis-server: a client with streams on
// two nodes joins once and leaves once, every node's streams see the same
// events in the same order, GET /presence on any node counts every node's
// streams, and a node killed with -9 has its members leave within 15 s.
func TestClusterPresence(t *testing.T) {
	r := startRedis(t)
	args := []string{"-presence=room*", "-presence-grace=1s"}
	nodes := []*daemon{startNode(t, r, args...), startNode(t, r, args...), startNode(t, r, args...)}
	var watchers []*stream
	for i, d := range nodes {
		w := d.subscribe("?subscribe=room1&id=w" + string(rune('0'+i)))
		// Its node may not have read the previous joins yet: the snapshot
		// is as of the stream's position in the log, and the joins it
		// lacks follow it.
		ev, err := w.next(5 * time.Second)
		if err != nil || ev.Event != "hasses-presence" {
			t.Fatalf("want a snapshot: %+v %v", ev, err)
		}
		for j := range i {
			id := "w" + string(rune('0'+j))
			if !strings.Contains(ev.Data, `"id":"`+id+`"`) {
				w.expectPresence("hasses-join", presenceEvent{"room1", id, ""})
			}
		}
		watchers = append(watchers, w)
		for _, w := range watchers {
			w.expectPresence("hasses-join", presenceEvent{"room1", "w" + string(rune('0'+i)), ""})
		}
	}
	// One client, two nodes: one join.
	a0 := nodes[0].subscribe("?subscribe=room1&id=alice")
	a0.expectSnapshot(3, "w0", "w1", "w2")
	var joinID string
	for _, w := range append(watchers, a0) {
		joinID = w.expectPresence("hasses-join", presenceEvent{"room1", "alice", ""}).ID
	}
	a1 := nodes[1].subscribe("?subscribe=room1&id=alice")
	a1.expectSnapshot(4, "alice", "w0", "w1", "w2")
	if code, _, _ := nodes[2].publishHTTP(jsonMsg("room1", "after-join")); code != 200 {
		t.Fatal(code)
	}
	for _, w := range append(watchers, a1) {
		w.expect("after-join") // no second join before it
	}
	waitFor(t, "every node's streams listed", func() bool {
		p := presenceOf(t, nodes[2], "room1")
		return len(p) == 1 && p[0].Streams == 5 && p[0].Count == 4 && p[0].Clients[0] == (publish.Member{ID: "alice", Streams: 2})
	})

	// Its stream on node 0 goes: still there (node 1). Then node 1's: a leave.
	a0.c.Close()
	if code, _, _ := nodes[0].publishHTTP(jsonMsg("room1", "one-left")); code != 200 {
		t.Fatal(code)
	}
	time.Sleep(2500 * time.Millisecond) // past the grace period and a trim
	nodes[0].publishHTTP(jsonMsg("room1", "still-there"))
	for _, w := range watchers {
		w.expect("one-left", "still-there")
	}
	a1.c.Close()
	for _, w := range watchers {
		if ev := w.expectPresence("hasses-leave", presenceEvent{"room1", "alice", ""}); ev.ID <= joinID {
			t.Fatalf("leave %s not after join %s", ev.ID, joinID)
		}
	}

	// A node that joins later learns who is there from Redis, not from the
	// log it loads (here only its last second).
	time.Sleep(1100 * time.Millisecond)
	late := startNode(t, r, append(args, "-history-age=1s")...).subscribe("?subscribe=room1")
	late.expectSnapshot(3, "w0", "w1", "w2")

	// A node killed with -9: its members leave, on the other nodes.
	start := time.Now()
	nodes[2].kill9()
	for _, w := range watchers[:2] {
		ev, err := w.next(20 * time.Second)
		var got presenceEvent
		if err != nil || ev.Event != "hasses-leave" || json.Unmarshal([]byte(ev.Data), &got) != nil || got != (presenceEvent{"room1", "w2", ""}) {
			t.Fatalf("want w2's leave, got %+v %v", ev, err)
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("the dead node's member left after %v, want within 15 s", took)
	}
	p := presenceOf(t, nodes[0], "room1")
	if len(p) != 1 || p[0].Streams != 3 || p[0].Count != 2 { // w0, w1 and the late node's
		t.Fatalf("after the kill: %+v", p)
	}
}

// occupancy returns the occupied and vacated events received, as
// "+token" and "-token", in order.
func (r *hookReceiver) occupancy() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		switch ev.Type {
		case "occupied":
			out = append(out, "+"+ev.Token)
		case "vacated":
			out = append(out, "-"+ev.Token)
		}
	}
	return out
}

// waitOccupancy waits until the receiver has want (in any order: in a
// cluster, different nodes send them), and checks nothing more comes for a
// while.
func (r *hookReceiver) waitOccupancy(want ...string) {
	r.t.Helper()
	var got []string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if got = r.occupancy(); len(got) >= len(want) {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would come in the next batch
	got = r.occupancy()
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		r.t.Fatalf("occupancy events %q, want %q", got, want)
	}
}

// occupied and vacated webhooks: a token's first stream, its last gone
// for the grace period (a reconnect within it is neither), once each.
func TestWebhookOccupancy(t *testing.T) {
	hooks := newHookReceiver(t, 0)
	d := startHooked(t, start, hooks.srv.URL, "-webhook-events=occupied,vacated", "-presence-grace=1s")
	a := d.subscribe("?subscribe=room1-room2")
	b := d.subscribe("?subscribe=room1")
	hooks.waitOccupancy("+room1", "+room2")
	a.c.Close()
	b.c.Close()
	d.subscribe("?subscribe=room1") // back within the grace period
	hooks.waitOccupancy("+room1", "+room2", "-room2")
}

// Across 3 nodes on a real redis-server, a token is occupied once however
// many nodes have streams on it, and vacated once when the last goes; a
// node killed with -9 vacates its tokens.
func TestClusterWebhookOccupancy(t *testing.T) {
	r := startRedis(t)
	hooks := newHookReceiver(t, 0)
	var nodes []*daemon
	for range 3 {
		nodes = append(nodes, startHooked(t, func(t *testing.T, args ...string) *daemon { return startNode(t, r, args...) },
			hooks.srv.URL, "-webhook-events=occupied,vacated", "-presence-grace=1s"))
	}
	var streams []*stream
	for _, d := range nodes {
		streams = append(streams, d.subscribe("?subscribe=room1"))
	}
	nodes[2].subscribe("?subscribe=room2")
	hooks.waitOccupancy("+room1", "+room2")
	streams[0].c.Close()
	streams[1].c.Close()
	time.Sleep(2500 * time.Millisecond) // past the grace period: room1 still has node 2's stream
	hooks.waitOccupancy("+room1", "+room2")
	nodes[2].kill9()
	got := hooks.occupancy
	var last []string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if last = got(); len(last) >= 4 {
			break
		}
	}
	slices.Sort(last)
	if strings.Join(last, " ") != "+room1 +room2 -room1 -room2" {
		t.Fatalf("after the kill: %q", last)
	}
}
