package loadgen

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	hasses "github.com/hasses-go/hasses/publish"
)

// WebhookReport is what the server's webhooks (-webhook) brought to the
// sink during a run.
type WebhookReport struct {
	Batches       int            `json:"batches"`
	Events        map[string]int `json:"events"`
	BadSignatures int            `json:"bad_signatures,omitempty"`
	DelayP50ms    float64        `json:"delay_p50_ms"` // from an event's time to its batch's arrival
	DelayP99ms    float64        `json:"delay_p99_ms"`
	DelayMaxms    float64        `json:"delay_max_ms"`
}

// webhookSink receives the server's signed webhook batches and counts
// them, so a run shows whether the batches keep up.
type webhookSink struct {
	secret []byte
	srv    *http.Server
	mu     sync.Mutex
	rep    WebhookReport
	delays Histogram
}

// startWebhookSink listens on addr; secretFile holds the -webhook-secret-file.
func startWebhookSink(addr, secretFile string) (*webhookSink, error) {
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &webhookSink{secret: []byte(strings.TrimSpace(string(secret))), rep: WebhookReport{Events: map[string]int{}}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln) // stopped by stop
	return s, nil
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	now := time.Now()
	var b hasses.WebhookBatch
	if err != nil || json.Unmarshal(body, &b) != nil {
		http.Error(w, "bad batch", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasses.VerifyWebhook(s.secret, r.Header.Get(hasses.WebhookHeader), body, now, 0) != nil {
		s.rep.BadSignatures++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	s.rep.Batches++
	for _, ev := range b.Events {
		s.rep.Events[ev.Type]++
		s.delays.Add(now.Sub(ev.Time))
	}
}

// stop waits a moment for the last batches and returns the report.
func (s *webhookSink) stop() *WebhookReport {
	time.Sleep(time.Second) // a batch leaves at most every 100 ms
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	rep := s.rep
	if s.delays.N > 0 {
		rep.DelayP50ms, rep.DelayP99ms, rep.DelayMaxms = s.delays.Quantile(0.5), s.delays.Quantile(0.99), float64(s.delays.Max)/1000
	}
	return &rep
}
