package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	u, err := url.Parse(c.URL)
	if err != nil {
		return 0, fmt.Errorf("publish API: disconnect: %w", err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/publish") + "/disconnect"
	body, _ := json.Marshal(d)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("publish API: disconnect: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	raw, err := c.do(req)
	if err != nil {
		return 0, err
	}
	var r struct {
		Streams int `json:"streams"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return 0, fmt.Errorf("publish API: bad answer %q: %w", raw, err)
	}
	return r.Streams, nil
}
