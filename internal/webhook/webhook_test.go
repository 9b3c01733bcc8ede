package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

var secret = []byte("a-webhook-secret-of-32-bytes....")

// receiver is a test backend: it verifies every request and records its
// events; status picks each request's answer (nil: 200).
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	bodies [][]Event // one per request, in arrival order
	got    chan int  // request numbers, as they arrive
	status func(n int) int
}

func newReceiver(t *testing.T, status func(n int) int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, got: make(chan int, 1000), status: status}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading a request: %v", err)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("Content-Type %q", ct)
	}
	if req.Method != http.MethodPost {
		r.t.Errorf("method %s", req.Method)
	}
	if err := publish.VerifyWebhook(secret, req.Header.Get(publish.WebhookHeader), body, time.Now(), time.Minute); err != nil {
		r.t.Errorf("signature: %v", err)
	}
	var b publish.WebhookBatch
	if err := json.Unmarshal(body, &b); err != nil {
		r.t.Errorf("body %q: %v", body, err)
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, b.Events)
	n := len(r.bodies)
	r.mu.Unlock()
	status := 200
	if r.status != nil {
		status = r.status(n)
	}
	w.WriteHeader(status)
	r.got <- n
}

// wait returns once request n has arrived.
func (r *receiver) wait(n int) {
	r.t.Helper()
	for {
		select {
		case m := <-r.got:
			if m >= n {
				return
			}
		case <-time.After(20 * time.Second):
			r.t.Fatalf("request %d never came", n)
		}
	}
}

func (r *receiver) requests() [][]Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]Event(nil), r.bodies...)
}

// run starts s and returns a function that stops it and waits for Run to
// return.
func run(t *testing.T, s *Sender) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	cfg.Secret = secret
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(evs []Event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.ID)
	}
	return b.String()
}

func seq(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		if i > from {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	return b.String()
}

func sendN(s *Sender, from, to int) {
	for i := from; i < to; i++ {
		s.Send(Event{Type: Subscribe, ID: fmt.Sprint(i), Tokens: []string{"room1"}, Addr: "192.0.2.1:5000"})
	}
}

func TestFullBatchGoesAtOnce(t *testing.T) {
	r, srv := newReceiver(t, nil)
	// The interval never passes: only a full batch or the shutdown sends.
	s := newSender(t, Config{URL: srv.URL, Node: "node1", BatchInterval: time.Hour})
	sendN(s, 0, 103)
	stop := run(t, s)
	r.wait(1)
	got := r.requests()
	if len(got) != 1 || ids(got[0]) != seq(0, 100) {
		t.Fatalf("first requests: %v", got)
	}
	ev := got[0][7]
	if ev.Type != Subscribe || ev.Node != "node1" || ev.Addr != "192.0.2.1:5000" || len(ev.Tokens) != 1 || ev.Tokens[0] != "room1" ||
		ev.Time.IsZero() || time.Since(ev.Time) > time.Minute {
		t.Fatalf("event %+v", ev)
	}
	// Stopped while a request waits for its answer, Run sends the batch
	// again: let the answer come first.
	waitStats(t, s, Stats{Sent: 100, Batches: 1})
	stop() // the last 3 go with the shutdown
	got = r.requests()
	if len(got) != 2 || ids(got[1]) != seq(100, 103) {
		t.Fatalf("requests after the shutdown: %v", got)
	}
	if st := s.Stats(); st != (Stats{Sent: 103, Batches: 2}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestFewEventsGoAfterTheInterval(t *testing.T) {
	r, srv := newReceiver(t, nil)
	s := newSender(t, Config{URL: srv.URL, BatchInterval: 10 * time.Millisecond})
	run(t, s)
	sendN(s, 0, 3)
	var got []Event
	for n := 1; len(got) < 3; n++ {
		r.wait(n)
		got = nil
		for _, b := range r.requests() {
			got = append(got, b...)
		}
	}
	if ids(got) != seq(0, 3) {
		t.Fatalf("events %v", ids(got))
	}
}

func TestRetriedAfterServerErrors(t *testing.T) {
	r, srv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return 500
		}
		return 204
	})
	s := newSender(t, Config{URL: srv.URL, BatchInterval: time.Millisecond, BatchMax: 5})
	sendN(s, 0, 5) // one full batch
	run(t, s)
	r.wait(3)
	sendN(s, 5, 7) // after the retried one, in order
	r.wait(4)
	got := r.requests()
	if len(got) != 4 {
		t.Fatalf("%d requests", len(got))
	}
	for i := range 3 {
		if ids(got[i]) != seq(0, 5) {
			t.Fatalf("request %d: %v, want the same batch each time", i, ids(got[i]))
		}
	}
	if ids(got[3]) != seq(5, 7) {
		t.Fatalf("last request: %v", ids(got[3]))
	}
	waitStats(t, s, Stats{Sent: 7, Batches: 2, Failures: 2, Retried: 2})
}

