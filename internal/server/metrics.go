package server

import (
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
	mConns        = desc("connections", "Open connections on the SSE port.")
	mStreams      = desc("streams", "Connections streaming events.")
	mConnsMax     = desc("connections_max", "Highest number of connections seen.")
	mDeliveries   = desc("deliveries_total", "Events written to streams (one per event per stream).")
	mWrites       = desc("writes_total", "Writes carrying events (deliveries / writes is the batching factor).")
	mPublished    = desc("published_total", "Messages published.")
	mLagged       = desc("streams_lagged_total", "Streams closed for falling more than -max-lag behind.")
	mStalled      = desc("streams_stalled_total", "Streams closed because their writes made no progress for the write timeout.")
	mRefused      = desc("connections_refused_total", "Connections refused, by reason.", "reason")
	mUnauthorized = desc("streams_unauthorized_total", "Stream requests refused by the subscriber token check.")
	mPubRefused   = desc("publish_refused_total", "Publish API requests refused, by reason.", "reason")
	mAdminRefused = desc("admin_refused_total", "Admin listener requests refused (address not allowed, or a wrong secret).")
	mTopics       = desc("topics", "Tokens with subscribers or history.")
	mHistEvents   = desc("history_events", "Events retained (history of every token, and what slow streams have yet to receive).")
	mHistBytes    = desc("history_bytes", "Memory of the retained events, bounded by -history-total-bytes.")
)

func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mConns, mStreams, mConnsMax, mDeliveries, mWrites, mPublished, mLagged, mStalled,
		mRefused, mUnauthorized, mPubRefused, mAdminRefused, mTopics, mHistEvents, mHistBytes} {
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
	counter(mRefused, fs.Refused, "capacity")
	counter(mRefused, fs.RefusedPerAddr, "per_ip")
	counter(mWrites, fs.Writes)
	counter(mUnauthorized, fs.Unauthorized)
	p := s.pub
	counter(mPubRefused, p.Unauthorized.Load(), "unauthorized")
	counter(mPubRefused, p.Forbidden.Load(), "forbidden")
	counter(mPubRefused, p.TooLarge.Load(), "too_large")
	counter(mPubRefused, p.RateLimited.Load(), "rate_limited")
	counter(mPubRefused, p.BadRequest.Load(), "bad_request")
	if g := s.guard; g != nil {
		counter(mAdminRefused, g.refused.Load())
	}
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
