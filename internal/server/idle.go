package server

import (
	"context"
	"runtime/debug"
	"time"
)

// The collector lets the heap grow to 1.5 times what is live before it
// collects (GOGC=50), and keeps what it freed for the next burst. A server
// whose streams are idle for hours would hold that headroom, about a third
// of its memory, for nothing. So the memory is collected and handed back
// to the system
//   - once a burst of connections ends: the connections grew by at least
//     burstMin and a quarter since the last time (so that the forced
//     collections cost at most about what the collector's own would), then
//     stayed unchanged for a check (streams opened after a restart are
//     mostly idle, and that is when the headroom is largest);
//   - once nothing has happened (no event, no connection opened or closed)
//     for idleQuiet, once per quiet spell.
const (
	idleCheck = 100 * time.Millisecond
	idleQuiet = 10 * time.Second
	burstMin  = 1000
)

// activity is what changes when anything happens: an event, a stream or
// a connection opened or closed.
type activity struct {
	seq            uint64
	conns, streams int64
}

func (s *Server) activity() activity {
	st := s.core.Stats()
	return activity{seq: s.hub.LastSeq(), conns: st.Conns, streams: st.Streams}
}

// idleMemory decides when to return memory, from the activity seen at
// every check.
type idleMemory struct {
	last     activity
	since    time.Time // when last changed
	returned bool      // in this quiet spell
	low      int64     // fewest connections since memory was last returned
}

func newIdleMemory(a activity, now time.Time) *idleMemory {
	return &idleMemory{last: a, since: now, low: a.conns}
}

// check records a and says whether to return memory now.
func (m *idleMemory) check(a activity, now time.Time) bool {
	m.low = min(m.low, a.conns)
	steady := a.conns == m.last.conns && a.streams == m.last.streams
	if a != m.last {
		m.last, m.since, m.returned = a, now, false
	}
	if steady && a.conns-m.low >= max(burstMin, m.low/4) {
		m.low, m.returned = a.conns, true
		return true
	}
	if !m.returned && now.Sub(m.since) >= idleQuiet {
		m.low, m.returned = a.conns, true
		return true
	}
	return false
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
			if m.check(s.activity(), now) {
				debug.FreeOSMemory()
			}
		}
	}
}
