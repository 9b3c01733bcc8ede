package hub

import "strings"

// TokenCount describes one token for the dashboard's top-token tables.
type TokenCount struct {
	Token       string
	Subscribers int   // streams subscribed to exactly this token
	Events      int64 // events routed to it since the previous TopTokens call
}

// TopTokens returns the n tokens with the most subscribers and the n tokens
// that received the most events since the previous call, each list in
// descending order (ties by name). It walks every topic, so it is meant for
// one caller, about once a second (the dashboard sampler): each call
// restarts the event counts. It lets go of the hub's lock every
// collectCheck topics, so that a walk over a million topics does not hold
// up publishing; a topic created or dropped meanwhile may be missed.
func (h *Hub) TopTokens(n int) (bySubs, byEvents []TokenCount) {
	if n <= 0 {
		return nil, nil
	}
	bySubs = make([]TokenCount, 0, n+1)
	byEvents = make([]TokenCount, 0, n+1)
	h.mu.Lock()
	defer h.mu.Unlock()
	walked := 0
	// Ranging over a map that changes between iterations is allowed: the
	// changes are made under the lock, never during a step of the range.
	for _, t := range h.topics {
		if walked++; walked%collectCheck == 0 {
			h.collectPause()
		}
		if t.dropped {
			continue
		}
		head := t.head()
		c := TokenCount{Token: t.name, Subscribers: int(t.nsubs), Events: int64(head - min(t.counted, head))}
		t.counted = head
		if c.Subscribers > 0 {
			bySubs = insertTop(bySubs, c, n, func(a, b TokenCount) bool {
				return a.Subscribers > b.Subscribers || a.Subscribers == b.Subscribers && strings.Compare(a.Token, b.Token) < 0
			})
		}
		if c.Events > 0 {
			byEvents = insertTop(byEvents, c, n, func(a, b TokenCount) bool {
				return a.Events > b.Events || a.Events == b.Events && strings.Compare(a.Token, b.Token) < 0
			})
		}
	}
	return bySubs, byEvents
}

// insertTop inserts c into top, kept sorted by before and at most n long.
func insertTop(top []TokenCount, c TokenCount, n int, before func(a, b TokenCount) bool) []TokenCount {
	if len(top) == n && !before(c, top[n-1]) {
		return top
	}
	i := len(top)
	for i > 0 && before(c, top[i-1]) {
		i--
	}
	top = append(top, TokenCount{})
	copy(top[i+1:], top[i:])
	top[i] = c
	if len(top) > n {
		top = top[:n]
	}
	return top
}
