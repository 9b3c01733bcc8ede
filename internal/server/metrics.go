package server

import (
	"strings"

	"github.com/hasses-go/hasses/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics reads the server's counters when Prometheus scrapes, so the hot
// path keeps only its own atomic counters.
type metrics struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("hasses_"+name, help, labels, nil)
}

var (
	mConns           = desc("connections", "Open connections on the SSE port.")
	mStreams         = desc("streams", "Connections streaming events.")
	mConnsMax        = desc("connections_max", "Highest number of connections seen.")
	mDeliveries      = desc("deliveries_total", "Events written to streams (one per event per stream).")
	mWrites          = desc("writes_total", "Writes carrying events (deliveries / writes is the batching factor).")
	mPublished       = desc("published_total", "Messages published.")
	mLagged          = desc("streams_lagged_total", "Streams closed for falling more than -max-lag behind.")
	mStalled         = desc("streams_stalled_total", "Streams closed because their writes made no progress for the write timeout.")
	mRefused         = desc("connections_refused_total", "Connections refused, by reason.", "reason")
	mUnauthorized    = desc("streams_unauthorized_total", "Stream requests refused by the subscriber token check.")
	mPubRefused      = desc("publish_refused_total", "Publications refused, by input and reason (every input: control, control_json, fifo, http).", "source", "reason")
	mPubAccepted     = desc("publications_total", "Publications accepted on this node, by input.", "source")
	mAdminRefused    = desc("admin_refused_total", "Admin listener requests refused (address not allowed, or a wrong secret).")
	mTopics          = desc("topics", "Tokens with subscribers or history (or whose last subscriber left in the last second or two).")
	mHistEvents      = desc("history_events", "Events retained (history of every token, and what slow streams have yet to receive).")
	mHistBytes       = desc("history_bytes", "Memory of the retained events, bounded by -history-total-bytes.")
	mWebhookEvents   = desc("webhook_events_total", "Webhook events by outcome: sent (the backend answered 2xx), dropped (queue full), rejected (4xx, not retried), expired (given up after retrying).", "result")
	mWebhookBatches  = desc("webhook_batches_total", "Webhook requests the backend answered 2xx.")
	mWebhookFailures = desc("webhook_failures_total", "Webhook requests that failed (network error, timeout, 5xx); retried within a minute.")
)

func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mConns, mStreams, mConnsMax, mDeliveries, mWrites, mPublished, mLagged, mStalled,
		mRefused, mUnauthorized, mPubRefused, mPubAccepted, mAdminRefused, mTopics, mHistEvents, mHistBytes,
		mWebhookEvents, mWebhookBatches, mWebhookFailures} {
		ch <- d
	}
}

func (m metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.s
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	fs := s.front.Stats()
	gauge(mConns, float64(fs.Conns))
	gauge(mStreams, float64(fs.Streams))
	gauge(mConnsMax, float64(fs.MaxConns))
	counter(mDeliveries, fs.Delivered)
	counter(mLagged, fs.Lagged)
	counter(mStalled, fs.Stalled)
	st := s.hub.Stats()
	counter(mPublished, st.Published)
	gauge(mTopics, float64(st.Topics))
	gauge(mHistEvents, float64(st.HistoryEvents))
	gauge(mHistBytes, float64(st.HistoryBytes))
	counter(mWrites, fs.Writes)
	for _, r := range s.refusalCounts(fs) {
		counter(r.desc, r.n, r.labels...)
	}
	published, _ := s.pipe.Counts()
	for _, c := range published {
		counter(mPubAccepted, c.N, c.Source.String())
	}
	if s.webhook != nil {
		w := s.webhook.Stats()
		counter(mWebhookEvents, w.Sent, "sent")
		counter(mWebhookEvents, w.Dropped, "dropped")
		counter(mWebhookEvents, w.Rejected, "rejected")
		counter(mWebhookEvents, w.Expired, "expired")
		counter(mWebhookBatches, w.Batches)
		counter(mWebhookFailures, w.Failures)
	}
}

// refusalCount is one refusal counter, as /metrics and the dashboard show it.
type refusalCount struct {
	desc   *prometheus.Desc
	labels []string
	name   string // on the dashboard; rows of one name are added up
	n      int64
}

// refusalCounts lists every refusal counter once, for /metrics and the
// dashboard alike.
func (s *Server) refusalCounts(fs stream.Stats) []refusalCount {
	out := []refusalCount{
		{mRefused, []string{"capacity"}, "stream: server full (503)", fs.Refused},
		{mRefused, []string{"per_ip"}, "stream: per-address cap (429)", fs.RefusedPerAddr},
		{mUnauthorized, nil, "stream: token refused", fs.Unauthorized},
	}
	_, refused := s.pipe.Counts()
	for _, c := range refused {
		out = append(out, refusalCount{mPubRefused, []string{c.Source.String(), c.Reason.String()}, "publish: " + strings.ReplaceAll(c.Reason.String(), "_", " "), c.N})
	}
	if g := s.guard; g != nil {
		out = append(out, refusalCount{mAdminRefused, nil, "admin: refused", g.refused.Load()})
	}
	return out
}

// registry holds the server's metrics and the Go and process collectors.
func (s *Server) registry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(metrics{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.cluster != nil {
		r.MustRegister(s.cluster)
	}
	return r
}
