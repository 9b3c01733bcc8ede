package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client publishes through the HTTP API of a hasses server.
type Client struct {
	// URL is the publish endpoint, e.g. "http://127.0.0.1:8086/publish".
	URL string
	// Secret is sent as "Authorization: Bearer <Secret>" when set.
	Secret string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// Error is an error answer of the server.
type Error struct {
	Status  int
	Message string
}

// Error reads "401 Unauthorized: missing or wrong secret: ..." for the HTTP
// API and "control port: ..." for the control port (Status 0).
func (e *Error) Error() string {
	if e.Status == 0 {
		return "control port: " + e.Message
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Publish sends m and returns the server's answer.
func (c *Client) Publish(ctx context.Context, m Message) (*Result, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	raw, err := c.do(req)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("hasses: publish: bad answer %q: %w", raw, err)
	}
	return &r, nil
}

// do sends req with the secret and returns the body of a 200 answer, or
// the server's error.
func (c *Client) do(req *http.Request) ([]byte, error) {
	if c.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.Secret)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("publish API: %w", err)
	}
	defer resp.Body.Close()
	// A history answer holds at most 1 MiB of data, escaped.
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("publish API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return nil, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	return raw, nil
}
