package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Disconnect selects the streams to end: by client id, by user (a
// subscriber token's "sub"), by token, or by several at once (all must
// match).
type Disconnect struct {
	ID    string `json:"id,omitempty"`
	User  string `json:"user,omitempty"`
	Token string `json:"token,omitempty"`
}

// Disconnect ends the streams d selects, on every node (POST /disconnect
// beside Client.URL's /publish); they receive a hasses-disconnect event
// first and may reconnect. It returns how many streams of the node that
// answered were ended.
func (c *Client) Disconnect(ctx context.Context, d Disconnect) (int, error) {
	body, _ := json.Marshal(d)
	var r struct {
		Streams int `json:"streams"`
	}
	if err := c.call(ctx, http.MethodPost, "/disconnect", nil, body, &r); err != nil {
		return 0, err
	}
	return r.Streams, nil
}

// Revocation is a revocation of a user's subscriber tokens.
type Revocation struct {
	User  string    `json:"user"`
	At    time.Time `json:"at"`    // tokens issued before it are refused
	Until time.Time `json:"until"` // until then
}

// Revoke ends user's streams on every node and refuses their tokens
// issued until now, until until (zero: the server's default, a day),
// through POST /revoke. It
// returns how many streams of the node that answered were ended.
func (c *Client) Revoke(ctx context.Context, user string, until time.Time) (int, error) {
	req := map[string]any{"user": user}
	if !until.IsZero() {
		req["until"] = until
	}
	body, _ := json.Marshal(req)
	var r struct {
		Streams int `json:"streams"`
	}
	if err := c.call(ctx, http.MethodPost, "/revoke", nil, body, &r); err != nil {
		return 0, err
	}
	return r.Streams, nil
}

// Revocations lists the revocations in force (GET /revoke).
func (c *Client) Revocations(ctx context.Context) ([]Revocation, error) {
	var r struct {
		Revocations []Revocation `json:"revocations"`
	}
	if err := c.call(ctx, http.MethodGet, "/revoke", nil, nil, &r); err != nil {
		return nil, err
	}
	return r.Revocations, nil
}

// call sends a request to the endpoint path beside Client.URL's /publish
// and decodes its answer into out.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, out any) error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("publish API: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/publish") + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("publish API: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	raw, err := c.do(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("publish API: bad answer %q: %w", raw, err)
	}
	return nil
}
