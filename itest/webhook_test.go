package itest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/publish"
)

var webhookSecret = []byte("itest-webhook-secret-0123456789")

// hookReceiver is a backend in the test process: it verifies each
// request's signature and records its events.
type hookReceiver struct {
	t    *testing.T
	fail int // the first fail requests get 500
	srv  *httptest.Server

	mu       sync.Mutex
	requests [][]publish.WebhookEvent // every request, answered 500 or not
	events   []publish.WebhookEvent   // those of the requests answered 200
	arrived  chan struct{}
}

func newHookReceiver(t *testing.T, fail int) *hookReceiver {
	r := &hookReceiver{t: t, fail: fail, arrived: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := publish.VerifyWebhook(webhookSecret, req.Header.Get(publish.WebhookHeader), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("webhook request %q: %v", body, err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var batch publish.WebhookBatch
	if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) == 0 {
		r.t.Errorf("webhook body %q: %v", body, err)
	}
	r.mu.Lock()
	r.requests = append(r.requests, batch.Events)
	failed := len(r.requests) <= r.fail
	if !failed {
		r.events = append(r.events, batch.Events...)
	}
	r.mu.Unlock()
	if failed {
		http.Error(w, "not now", http.StatusInternalServerError)
	}
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// wait returns the events received once there are n; it fails the test
// if they do not come.
func (r *hookReceiver) wait(n int) []publish.WebhookEvent {
	r.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			r.t.Fatalf("%d webhook events, want %d: %+v", len(got), n, got)
		}
	}
}

// startHooked starts hasses sending its webhooks to url.
func startHooked(t *testing.T, start startFunc, url string, args ...string) *daemon {
	t.Helper()
	file := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(file, append(webhookSecret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	// The stream events by default: the occupancy tests ask for theirs.
	return start(t, append([]string{"-webhook=" + url, "-webhook-secret-file=" + file, "-webhook-events=subscribe,unsubscribe"}, args...)...)
}

// checkStreamEvent checks a subscribe or unsubscribe event of stream s
// of d.
func checkStreamEvent(t *testing.T, ev publish.WebhookEvent, typ, reason string, d *daemon, s *stream, id, user string, tokens ...string) {
	t.Helper()
	if ev.Type != typ || ev.Reason != reason || ev.ID != id || ev.User != user || !slices.Equal(ev.Tokens, tokens) ||
		ev.Addr != s.c.LocalAddr().String() || ev.Node != d.sse || ev.Token != "" || time.Since(ev.Time) > time.Minute || time.Since(ev.Time) < 0 {
		t.Fatalf("event %+v, want %s %q of %s (id %q, user %q, tokens %q) on %s", ev, typ, reason, s.c.LocalAddr(), id, user, tokens, d.sse)
	}
}

// A stream that opens and closes gives one subscribe and one unsubscribe
// event ("closed"); one still open at a shutdown ends with "shutdown".
func TestWebhookSubscribeUnsubscribe(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		r := newHookReceiver(t, 0)
		d := startHooked(t, start, r.srv.URL+"/hasses")
		s := d.subscribe("?subscribe=room1-room2&id=tab1")
		got := r.wait(1)
		checkStreamEvent(t, got[0], "subscribe", "", d, s, "tab1", "", "room1", "room2")
		s.c.Close()
		got = r.wait(2)
		checkStreamEvent(t, got[1], "unsubscribe", "closed", d, s, "tab1", "", "room1", "room2")

		s2 := d.subscribe("?subscribe=room3")
		r.wait(3)
		if err := d.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		got = r.wait(4)
		checkStreamEvent(t, got[3], "unsubscribe", "shutdown", d, s2, "", "", "room3")
		if len(got) != 4 {
			t.Fatalf("events %+v, want 4", got)
		}
	})
}

// An HTTP/2 stream gives the same events: its client's address and the
// reason its end had.
func TestWebhookHTTP2(t *testing.T) {
	r := newHookReceiver(t, 0)
	d := startHooked(t, startTLS, r.srv.URL)
	var local atomic.Value
	cfg := &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
	tr := &http.Transport{ForceAttemptHTTP2: true, Protocols: new(http.Protocols),
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
			if err == nil {
				local.Store(c.LocalAddr().String())
			}
			return c, err
		}}
	tr.Protocols.SetHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+d.sse+"/sse?subscribe=room1&id=h2tab", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/2 stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	r.wait(1)
	cancel() // resets the HTTP/2 stream, the connection stays
	got := r.wait(2)
	for i, typ := range []string{"subscribe", "unsubscribe"} {
		ev := got[i]
		if ev.Type != typ || ev.ID != "h2tab" || !slices.Equal(ev.Tokens, []string{"room1"}) || ev.Addr != local.Load() || ev.Node != d.sse {
			t.Fatalf("event %d %+v, want %s of %v", i, ev, typ, local.Load())
		}
	}
	if got[1].Reason != "closed" {
		t.Fatalf("reason %q", got[1].Reason)
	}
}

