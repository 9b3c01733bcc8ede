package publish

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WebhookHeader is the header that carries a webhook request's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
const WebhookHeader = "X-Hasses-Signature"

// DefaultWebhookTolerance is how old a webhook request's timestamp may be
// (and how far ahead of the receiver's clock) for VerifyWebhook callers
// without a better idea: the server retries a batch for up to a minute,
// signing each attempt anew.
const DefaultWebhookTolerance = 5 * time.Minute

// WebhookBatch is the body of a webhook request.
type WebhookBatch struct {
	Events []WebhookEvent `json:"events"`
}

// WebhookEvent is one event of a webhook batch. Type is "subscribe",
// "unsubscribe", "occupied" or "vacated"; the fields a type lacks are left
// out of the JSON.
type WebhookEvent struct {
	Type   string   `json:"type"`
	ID     string   `json:"id,omitempty"`     // subscribe, unsubscribe: the stream's id=
	User   string   `json:"user,omitempty"`   // subscribe, unsubscribe: the JWT's sub claim
	Tokens []string `json:"tokens,omitempty"` // subscribe, unsubscribe: the stream's tokens
	Token  string   `json:"token,omitempty"`  // occupied, vacated
	Addr   string   `json:"addr,omitempty"`   // subscribe, unsubscribe: the client's address
	Node   string   `json:"node,omitempty"`   // the node that saw it
	Reason string   `json:"reason,omitempty"` // unsubscribe: closed, lifetime, expired, lagging, shutdown, disconnect
	// Time is when it happened; the JSON has RFC 3339 in UTC with
	// milliseconds.
	Time time.Time `json:"time"`
}

// MarshalJSON writes Time in UTC with milliseconds.
func (e WebhookEvent) MarshalJSON() ([]byte, error) {
	type plain WebhookEvent // without this method
	return json.Marshal(struct {
		plain
		Time string `json:"time"`
	}{plain(e), e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
}

// SignWebhook returns the WebhookHeader value for body sent at t.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(webhookMAC(secret, ts, body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of VerifyWebhook.
var (
	ErrWebhookHeader    = errors.New("webhook: malformed " + WebhookHeader + " header")
	ErrWebhookSignature = errors.New("webhook: signature does not match")
	ErrWebhookTimestamp = errors.New("webhook: timestamp outside the tolerance")
)

// VerifyWebhook checks a webhook request: header is its WebhookHeader
// value, body its raw body, now the receiver's clock. It refuses a
// signature that is not the secret's (a forgery or a tampered body) and a
// timestamp more than tolerance away from now (a replay); zero tolerance
// means DefaultWebhookTolerance. Several v1= values may be given (a secret
// being rotated): one matching is enough.
func VerifyWebhook(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, sigs, err := parseWebhookHeader(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	t, _ := strconv.ParseInt(ts, 10, 64)
	if d := now.Unix() - t; d > int64(tolerance/time.Second) || -d > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: signed at %d, now %d", ErrWebhookTimestamp, t, now.Unix())
	}
	want := webhookMAC(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrWebhookSignature
}

// parseWebhookHeader splits "t=<digits>,v1=<hex>[,v1=<hex>...]"; unknown
// keys are skipped, for later schemes.
func parseWebhookHeader(h string) (ts string, sigs [][]byte, err error) {
	for part := range strings.SplitSeq(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, ErrWebhookHeader
		}
		switch k {
		case "t":
			if ts != "" || v == "" || len(v) > 18 || strings.Trim(v, "0123456789") != "" {
				return "", nil, ErrWebhookHeader
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return "", nil, ErrWebhookHeader
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return "", nil, ErrWebhookHeader
	}
	return ts, sigs, nil
}
