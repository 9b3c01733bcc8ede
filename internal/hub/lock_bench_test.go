package hub

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLockHold reports the longest hold of the hub's lock (what
// publishing or delivering on unrelated tokens may wait) during one
// operation, at 1,000 and 1,000,000 topics (one event each, per-user
// style): a trim that expires every event at once (its longest chunk), a
// subscribe and an unsubscribe of 64 new tokens, a trim when nothing
// expires, and a publication (one hold each).
func BenchmarkLockHold(b *testing.B) {
	for _, topics := range []int{1000, 1000000} {
		now := time.Unix(1000, 0)
		h := New(Config{Now: func() time.Time { return now }, HistoryAge: time.Minute})
		o := h.NewOwner(func() {})
		fill := func() {
			for i := range topics {
				h.Publish(Message{Targets: []string{fmt.Sprint("user", i)}, Data: payload64})
			}
			h.Trim() // the pass over new events
		}
		fill()
		tokens := make([]string, 64)
		for i := range tokens {
			tokens[i] = fmt.Sprint("new", i)
		}
		var s *Sub
		ops := []struct {
			name  string
			setup func()
			op    func() time.Duration // the longest hold
		}{
			{"trim-expiring-all", func() { now = now.Add(2 * time.Minute) }, func() time.Duration { h.Trim(); return h.trims.maxHold }},
			{"subscribe-64", fill, func() time.Duration { return timed(func() { s = mustSub(h.Subscribe(o, tokens, "", "", nil)) }) }},
			{"unsubscribe-64", nil, func() time.Duration { return timed(func() { h.Unsubscribe(s) }) }},
			{"trim-idle", nil, func() time.Duration { h.Trim(); return h.trims.maxHold }}, // nothing expires
			{"publish", nil, func() time.Duration {
				return timed(func() { h.Publish(Message{Targets: []string{"user1"}, Data: payload64}) })
			}},
			{"top-tokens", nil, func() time.Duration { return longestHold(h, func() { h.TopTokens(10) }) }}, // a dashboard sample
			{"cluster-reset", nil, func() time.Duration { return timed(func() { h.RaiseFloor(h.LastSeq()) }) }},
		}
		for _, c := range ops {
			b.Run(fmt.Sprintf("topics=%d/%s", topics, c.name), func(b *testing.B) {
				var worst time.Duration
				for b.Loop() {
					if c.setup != nil {
						b.StopTimer()
						c.setup()
						b.StartTimer()
					}
					worst = max(worst, c.op())
				}
				b.ReportMetric(float64(worst.Microseconds()), "max-hold-µs")
			})
		}
	}
}

func mustSub(s *Sub, _ Replay) *Sub { return s }

// longestHold runs f, which lets go of h's lock now and then (through
// collectPause), and returns its longest hold, about.
func longestHold(h *Hub, f func()) time.Duration {
	var worst time.Duration
	t0 := time.Now()
	h.testPause = func() {
		worst = max(worst, time.Since(t0))
		t0 = time.Now()
	}
	f()
	h.testPause = nil
	return max(worst, time.Since(t0))
}

func timed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

// BenchmarkCollectHold reports the longest hold of the hub's lock while
// one owner collects 100,000 streams of a topic published to (a broadcast,
// as one loop of a large server sees it), the longest whole Collect, and
// how often it let go of the lock.
func BenchmarkCollectHold(b *testing.B) {
	h := New(Config{})
	o := h.NewOwner(func() {})
	for range 100000 {
		h.Subscribe(o, []string{"room"}, "", "", nil)
	}
	var ready []*Sub
	h.Publish(Message{Targets: []string{"*"}, Data: payload64})
	ready = h.Collect(o, ready) // warm: ready has room for all
	var worst, whole time.Duration
	var t0 time.Time
	pauses := 0
	h.testPause = func() {
		worst = max(worst, time.Since(t0)) // from the lock's taking to this release, about
		t0 = time.Now()
		pauses++
	}
	for b.Loop() {
		h.Publish(Message{Targets: []string{"*"}, Data: payload64})
		start := time.Now()
		t0 = start
		ready = h.Collect(o, ready[:0])
		worst = max(worst, time.Since(t0))
		whole = max(whole, time.Since(start))
		if len(ready) != 100000 {
			b.Fatalf("%d collected", len(ready))
		}
	}
	b.ReportMetric(float64(worst.Microseconds()), "max-hold-µs")
	b.ReportMetric(float64(whole.Microseconds()), "max-collect-µs")
	b.ReportMetric(float64(pauses)/float64(b.N), "pauses/op")
}
