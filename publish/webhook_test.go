package publish

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testWebhookSecret = []byte("0123456789abcdef-webhook")

func TestVerifyWebhookRoundTrip(t *testing.T) {
	body := []byte(`{"events":[{"type":"subscribe","id":"tab1","time":"2026-01-02T03:04:05.678Z"}]}`)
	at := time.Unix(1_800_000_000, 0)
	h := SignWebhook(testWebhookSecret, at, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := VerifyWebhook(testWebhookSecret, h, body, at.Add(time.Minute), time.Minute); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// A second signature (a secret being rotated) may come first.
	other := SignWebhook([]byte("another-secret-of-16+"), at, body)
	two := other + "," + h[strings.Index(h, "v1="):]
	if err := VerifyWebhook(testWebhookSecret, two, body, at, 0); err != nil {
		t.Fatalf("verify with two signatures %q: %v", two, err)
	}
}

func TestVerifyWebhookRefuses(t *testing.T) {
	body := []byte(`{"events":[]}`)
	at := time.Unix(1_800_000_000, 0)
	h := SignWebhook(testWebhookSecret, at, body)
	for _, c := range []struct {
		name   string
		secret []byte
		header string
		body   string
		now    time.Time
		want   error
	}{
		{"tampered body", testWebhookSecret, h, `{"events":[{}]}`, at, ErrWebhookSignature},
		{"other secret", []byte("not-the-secret-at-all"), h, string(body), at, ErrWebhookSignature},
		{"other timestamp", testWebhookSecret, strings.Replace(h, "t=1800000000", "t=1800000001", 1), string(body), at, ErrWebhookSignature},
		{"too old", testWebhookSecret, h, string(body), at.Add(5*time.Minute + time.Second), ErrWebhookTimestamp},
		{"from the future", testWebhookSecret, h, string(body), at.Add(-5*time.Minute - time.Second), ErrWebhookTimestamp},
		{"empty", testWebhookSecret, "", string(body), at, ErrWebhookHeader},
		{"no signature", testWebhookSecret, "t=1800000000", string(body), at, ErrWebhookHeader},
		{"no timestamp", testWebhookSecret, h[strings.Index(h, "v1="):], string(body), at, ErrWebhookHeader},
		{"short signature", testWebhookSecret, h[:len(h)-2], string(body), at, ErrWebhookHeader},
		{"negative time", testWebhookSecret, "t=-5," + h[strings.Index(h, "v1="):], string(body), at, ErrWebhookHeader},
	} {
		err := VerifyWebhook(c.secret, c.header, []byte(c.body), c.now, 0)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestWebhookEventJSON(t *testing.T) {
	ev := WebhookEvent{Type: "unsubscribe", ID: "tab1", Tokens: []string{"a", "b"}, Reason: "closed",
		Time: time.Date(2026, 1, 2, 4, 4, 5, 678_900_000, time.FixedZone("CET", 3600))}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"unsubscribe","id":"tab1","tokens":["a","b"],"reason":"closed","time":"2026-01-02T03:04:05.678Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back WebhookEvent
	if err := json.Unmarshal(b, &back); err != nil || back.Type != "unsubscribe" || !back.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)) {
		t.Fatalf("decoded %+v, %v", back, err)
	}
}

func FuzzParseWebhookHeader(f *testing.F) {
	f.Add(SignWebhook(testWebhookSecret, time.Unix(1_800_000_000, 0), nil))
	f.Add("t=1,v1=00,v0=zz")
	f.Add("t=,v1=")
	f.Add(",,,=")
	f.Fuzz(func(t *testing.T, h string) {
		ts, sigs, err := parseWebhookHeader(h)
		if err != nil {
			return
		}
		if ts == "" || len(sigs) == 0 {
			t.Fatalf("%q: accepted without a timestamp or signature", h)
		}
		for _, s := range sigs {
			if len(s) != 32 {
				t.Fatalf("%q: signature of %d bytes", h, len(s))
			}
		}
		// Whatever parses must verify or be refused, never panic.
		VerifyWebhook(testWebhookSecret, h, nil, time.Unix(1_800_000_000, 0), time.Hour)
	})
}