// POST /disconnect ends a stream with reason "disconnect"; the user is
// the subscriber token's sub.
func TestWebhookDisconnect(t *testing.T) {
	r := newHookReceiver(t, 0)
	keyFile, issue := jwtFixture(t)
	d := startHooked(t, start, r.srv.URL, "-pub=127.0.0.1:0", "-jwt-key="+keyFile, "-webhook-events=unsubscribe")
	s := d.subscribe("?subscribe=room1&id=tab1&access_token=" + issue("alice", time.Now()))
	waitFor(t, "the stream", func() bool { return strings.Contains(d.command("tcpnumberofclients"), `"numberofclients": 1}`) })
	if n := disconnect(t, d, publish.Disconnect{User: "alice"}); n != 1 {
		t.Fatalf("disconnected %d streams", n)
	}
	s.expectDisconnected()
	got := r.wait(1) // only unsubscribe events are asked for
	checkStreamEvent(t, got[0], "unsubscribe", "disconnect", d, s, "tab1", "alice", "room1")
}

// A stream ends "expired" at its subscriber token's exp, "lifetime" at the
// end of -lifetime (3.2 to 4 s here: after the token's exp).
func TestWebhookExpiredAndLifetime(t *testing.T) {
	r := newHookReceiver(t, 0)
	pub, key := esKey(t)
	d := startHooked(t, start, r.srv.URL, "-jwt-key="+pub, "-lifetime=4s", "-webhook-events=unsubscribe")
	exp := time.Now().Add(1500*time.Millisecond).Unix() + 1
	tok := token(t, jwt.SigningMethodES256, key, jwt.MapClaims{"subscribe": []string{"*"}, "sub": "bob", "exp": exp})
	s := d.subscribe("?subscribe=t&id=short&access_token=" + tok)
	long := token(t, jwt.SigningMethodES256, key, jwt.MapClaims{"subscribe": []string{"*"}, "exp": time.Now().Add(time.Hour).Unix()})
	s2 := d.subscribe("?subscribe=t&id=long&access_token=" + long)
	got := r.wait(2)
	slices.SortFunc(got, func(a, b publish.WebhookEvent) int { return strings.Compare(b.ID, a.ID) })
	checkStreamEvent(t, got[0], "unsubscribe", "expired", d, s, "short", "bob", "t")
	checkStreamEvent(t, got[1], "unsubscribe", "lifetime", d, s2, "long", "", "t")
}

// A backend that fails twice with 500 gets the same events again, in
// order, once it answers 200; none is lost or doubled.
func TestWebhookRetried(t *testing.T) {
	r := newHookReceiver(t, 2)
	d := startHooked(t, start, r.srv.URL, "-admin=127.0.0.1:0")
	s := d.subscribe("?subscribe=room1&id=tab1")
	s.c.Close()
	r.wait(2)
	time.Sleep(300 * time.Millisecond) // a doubled event would come by now
	got := r.wait(2)
	if len(got) != 2 || got[0].Type != "subscribe" || got[1].Type != "unsubscribe" || got[0].ID != "tab1" || got[1].Reason != "closed" {
		t.Fatalf("events %+v", got)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.requests) < 3 {
		t.Fatalf("%d requests, want 2 refused and 1 accepted at least", len(r.requests))
	}
	for i := 1; i < 3; i++ {
		if fmt.Sprint(r.requests[i]) != fmt.Sprint(r.requests[0]) {
			t.Fatalf("request %d %+v is not the refused batch %+v again", i, r.requests[i], r.requests[0])
		}
	}
	for name, want := range map[string]float64{`hasses_webhook_events_total{result="sent"}`: 2, `hasses_webhook_events_total{result="dropped"}`: 0,
		`hasses_webhook_events_total{result="rejected"}`: 0, `hasses_webhook_events_total{result="expired"}`: 0, "hasses_webhook_failures_total": 2} {
		if got := d.metric(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if b := d.metric("hasses_webhook_batches_total"); b < 1 || b > 2 {
		t.Errorf("hasses_webhook_batches_total = %v, want 1 or 2", b)
	}
}

// A backend that accepts connections and never answers does not slow the
// streams: every publication is delivered while the webhooks wait.
func TestWebhookDeadReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	d := startHooked(t, start, "http://"+ln.Addr().String()+"/hook")
	// Streams coming and going fill the webhook queue meanwhile.
	for range 50 {
		d.subscribe("?subscribe=other").c.Close()
	}
	s := d.subscribe("?subscribe=room1&id=reader")
	const n = 2000
	var msgs strings.Builder
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("m-%d", i)
		fmt.Fprintf(&msgs, "room1=%s;", want[i])
	}
	d.send(msgs.String())
	s.expect(want...)
}
