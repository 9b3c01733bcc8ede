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
	mWrites       = desc("writes_total", "Write system calls carrying events (epoll front end).")
	mPublished    = desc("published_total", "Messages published.")
	mLagged       = desc("streams_lagged_total", "Streams closed for falling more than -max-lag behind.")
	mRefused      = desc("connections_refused_total", "Connections refused, by reason.", "reason")
	mUnauthorized = desc("streams_unauthorized_total", "Stream requests refused by the subscriber token check.")
	mPubRefused   = desc("publish_refused_total", "Publish API requests refused, by reason.", "reason")
	mTopics       = desc("topics", "Tokens with subscribers or history.")
	mHistEvents   = desc("history_events", "Events kept in the history of all tokens.")
	mHistBytes    = desc("history_bytes", "Bytes of events kept in the history of all tokens.")
)

func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mConns, mStreams, mConnsMax, mDeliveries, mWrites, mPublished, mLagged,
		mRefused, mUnauthorized, mPubRefused, mTopics, mHistEvents, mHistBytes} {
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
	all, streaming, maxSeen, delivered := s.front.Counters()
	gauge(mConns, float64(all))
	gauge(mStreams, float64(streaming))
	gauge(mConnsMax, float64(maxSeen))
	counter(mDeliveries, delivered)
	counter(mLagged, s.front.Lagged())
	st := s.hub.Stats()
	counter(mPublished, st.Published)
	gauge(mTopics, float64(st.Topics))
	gauge(mHistEvents, float64(st.HistoryEvents))
	gauge(mHistBytes, float64(st.HistoryBytes))
	counter(mRefused, s.front.Refused(), "capacity")
	counter(mRefused, s.front.RefusedPerIP(), "per_ip")
	if e := s.epoll; e != nil {
		counter(mWrites, e.Writes())
		counter(mUnauthorized, e.Unauthorized())
	}
	p := s.pub
	counter(mPubRefused, p.Unauthorized.Load(), "unauthorized")
	counter(mPubRefused, p.Forbidden.Load(), "forbidden")
	counter(mPubRefused, p.TooLarge.Load(), "too_large")
	counter(mPubRefused, p.RateLimited.Load(), "rate_limited")
	counter(mPubRefused, p.BadRequest.Load(), "bad_request")
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
