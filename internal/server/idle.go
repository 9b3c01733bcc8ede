package server

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// The collector lets the heap grow to 1.5 times what is live before it
// collects (GOGC=50; during a storm of new topics, by at least 64 MiB: see
// internal/gcpace), and keeps what it freed for the next burst. A server
// whose streams are idle for hours would hold that headroom, about a third
// of its memory, for nothing. So the memory is collected and handed back
// to the system
//   - once a burst of connections ends: at least burstMin more than the
//     fewest since the last time, then unchanged for a check (streams
//     opened after a restart are mostly idle, and that is when the
//     headroom is largest); within a CPU budget that refills at 1 % of a
//     CPU (burstShare), so that these collections cost little however
//     large the heap and however the connections come;
//   - once tokens stop being subscribed fast (burstTopics new topics or
//     more in a check, then none such for burstCool), within the same
//     budget: while they were, the collector let the heap grow by at least
//     64 MiB (internal/gcpace), so that a storm of streams on many new
//     tokens (whose heap grows with live data, not garbage) costs a few
//     collections, not a dozen; the first rule waits for this one
//     meanwhile;
//   - once nothing has happened (no event, no connection opened or closed)
//     for idleQuiet, once per quiet spell.
const (
	idleCheck   = 100 * time.Millisecond
	idleQuiet   = 10 * time.Second
	burstMin    = 1000
	burstTopics = 10_000 // new topics in a check: 100,000 a second
	burstCool   = 500 * time.Millisecond
	burstShare  = 100
	burstBudget = 100 * time.Millisecond // the most the budget holds
)

// activity is what changes when anything happens: an event, a stream or
// a connection opened or closed.
type activity struct {
	seq            uint64
	conns, streams int64
	topics         int
}

func (s *Server) activity() activity {
	st, hs := s.core.Stats(), s.hub.Stats()
	return activity{seq: hs.LastSeq, conns: st.Conns, streams: st.Streams, topics: hs.Topics}
}

// idleMemory decides when to return memory, from the activity seen at
// every check.
type idleMemory struct {
	last     activity
	since    time.Time // when last changed
	returned bool      // in this quiet spell
	low      int64     // fewest connections since memory was last returned
	budget   time.Duration
	at       time.Time // when budget was last refilled
	// fast is set while topics are made in a burst: burstTopics or
	// more in a check, until burstCool after the last such check.
	fast     bool
	fastTill time.Time
}

func newIdleMemory(a activity, now time.Time) *idleMemory {
	return &idleMemory{last: a, since: now, low: a.conns, budget: burstBudget, at: now}
}

// check records a and says whether to return memory now.
func (m *idleMemory) check(a activity, now time.Time) bool {
	m.budget = min(burstBudget, m.budget+now.Sub(m.at)/burstShare)
	m.at = now
	m.low = min(m.low, a.conns)
	steady := a.conns == m.last.conns && a.streams == m.last.streams
	if a.topics-m.last.topics >= burstTopics {
		m.fastTill = now.Add(burstCool)
	}
	fast := now.Before(m.fastTill)
	ended := m.fast && !fast
	m.fast = fast
	if a != m.last {
		m.last, m.since, m.returned = a, now, false
	}
	if (steady && a.conns-m.low >= burstMin && !fast || ended) && m.budget > 0 ||
		!m.returned && now.Sub(m.since) >= idleQuiet {
		m.low, m.returned = a.conns, true
		return true
	}
	return false
}

// took records that a return cost cpu.
func (m *idleMemory) took(cpu time.Duration) { m.budget -= cpu }

// gcCPU is the CPU time the collector and the scavenger have taken, as
// the runtime estimates it.
func gcCPU() time.Duration {
	s := []rtmetrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/scavenge/total:cpu-seconds"}}
	rtmetrics.Read(s)
	var sec float64
	for _, v := range s {
		if v.Value.Kind() == rtmetrics.KindFloat64 {
			sec += v.Value.Float64()
		}
	}
	return time.Duration(sec * float64(time.Second))
}

// returnIdleMemory runs until ctx is done.
func (s *Server) returnIdleMemory(ctx context.Context) {
	tick := time.NewTicker(idleCheck)
	defer tick.Stop()
	m := newIdleMemory(s.activity(), time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			ret := m.check(s.activity(), now)
			s.pacer.Boost(m.fast) // before the return: its collection runs without the floor
			if ret {
				cpu := gcCPU()
				debug.FreeOSMemory()
				cpu = gcCPU() - cpu
				m.took(cpu)
				s.log.Debug("returned the collector's headroom", "took", time.Since(now), "cpu", cpu)
			}
		}
	}
}
