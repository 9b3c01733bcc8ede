package server

import (
	"testing"
	"time"
)

func TestIdleMemory(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	m := newIdleMemory(activity{}, t0)
	steps := []struct {
		name string
		a    activity
		at   time.Duration
		want bool
	}{
		{"connecting", activity{conns: 600, streams: 600}, idleCheck, false},
		{"still connecting", activity{conns: 1200, streams: 1200}, 2 * idleCheck, false},
		{"the burst ended", activity{conns: 1200, streams: 1200}, 3 * idleCheck, true},
		{"once", activity{conns: 1200, streams: 1200}, 4 * idleCheck, false},
		{"events flow", activity{seq: 5, conns: 1200, streams: 1200}, 5 * idleCheck, false},
		{"a small burst", activity{seq: 5, conns: 2100, streams: 2100}, 6 * idleCheck, false},
		{"… ends: too small", activity{seq: 6, conns: 2100, streams: 2100}, 7 * idleCheck, false},
		{"quiet, not long enough", activity{seq: 6, conns: 2100, streams: 2100}, 7*idleCheck + idleQuiet - time.Millisecond, false},
		{"quiet spell", activity{seq: 6, conns: 2100, streams: 2100}, 7*idleCheck + idleQuiet, true},
		{"once per spell", activity{seq: 6, conns: 2100, streams: 2100}, 7*idleCheck + 2*idleQuiet, false},
		// Churn: streams close and others open; a burst is counted from
		// the fewest connections since.
		{"closing", activity{seq: 6, conns: 100, streams: 100}, 30 * time.Second, false},
		{"reopening", activity{seq: 6, conns: 1200, streams: 1100}, 30*time.Second + idleCheck, false},
		{"heads answered", activity{seq: 6, conns: 1200, streams: 1200}, 30*time.Second + 2*idleCheck, false},
		{"the reconnect burst ended", activity{seq: 6, conns: 1200, streams: 1200}, 30*time.Second + 3*idleCheck, true},
	}
	for _, s := range steps {
		if got := m.check(s.a, at(s.at)); got != s.want {
			t.Fatalf("%s: check = %v, want %v", s.name, got, s.want)
		}
	}
}

// TestIdleMemoryLargeHeap: past 4,000 connections a burst must add a
// quarter of them, so that forced collections stay rarer than the
// collector's own (GOGC=50).
func TestIdleMemoryLargeHeap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newIdleMemory(activity{conns: 100000, streams: 100000}, t0)
	for i, c := range []int64{120000, 120000, 125000, 125000} {
		want := c == 125000 && i == 3
		if got := m.check(activity{conns: c, streams: c}, t0.Add(time.Duration(i+1)*idleCheck)); got != want {
			t.Fatalf("check %d at %d connections = %v, want %v", i, c, got, want)
		}
	}
}
