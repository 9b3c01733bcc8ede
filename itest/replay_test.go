package itest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReplayAfterReconnect(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		s := d.subscribe("?subscribe=room1-room2&id=me")
		d.send("room1=a;room2=b")
		got := s.expect("a", "b")
		s.c.Close()
		// Missed while away: exact, prefix, excluded, broadcast, and others' tokens.
		d.send("room1=1;room3=not mine;room*=2;room2-me=excluded;*=3;room2-other=4;room2#update=5")
		r := d.subscribe("?subscribe=room1-room2&id=me", "Last-Event-ID: "+got[1].ID)
		if h := r.Header.Get("X-Hasses-Replay"); h != "complete" {
			t.Errorf("X-Hasses-Replay = %q, want complete", h)
		}
		evs := r.expect("1", "2", "3", "4", "5")
		if evs[4].Event != "update" {
			t.Errorf("named event replayed as %q", evs[4].Event)
		}
		d.send("room1=live")
		r.expect("live")
		// The query parameter works like the header.
		q := d.subscribe("?subscribe=room1&lastEventId=" + got[1].ID)
		q.expect("1", "2", "3", "live")
	})
}

func TestReplayUnknownOrExpiredID(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-history-count=3")
		s := d.subscribe("?subscribe=t")
		d.send("t=first")
		first := s.expect("first")[0].ID
		s.c.Close()
		for i := range 10 {
			d.send(fmt.Sprintf("t=%d", i))
		}
		// No wait: the count bound holds from the moment of publication.
		gap := d.subscribe("?subscribe=t", "Last-Event-ID: "+first)
		if h := gap.Header.Get("X-Hasses-Replay"); h != "gap" {
			t.Errorf("expired id: X-Hasses-Replay = %q, want gap", h)
		}
		ev, err := gap.next(5 * time.Second)
		if err != nil || ev.Event != "hasses-reset" {
			t.Fatalf("expired id: first event %+v %v, want hasses-reset", ev, err)
		}
		gap.expect("7", "8", "9") // what history still has
		// The reset's id is where the stream resumed: a connection cut
		// right after it replays completely, without a second reset.
		again := d.subscribe("?subscribe=t", "Last-Event-ID: "+ev.ID)
		if h := again.Header.Get("X-Hasses-Replay"); h != "complete" {
			t.Errorf("reconnect with the reset's id %s: X-Hasses-Replay = %q, want complete", ev.ID, h)
		}
		again.expect("7", "8", "9")

		for _, id := range []string{"1795331136", "zz-5", "garbage"} {
			u := d.subscribe("?subscribe=t", "Last-Event-ID: "+id)
			if h := u.Header.Get("X-Hasses-Replay"); h != "unknown" {
				t.Errorf("id %q: X-Hasses-Replay = %q, want unknown", id, h)
			}
			// The reset event's id is where the stream resumes, not the bad id,
			// so that a reconnect does not send the bad id again.
			if ev, err := u.next(5 * time.Second); err != nil || ev.Event != "hasses-reset" || ev.ID == id {
				t.Errorf("id %q: first event %+v %v", id, ev, err)
			}
			d.send("t=after")
			u.expect("after")
		}
	})
}

// TestReplaySeamUnderConcurrentPublishing reconnects in the middle of a
// stream of publications, many times: the replayed and the live part must
// join without a gap or a duplicate.
func TestReplaySeamUnderConcurrentPublishing(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		// The history holds every event: the count bound holds from the
		// moment of publication, and the publisher is far ahead.
		d := start(t, "-history-count=1000")
		const total = 600
		first := d.subscribe("?subscribe=seam") // before the first publication
		var wg sync.WaitGroup
		wg.Go(func() {
			c, err := net.Dial("tcp", d.ctl)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := 1; i <= total; i++ {
				fmt.Fprintf(c, "seam=%d;", i)
				if i%20 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
		next, lastID, reconnects := 1, "", 0
		for next <= total {
			s := first
			if lastID != "" {
				s = d.subscribe("?subscribe=seam", "Last-Event-ID: "+lastID)
				reconnects++
			}
			for range 25 { // read a few, then drop the connection
				ev, err := s.next(5 * time.Second)
				if err != nil {
					t.Fatalf("waiting for %d: %v", next, err)
				}
				if ev.Data != strconv.Itoa(next) {
					t.Fatalf("after %d reconnects: got %q, want %d (a gap or a duplicate at the seam)", reconnects, ev.Data, next)
				}
				lastID = ev.ID
				next++
				if next > total {
					break
				}
			}
			s.c.Close()
		}
		wg.Wait()
		if reconnects < 10 {
			t.Errorf("only %d reconnects", reconnects)
		}
	})
}

func TestHeartbeatOnIdleStream(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-heartbeat=300ms", "-retry=1500ms")
		s := d.subscribe("?subscribe=idle")
		s.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		sawRetry, sawComment := false, false
		for !(sawRetry && sawComment) {
			payload, err := s.chunk()
			if err != nil {
				t.Fatalf("retry %v, heartbeat %v: %v", sawRetry, sawComment, err)
			}
			// Neither ends a block: no client library sees an event.
			sawRetry = sawRetry || strings.HasPrefix(payload, "retry: 1500\nid: ")
			if strings.HasPrefix(payload, ":") && payload != ":\n" {
				t.Fatalf("heartbeat %q, want a comment line that ends no block", payload)
			}
			sawComment = sawComment || strings.HasPrefix(payload, ":")
		}
	})
}

func TestLifetimeEndsStreamCleanly(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-lifetime=1s")
		s := d.subscribe("?subscribe=t")
		s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		begin := time.Now()
		for {
			_, err := s.chunk()
			if err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("stream did not end with the last chunk: %v", err)
				}
				break
			}
		}
		if el := time.Since(begin); el < 700*time.Millisecond || el > 3*time.Second {
			t.Errorf("stream of lifetime 1s ended after %v", el)
		}
	})
}
