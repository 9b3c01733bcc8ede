package stream

// Observer hears of every stream that opens and ends: exactly one Ended
// for each Opened. Its methods run on the stream's goroutine (an epoll
// loop, or a TLS connection's): they must not block.
type Observer interface {
	Opened(info StreamInfo)
	Ended(info StreamInfo, why Reason)
}

// StreamInfo describes a stream for an Observer.
type StreamInfo struct {
	ID     string   // the id= of the request; may be empty
	User   string   // the subscriber token's sub claim; empty without one
	Tokens []string // as requested; must not be changed
	Addr   string   // the client as logs show it ("client via proxy" behind a trusted proxy)
}

// Client is implemented by the handle a front end passes to Core.Open (the
// hub.Sub's Conn): it names the stream's client, which the Stream itself
// does not keep (tens of thousands of streams live at once).
type Client interface {
	ClientAddr() string
}

// Reason is why a stream ended.
type Reason uint8

const (
	Closed     Reason = iota // the client closed it, or a write failed
	Lifetime                 // its lifetime (-lifetime) ended
	Expired                  // its subscriber token expired
	Lagging                  // it fell past the lag limit, or its writes stalled
	Shutdown                 // the server shut down
	Disconnect               // a publisher disconnected it (POST /disconnect)
)

func (r Reason) String() string {
	switch r {
	case Closed:
		return "closed"
	case Lifetime:
		return "lifetime"
	case Expired:
		return "expired"
	case Lagging:
		return "lagging"
	case Shutdown:
		return "shutdown"
	case Disconnect:
		return "disconnect"
	}
	return "unknown"
}

// because records why the stream ends, unless it already has a reason:
// the first cause wins (a stream ended by its lifetime that then stalls
// while writing its last bytes ended by its lifetime).
func (st *Stream) because(r Reason) {
	if st.why == Closed {
		st.why = r
	}
}

// SetLagging records that the stream ends because its writes stalled or it
// fell past the lag limit, for a front end that finds it out itself (a
// blocking write that timed out).
func (st *Stream) SetLagging() { st.because(Lagging) }

// deadlineReason is why the stream ends at its deadline.
func (st *Stream) deadlineReason() Reason {
	if st.grant {
		return Expired
	}
	return Lifetime
}

// info describes the open stream st for the Observer.
func (st *Stream) info() StreamInfo {
	info := StreamInfo{ID: st.sub.ID, Tokens: st.Tokens(), User: st.sub.User()}
	if c, ok := st.sub.Conn.(Client); ok {
		info.Addr = c.ClientAddr()
	}
	return info
}
