package hub

// A disconnection travels as an event, in the order of the streams' other
// events (and through the cluster's log like any publication): each stream
// of its targets that Match selects receives it as its last event, then
// ends. A stream that subscribed after it was published never sees it, so
// a replay cannot end a stream that reconnected.

// Match selects streams by client id and by user (a subscriber token's
// "sub"); an empty field matches any, so a Match with neither selects
// every stream of the message's targets.
type Match struct {
	ID   string
	User string
	// Revoke, when set, also revokes User's subscriber tokens issued
	// before it: every node applies it as it delivers the event.
	Revoke *Revocation
}

// Revocation refuses a user's tokens issued before At until Until (Unix
// milliseconds).
type Revocation struct{ At, Until int64 }

func (m *Match) matches(s *Sub) bool {
	return (m.ID == "" || m.ID == s.ID) && (m.User == "" || m.User == s.user)
}

// User returns who s authenticated as (a JWT's "sub"), given to Open; it
// does not change once open.
func (s *Sub) User() string { return s.user }

// Ended reports that s received a disconnection in full: nothing more is
// to be written to it. Only the owner's goroutine may call it.
func (s *Sub) Ended() bool { return s.ended && s.cursor >= s.edge && s.partEv == nil }
