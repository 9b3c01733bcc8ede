// Package webhook tells a backend what happens to streams and tokens: it
// POSTs signed JSON batches of events ({"events":[…]}) to one URL.
//
// Send never blocks: it queues the event and returns. Run posts the queue
// in batches, one request in flight so that batches arrive in order, and
// retries a batch with backoff on a network error or a 5xx; a 4xx drops it,
// and a full queue drops its oldest events. A dead or slow backend costs
// the streams nothing: it loses events, counted in Stats and logged at a
// bounded rate.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/lograte"
	"github.com/hasses-go/hasses/publish"
)

// Event is one event of a batch (see publish.WebhookEvent, which backends
// decode).
type Event = publish.WebhookEvent

// The event types.
const (
	Subscribe   = "subscribe"   // a stream opened
	Unsubscribe = "unsubscribe" // a stream ended
	Occupied    = "occupied"    // a token got its first subscriber in the cluster
	Vacated     = "vacated"     // a token lost its last subscriber (after the grace period)
)

// Types lists every event type, in the order the documentation gives them.
var Types = []string{Subscribe, Unsubscribe, Occupied, Vacated}

// Defaults for Config's zero fields.
const (
	DefaultBatchInterval  = 100 * time.Millisecond // a batch collects events this long after its first
	DefaultBatchMax       = 100                    // events per batch
	DefaultRetryWindow    = time.Minute            // a batch is retried this long, then given up
	DefaultQueueCap       = 10000                  // events waiting; beyond, the oldest are dropped
	DefaultRequestTimeout = 5 * time.Second        // one POST
	DefaultMaxBackoff     = 5 * time.Second        // the longest wait between two attempts
	DefaultFinalFlush     = 2 * time.Second        // what is queued at shutdown gets this long
	firstBackoff          = 100 * time.Millisecond
)

// MinSecretLen is the shortest secret New accepts: shorter ones are
// guessed.
const MinSecretLen = 16

// Config configures a Sender.
type Config struct {
	URL    string // http:// or https://
	Secret []byte // signs every request (publish.WebhookHeader)
	// Events are the types to send; nil means all.
	Events []string
	// Node names this server in the events (Event.Node), when Send's
	// caller left it empty.
	Node string
	// Client posts the batches; nil means a client that follows no
	// redirects (a 3xx counts as a refusal).
	Client *http.Client
	// Logger receives failures, at most a line per second per kind; nil
	// means slog.Default().
	Logger *slog.Logger

	BatchInterval  time.Duration // zero means DefaultBatchInterval
	BatchMax       int           // zero means DefaultBatchMax
	RetryWindow    time.Duration // zero means DefaultRetryWindow
	QueueCap       int           // zero means DefaultQueueCap
	RequestTimeout time.Duration // zero means DefaultRequestTimeout
	MaxBackoff     time.Duration // zero means DefaultMaxBackoff
	FinalFlush     time.Duration // zero means DefaultFinalFlush
}

// ParseTypes reads a comma-separated list of event types (the
// -webhook-events option); empty means all.
func ParseTypes(s string) ([]string, error) {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if mask([]string{t}) == 0 {
			return nil, fmt.Errorf("unknown webhook event type %q (known: %s)", t, strings.Join(Types, ","))
		}
		out = append(out, t)
	}
	return out, nil
}

func mask(types []string) uint8 {
	var m uint8
	for _, t := range types {
		for i, k := range Types {
			if t == k {
				m |= 1 << i
			}
		}
	}
	return m
}

// Stats are a Sender's counters, in events unless said otherwise.
type Stats struct {
	Sent     int64 // delivered: the backend answered 2xx
	Batches  int64 // requests answered 2xx
	Failures int64 // attempts (requests) that failed: network error, timeout or 5xx
	Retried  int64 // attempts that were retries
	Dropped  int64 // dropped from a full queue
	Rejected int64 // refused by the backend: 4xx (or 3xx), not retried
	Expired  int64 // given up: the retry window passed, or shutdown came
}

// Sender queues events and posts them. A nil *Sender is webhooks off: Send
// does nothing and Wants is false.
type Sender struct {
	cfg    Config
	target string // the URL without credentials, for logs
	types  uint8
	client *http.Client
	logs   lograte.Limiter[string]

	mu    sync.Mutex
	queue []Event // queue[head:] wait, oldest first
	head  int
	wake  chan struct{}

	sent, batches, failures, retried, dropped, rejected, expired atomic.Int64
}

