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

// TestIdleMemoryBudget: returns after bursts take at most their CPU
// budget, which refills at 1/burstShare of the time.
func TestIdleMemoryBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newIdleMemory(activity{}, t0)
	conns := int64(0)
	burst := func(at time.Duration) bool { // a burst, then a steady check
		t.Helper()
		conns += burstMin
		if m.check(activity{conns: conns, streams: conns}, t0.Add(at)) {
			t.Fatalf("returned at %v while connections grew", at)
		}
		return m.check(activity{conns: conns, streams: conns}, t0.Add(at+idleCheck))
	}
	if !burst(time.Second) || !burst(2*time.Second) {
		t.Fatal("a burst within the budget did not return memory")
	}
	m.took(burstBudget + 50*time.Millisecond) // 50 ms over: 5 s to refill
	if burst(3 * time.Second) {
		t.Fatal("returned memory over budget")
	}
	if m.check(activity{conns: conns, streams: conns}, t0.Add(7*time.Second)) {
		t.Fatal("returned memory before the budget refilled")
	}
	if !m.check(activity{conns: conns, streams: conns}, t0.Add(8*time.Second+idleCheck)) {
		t.Fatal("did not return once the budget refilled")
	}
}

// While topics are made fast (burstTopics or more a check, until
// burstCool after the last such check) the collector's floor is on; when
// they stop, the memory it let pile up is handed back, steady or not,
// within the budget. Meanwhile no return: a lull is not the end.
func TestIdleMemoryTopicStorm(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newIdleMemory(activity{}, t0)
	cool := burstCool / idleCheck
	const k = burstTopics
	steps := []struct {
		name       string
		a          activity
		at         time.Duration // in checks
		fast, want bool
	}{
		{"a few", activity{conns: 50, streams: 50, topics: k / 2}, 1, false, false},
		{"fast", activity{conns: 300, streams: 250, topics: 2 * k}, 2, true, false},
		{"still fast", activity{conns: 1200, streams: 1200, topics: 4 * k}, 3, true, false},
		{"a lull: steady, 1,000 more, but no return", activity{conns: 1200, streams: 1200, topics: 4 * k}, 4, true, false},
		{"fast again", activity{conns: 1500, streams: 1500, topics: 5 * k}, 5, true, false},
		{"slower", activity{conns: 1550, streams: 1540, topics: 5*k + 100}, 5 + cool - 1, true, false},
		{"cooled: the floor's garbage goes", activity{conns: 1560, streams: 1560, topics: 5*k + 200}, 5 + cool, false, true},
		{"slow", activity{conns: 1600, streams: 1600, topics: 5*k + 300}, 6 + cool, false, false},
		// A storm of connections on tokens that exist: no floor.
		{"connecting to old tokens", activity{conns: 3600, streams: 3600, topics: 5*k + 300}, 20, false, false},
		{"… steady: the old rule", activity{conns: 3600, streams: 3600, topics: 5*k + 300}, 21, false, true},
	}
	for _, s := range steps {
		got := m.check(s.a, t0.Add(s.at*idleCheck))
		if m.fast != s.fast || got != s.want {
			t.Fatalf("%s: fast %v, return %v; want %v, %v", s.name, m.fast, got, s.fast, s.want)
		}
	}
}
