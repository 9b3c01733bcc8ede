package itest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A client on 20 tokens reconnects after missing events sent to all of
// them. Within -max-lag (counted once per event, not once per token) the
// replay is complete; over it, the answer is a gap (hasses-reset), then
// live events, and the stream is not cut. It used to be cut on every
// reconnect with nothing sent, for as long as the history held the events.
func TestReplayOnManyTokensNotCut(t *testing.T) {
	d := start(t, "-max-lag=50000", "-history-bytes=1000000", "-history-count=1000")
	tokens := make([]string, 20)
	for i := range tokens {
		tokens[i] = fmt.Sprint("t", i)
	}
	query := "?subscribe=" + strings.Join(tokens, "-")
	publish := func(n int, data string) {
		var b strings.Builder
		for range n {
			line, _ := json.Marshal(map[string]any{"tokens": tokens, "data": data})
			b.Write(line)
			b.WriteByte('\n')
		}
		d.send(b.String())
	}
	s := d.subscribe(query)
	publish(1, "first")
	last := s.expect("first")[0].ID
	s.c.Close()

	body := strings.Repeat("x", 4000)
	publish(10, body) // 40 KB; 800 KB summed over the tokens
	s = d.subscribe(query, "Last-Event-ID: "+last)
	if s.Status != 200 || s.Header.Get("X-Hasses-Replay") != "complete" {
		t.Fatalf("40 KB replay: status %d, replay %q", s.Status, s.Header.Get("X-Hasses-Replay"))
	}
	want := make([]string, 10)
	for i := range want {
		want[i] = body
	}
	s.expect(want...)
	s.c.Close()

	publish(20, body) // 120 KB since the first
	for range 3 {     // every reconnect, not just one
		s = d.subscribe(query, "Last-Event-ID: "+last)
		if s.Status != 200 || s.Header.Get("X-Hasses-Replay") != "gap" {
			t.Fatalf("120 KB replay: status %d, replay %q", s.Status, s.Header.Get("X-Hasses-Replay"))
		}
		if ev, err := s.next(5e9); err != nil || ev.Event != "hasses-reset" || ev.Data != "gap" {
			t.Fatalf("first event %+v, %v; want hasses-reset gap", ev, err)
		}
		publish(1, "live")
		s.expect("live")
		s.c.Close()
	}
}
