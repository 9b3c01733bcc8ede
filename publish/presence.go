package publish

import (
	"context"
	"net/http"
	"net/url"
)

// Member is a client subscribed to a token: its id, the user its stream
// authenticated as (a JWT's "sub"), and how many streams it has open.
type Member struct {
	ID      string `json:"id"`
	User    string `json:"user,omitempty"`
	Streams int    `json:"streams,omitempty"`
}

// TokenPresence lists who is subscribed to one token.
type TokenPresence struct {
	Token string `json:"token"`
	// Streams counts every stream on the token, with or without a client
	// id.
	Streams int `json:"streams"`
	// Count is the number of clients (distinct ids); Clients lists the
	// first of them by id, at most the server's -presence-max.
	Count   int      `json:"count"`
	Clients []Member `json:"clients"`
}

// Presence lists the streams and clients subscribed to each token, on
// every node of a cluster (GET /presence beside Client.URL's /publish).
func (c *Client) Presence(ctx context.Context, tokens ...string) ([]TokenPresence, error) {
	var r struct {
		Presence []TokenPresence `json:"presence"`
	}
	if err := c.call(ctx, http.MethodGet, "/presence", url.Values{"token": tokens}, nil, &r); err != nil {
		return nil, err
	}
	return r.Presence, nil
}