// New checks cfg and returns a Sender; Run makes it post.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: URL %q is not an http:// or https:// URL", redact(cfg.URL))
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("webhook: the secret has %d bytes, it needs at least %d (make one with openssl rand -base64 24)", len(cfg.Secret), MinSecretLen)
	}
	s := &Sender{cfg: cfg, target: redact(cfg.URL), types: mask(Types), wake: make(chan struct{}, 1)}
	if cfg.Events != nil {
		if s.types = mask(cfg.Events); len(cfg.Events) > 0 && s.types == 0 {
			return nil, fmt.Errorf("webhook: no known event type in %q", cfg.Events)
		}
	}
	c := &s.cfg
	c.Secret = bytes.Clone(c.Secret)
	if c.BatchInterval <= 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.BatchMax <= 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.RetryWindow <= 0 {
		c.RetryWindow = DefaultRetryWindow
	}
	if c.QueueCap <= 0 {
		c.QueueCap = DefaultQueueCap
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.FinalFlush <= 0 {
		c.FinalFlush = DefaultFinalFlush
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	s.client = c.Client
	if s.client == nil {
		s.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return s, nil
}

// redact hides a URL's password.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Wants reports whether events of type t are sent, so that callers skip
// building the others.
func (s *Sender) Wants(t string) bool { return s != nil && s.types&mask([]string{t}) != 0 }

// Send queues ev, stamped with the node and the time when it has none. It
// never blocks: with the queue full, the oldest event is dropped.
func (s *Sender) Send(ev Event) {
	if s == nil || !s.Wants(ev.Type) {
		return
	}
	if ev.Node == "" {
		ev.Node = s.cfg.Node
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	dropped := false
	s.mu.Lock()
	if len(s.queue)-s.head >= s.cfg.QueueCap {
		s.queue[s.head] = Event{}
		s.head++
		dropped = true
	}
	if s.head > 0 && s.head >= len(s.queue)/2 && len(s.queue) == cap(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if dropped {
		d := s.dropped.Add(1)
		s.logs.Log(s.cfg.Logger, slog.LevelWarn, "queue full", "webhook: the queue is full (the backend is slow or down): dropping the oldest events",
			"url", s.target, "queue", s.cfg.QueueCap, "dropped_total", d)
	}
}

// queued returns how many events wait.
func (s *Sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head
}

// take removes up to n of the oldest events.
func (s *Sender) take(n int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.queue)-s.head)
	out := make([]Event, n)
	copy(out, s.queue[s.head:])
	clear(s.queue[s.head : s.head+n])
	s.head += n
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	return out
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	return Stats{Sent: s.sent.Load(), Batches: s.batches.Load(), Failures: s.failures.Load(), Retried: s.retried.Load(),
		Dropped: s.dropped.Load(), Rejected: s.rejected.Load(), Expired: s.expired.Load()}
}

// Run posts batches until ctx is done, then gives what is still queued
// FinalFlush to go (one attempt per batch) and returns.
func (s *Sender) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.final(nil)
			return
		case <-s.wake:
		}
		// A batch collects events for BatchInterval after its first, or
		// until it is full.
		timer.Reset(s.cfg.BatchInterval)
	collect:
		for s.queued() < s.cfg.BatchMax {
			select {
			case <-ctx.Done():
				timer.Stop()
				s.final(nil)
				return
			case <-s.wake:
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		for s.queued() > 0 {
			batch := s.take(s.cfg.BatchMax)
			if !s.deliver(ctx, batch) {
				s.final(batch)
				return
			}
			if s.queued() < s.cfg.BatchMax {
				break // the rest collects for a while
			}
		}
		if s.queued() > 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// deliver posts batch, retrying it for up to RetryWindow; false means ctx
// ended first and batch is still to send.
func (s *Sender) deliver(ctx context.Context, batch []Event) bool {
	body, err := json.Marshal(publish.WebhookBatch{Events: batch})
	if err != nil { // cannot happen: the events are plain data
		s.expired.Add(int64(len(batch)))
		s.cfg.Logger.Error("webhook: cannot encode a batch", "err", err)
		return true
	}
	giveUp := time.Now().Add(s.cfg.RetryWindow)
	backoff := firstBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.retried.Add(1)
		}
		done, err := s.attempt(ctx, len(batch), body)
		if done {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.failures.Add(1)
		if time.Now().Add(backoff).After(giveUp) {
			s.expired.Add(int64(len(batch)))
			s.logs.Log(s.cfg.Logger, slog.LevelWarn, "expired", "webhook: giving up a batch after retrying",
				"url", s.target, "err", err, "events", len(batch), "retried_for", s.cfg.RetryWindow, "expired_total", s.expired.Load())
			return true
		}
		s.logs.Log(s.cfg.Logger, slog.LevelWarn, "failed", "webhook: posting a batch failed; retrying",
			"url", s.target, "err", err, "events", len(batch), "failures_total", s.failures.Load())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// attempt posts body, a batch of n events, once and counts the outcome:
// done means delivered, or refused for good (4xx); otherwise err says what
// failed.
func (s *Sender) attempt(ctx context.Context, n int, body []byte) (done bool, err error) {
	status, err := s.post(ctx, body)
	switch {
	case err != nil:
		return false, err
	case status/100 == 2:
		s.sent.Add(int64(n))
		s.batches.Add(1)
		return true, nil
	case status < 500:
		s.rejected.Add(int64(n))
		s.logs.Log(s.cfg.Logger, slog.LevelWarn, "rejected", "webhook: the backend refused a batch; not retried",
			"url", s.target, "status", status, "events", n, "rejected_total", s.rejected.Load())
		return true, nil
	}
	return false, fmt.Errorf("status %d", status)
}

// final gives batch, then what is queued, one attempt each within
// FinalFlush; what is left is counted as expired.
func (s *Sender) final(batch []Event) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.FinalFlush)
	defer cancel()
	for {
		if batch == nil {
			batch = s.take(s.cfg.BatchMax)
		}
		if len(batch) == 0 {
			return
		}
		body, err := json.Marshal(publish.WebhookBatch{Events: batch})
		if err != nil || ctx.Err() != nil {
			s.expired.Add(int64(len(batch)))
		} else if done, _ := s.attempt(ctx, len(batch), body); !done {
			s.failures.Add(1)
			s.expired.Add(int64(len(batch)))
		}
		batch = nil
	}
}

// post sends one signed request and returns the status.
func (s *Sender) post(ctx context.Context, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hasses-webhook")
	req.Header.Set(publish.WebhookHeader, publish.SignWebhook(s.cfg.Secret, time.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the log line already
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	resp.Body.Close()
	return resp.StatusCode, nil
}

// ReadSecret reads the secret of -webhook-secret-file: the file's content
// without surrounding white space.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("webhook secret: %s is empty", path)
	}
	return b, nil
}

// Target is the URL the events go to, its password hidden, for logs.
func (s *Sender) Target() string { return s.target }
