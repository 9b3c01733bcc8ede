package itest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// readHistory asks d's publish API for GET /history.
func readHistory(t *testing.T, d *daemon, q publish.HistoryQuery) *publish.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := (&publish.Client{URL: "http://" + d.pub + "/publish"}).History(ctx, q)
	if err != nil {
		t.Fatalf("history %+v: %v", q, err)
	}
	return h
}

// replayOf opens a stream on tokens with Last-Event-ID after (and client
// id), reads n events and checks that no more come.
func replayOf(t *testing.T, d *daemon, tokens []string, id, after string, n int) (replay string, data []string) {
	t.Helper()
	q := "?subscribe=" + strings.Join(tokens, "-")
	if id != "" {
		q += "&id=" + id
	}
	s := d.subscribe(q, "Last-Event-ID: "+after)
	for range n {
		ev, err := s.next(5 * time.Second)
		if err != nil {
			t.Fatalf("%v after %s: %d events, then %v", tokens, after, len(data), err)
		}
		if ev.Event != "hasses-reset" {
			data = append(data, ev.Data)
		}
	}
	s.expectNone(100 * time.Millisecond)
	s.c.Close()
	return s.Header.Get("X-Hasses-Replay"), data
}

// GET /history answers exactly what a reconnecting stream replays: many
// tokens, "*", prefixes, exclusion, gaps at the history bound and ids of
// another instance.
func TestHistoryEqualsReplay(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0", "-history-count=6")
	d.send("a=1;b=2;*=3;a-me=4;a*=5;ab=6;c=7;a#upd=8;b=9;a=10;a=11;a=12;a=13;a=14;b=15")
	head := readHistory(t, d, publish.HistoryQuery{Tokens: []string{"a"}})
	if head.LastID == "" || len(head.Events) != 0 {
		t.Fatalf("position: %+v", head)
	}
	epoch, _, _ := strings.Cut(head.LastID, "-")
	for _, tokens := range [][]string{{"a"}, {"b"}, {"a", "b"}, {"ab"}, {"*"}, {"c", "none"}} {
		for _, id := range []string{"", "me"} {
			for _, seq := range []string{"1", "5", "9", "12", "15"} {
				after := epoch + "-" + seq
				h := readHistory(t, d, publish.HistoryQuery{Tokens: tokens, ID: id, After: after, Limit: 1000})
				var data []string
				for _, e := range h.Events {
					data = append(data, e.Data)
				}
				n := len(h.Events)
				if h.Replay != "complete" {
					n++ // the hasses-reset event
				}
				replay, got := replayOf(t, d, tokens, id, after, n)
				if replay != h.Replay || !slices.Equal(data, got) {
					t.Errorf("%v id %q after %s: history %s %q, stream %s %q", tokens, id, after, h.Replay, data, replay, got)
				}
				if h.LastID != head.LastID || h.More {
					t.Errorf("%v after %s: last_id %s (more %v), want %s", tokens, after, h.LastID, h.More, head.LastID)
				}
			}
		}
	}
	if h := readHistory(t, d, publish.HistoryQuery{Tokens: []string{"a"}, After: "zz-1", Limit: 10}); h.Replay != "unknown" || len(h.Events) != 0 {
		t.Errorf("another instance's id: %+v", h)
	}
	// The CLI prints the same answer.
	code, out, errOut := runHasses(t, nil, "history", "-to", "http://"+d.pub+"/publish", "-limit", "2", "a,b")
	var h publish.History
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Events) != 2 || h.Events[1].Data != "15" || h.LastID != head.LastID {
		t.Errorf("hasses history: exit %d %q %q", code, out, errOut)
	}
}

// The render-time pattern: a page rendered with the position (limit=0)
// opens its stream from it and receives exactly what was published after
// the render, even when its first connection drops before any event.
func TestHistoryRenderTimePosition(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0")
	d.send("room1=before")
	pos := readHistory(t, d, publish.HistoryQuery{Tokens: []string{"room1"}}).LastID
	d.send("room1=after render 1;room1=after render 2")
	// The first connection is cut before its first event.
	s := d.subscribe("?subscribe=room1&lastEventId=" + url.QueryEscape(pos))
	s.c.Close()
	d.send("room1=while away")
	// The browser reconnects to the same URL (no Last-Event-ID yet).
	s = d.subscribe("?subscribe=room1&lastEventId=" + url.QueryEscape(pos))
	if got := s.Header.Get("X-Hasses-Replay"); got != "complete" {
		t.Fatalf("replay %q", got)
	}
	s.expect("after render 1", "after render 2", "while away")
	s.expectNone(100 * time.Millisecond)
}

// Every node of a cluster answers GET /history alike.
func TestClusterHistory(t *testing.T) {
	r := startRedis(t)
	nodes := []*daemon{startNode(t, r), startNode(t, r), startNode(t, r)}
	var ids []string
	for i := range 6 {
		tok := []string{"room1", "room2", "room*"}[i%3]
		code, id, _ := nodes[i%3].publishHTTP(jsonMsg(tok, fmt.Sprint("m", i)))
		if code != 200 {
			t.Fatalf("publish %d: %d", i, code)
		}
		ids = append(ids, id)
	}
	want := ""
	for i, d := range nodes {
		var h *publish.History
		// A node applies the log within milliseconds; ask until it has.
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			h = readHistory(t, d, publish.HistoryQuery{Tokens: []string{"room1"}, After: ids[0], Limit: 100})
			if h.LastID == ids[5] || time.Now().After(end) {
				break
			}
		}
		b, _ := json.Marshal(h)
		if i == 0 {
			want = string(b)
			if h.Replay != "complete" || len(h.Events) != 3 { // m2 (room*), m3, m5 (room*)
				t.Fatalf("node 1: %s", b)
			}
		} else if string(b) != want {
			t.Errorf("node %d: %s\nnode 1: %s", i+1, b, want)
		}
	}
}

// The render-time pattern in a browser: a page rendered with the position
// opens EventSource with lastEventId=<position>; its first connection is
// cut before any event, and the tab still shows exactly what was
// published after the render, once.
func TestBrowserRenderTimePosition(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0", "-retry=500ms")
	d.send("t=before the render\n")
	pos := readHistory(t, d, publish.HistoryQuery{Tokens: []string{"t"}}).LastID
	d.send("t=after the render\n")
	p := newCutProxy(t, d.sse)
	p.arm(cutAfterOpen, "", func() { d.send("t=while away\n") })
	tab, closeTab := openTab(t, "http://"+p.addr()+"/sse?subscribe=t&lastEventId="+url.QueryEscape(pos))
	defer closeTab()
	if !p.waitStreams(2, 15*time.Second) {
		t.Fatalf("the tab did not reconnect after the cut:\n%s", p.describe())
	}
	d.send("t=back\n")
	tab.expect("after the render", "while away", "back")
}
