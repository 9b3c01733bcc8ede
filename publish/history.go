package publish

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// HistoryQuery selects what History reads (GET /history).
type HistoryQuery struct {
	Tokens []string // at least one; "*" for every event
	After  string   // an event id; empty for the newest Limit events
	Limit  int      // events at most (the server allows 0 to 1000); 0 asks only for LastID
	ID     string   // a stream's client id: leave out the events that exclude it
}

// HistoryEvent is one retained event.
type HistoryEvent struct {
	ID     string   `json:"id"`
	Event  string   `json:"event,omitempty"`
	Tokens []string `json:"tokens"`
	Data   string   `json:"data"`
}

// History is the answer to a HistoryQuery.
type History struct {
	Events []HistoryEvent `json:"events"`
	// LastID is the position the answer brings the reader to: open a
	// stream with Last-Event-ID (or ?lastEventId=) LastID to receive
	// exactly what follows. When More is set, ask again with After LastID.
	LastID string `json:"last_id"`
	// Replay is, with After, what a stream resuming from After is told:
	// "complete", "gap" or "unknown" (X-Hasses-Replay).
	Replay string `json:"replay,omitempty"`
	More   bool   `json:"more"`
}

// Position returns the id of the newest event of tokens: a page rendered
// now opens its stream from it and misses nothing published after.
func (c *Client) Position(ctx context.Context, tokens ...string) (string, error) {
	h, err := c.History(ctx, HistoryQuery{Tokens: tokens})
	if err != nil {
		return "", err
	}
	return h.LastID, nil
}

// History reads the events a stream subscribed to q.Tokens would replay
// after q.After, from the server's GET /history (beside Client.URL's
// /publish).
func (c *Client) History(ctx context.Context, q HistoryQuery) (*History, error) {
	v := url.Values{"token": q.Tokens, "limit": {strconv.Itoa(q.Limit)}}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.ID != "" {
		v.Set("id", q.ID)
	}
	var h History
	if err := c.call(ctx, http.MethodGet, "/history", v, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
