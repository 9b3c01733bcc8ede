package server

import (
	"context"
	"runtime/debug"
	"time"
)

// The collector lets the heap grow to 1.5 times what is live before it
// collects (GOGC=50), and keeps what it freed for the next burst. A server
// whose streams are idle for hours would hold that headroom, about a third
// of its memory, for nothing: once nothing has happened for idleQuiet, the
// memory is collected and handed back to the system, once per quiet spell.
const (
	idleCheck = 5 * time.Second
	idleQuiet = 10 * time.Second
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

// returnIdleMemory runs until ctx is done.
func (s *Server) returnIdleMemory(ctx context.Context) {
	tick := time.NewTicker(idleCheck)
	defer tick.Stop()
	last, since, returned := s.activity(), time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if a := s.activity(); a != last {
				last, since, returned = a, now, false
				continue
			}
			if !returned && now.Sub(since) >= idleQuiet {
				debug.FreeOSMemory()
				returned = true
			}
		}
	}
}