func waitStats(t *testing.T, s *Sender, want Stats) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", s.Stats(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	r, srv := newReceiver(t, func(n int) int {
		if n == 1 {
			return 400
		}
		return 200
	})
	s := newSender(t, Config{URL: srv.URL, BatchInterval: time.Millisecond, BatchMax: 4})
	sendN(s, 0, 4)
	run(t, s)
	r.wait(1)
	waitStats(t, s, Stats{Rejected: 4})
	sendN(s, 4, 8)
	r.wait(2)
	got := r.requests()
	if len(got) != 2 || ids(got[1]) != seq(4, 8) {
		t.Fatalf("requests %v: the refused batch must not come again", got)
	}
	waitStats(t, s, Stats{Rejected: 4, Sent: 4, Batches: 1})
}

func TestGivenUpAfterTheRetryWindow(t *testing.T) {
	r, srv := newReceiver(t, func(int) int { return 503 })
	s := newSender(t, Config{URL: srv.URL, BatchInterval: time.Millisecond, RetryWindow: 250 * time.Millisecond, BatchMax: 2})
	sendN(s, 0, 2)
	run(t, s)
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Expired != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	n := len(r.requests())
	if n < 2 || st.Failures != int64(n) || st.Retried != int64(n-1) || st.Sent != 0 {
		t.Fatalf("%d requests, stats %+v", n, st)
	}
}

// hangingListener accepts connections and never answers.
func hangingListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String() + "/hook"
}

func TestDeadReceiverNeverBlocksSend(t *testing.T) {
	const total, capacity, batch = 100_000, 1000, 100
	s := newSender(t, Config{URL: hangingListener(t), QueueCap: capacity, BatchMax: batch,
		BatchInterval: time.Hour, RequestTimeout: time.Hour, FinalFlush: 50 * time.Millisecond})
	stop := run(t, s)
	sendN(s, 0, batch) // the first batch goes, full, and hangs
	for s.queued() > 0 {
		time.Sleep(time.Millisecond)
	}
	sendN(s, batch, total)
	if q := s.queued(); q != capacity {
		t.Fatalf("%d queued, want the cap %d", q, capacity)
	}
	if st := s.Stats(); st.Dropped != total-batch-capacity || st.Sent != 0 {
		t.Fatalf("stats %+v, want %d dropped", st, total-batch-capacity)
	}
	// The newest are kept.
	s.mu.Lock()
	first, last := s.queue[s.head].ID, s.queue[len(s.queue)-1].ID
	s.mu.Unlock()
	if first != fmt.Sprint(total-capacity) || last != fmt.Sprint(total-1) {
		t.Fatalf("queue holds %s..%s", first, last)
	}
	stop() // returns, despite the hanging request
	if st := s.Stats(); st.Expired != batch+capacity {
		t.Fatalf("stats after the shutdown %+v, want %d expired", st, batch+capacity)
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newSender(t, Config{URL: url, BatchInterval: time.Millisecond, RetryWindow: 200 * time.Millisecond})
	sendN(s, 0, 3)
	run(t, s)
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().Expired != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if st := s.Stats(); st.Failures < 2 || st.Retried < 1 {
		t.Fatalf("stats %+v: connection refused must be retried", st)
	}
}

func TestEventTypesFilter(t *testing.T) {
	r, srv := newReceiver(t, nil)
	s := newSender(t, Config{URL: srv.URL, Events: []string{Occupied, Vacated}, BatchInterval: time.Millisecond})
	if s.Wants(Subscribe) || s.Wants(Unsubscribe) || !s.Wants(Occupied) || !s.Wants(Vacated) || s.Wants("other") {
		t.Fatal("Wants does not follow Events")
	}
	stop := run(t, s)
	s.Send(Event{Type: Subscribe, ID: "no"})
	s.Send(Event{Type: Occupied, Token: "room1", Node: "elsewhere"})
	stop()
	got := r.requests()
	if len(got) != 1 || len(got[0]) != 1 || got[0][0].Type != Occupied || got[0][0].Token != "room1" || got[0][0].Node != "elsewhere" {
		t.Fatalf("requests %+v", got)
	}
}

func TestNilSenderIsOff(t *testing.T) {
	var s *Sender
	s.Send(Event{Type: Subscribe})
	if s.Wants(Subscribe) || s.Stats() != (Stats{}) {
		t.Fatal("a nil Sender must do nothing")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []Config{
		{URL: "ftp://example.com/", Secret: secret},
		{URL: "example.com/hook", Secret: secret},
		{URL: "http://", Secret: secret},
		{URL: "https://example.com/hook", Secret: []byte("short")},
		{URL: "https://example.com/hook", Secret: secret, Events: []string{"bogus"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(Config{URL: "https://user:pw@example.com/hook", Secret: []byte("short")}); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("error %v", err)
	}
}

func TestParseTypes(t *testing.T) {
	got, err := ParseTypes(" subscribe, vacated,")
	if err != nil || strings.Join(got, ",") != "subscribe,vacated" {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := ParseTypes(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := ParseTypes("subscribe,join"); err == nil {
		t.Fatal("accepted an unknown type")
	}
}
