package cluster

import "github.com/prometheus/client_golang/prometheus"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("hasses_cluster_"+name, help, labels, nil)
}

var (
	mUp        = desc("up", "1 while the bus reads from Redis (the node is ready).")
	mLag       = desc("bus_lag_seconds", "Age of the newest log entry when this node applied it.")
	mRTT       = desc("redis_rtt_seconds", "Duration of the last Redis round trip (join, read or publish batch).")
	mGaps      = desc("bus_gaps_total", "Times the log was trimmed past this node (live streams reset).")
	mEpochs    = desc("epoch_changes_total", "Times Redis came back without its data (new epoch, live streams reset).")
	mRollbacks = desc("rollbacks_total", "Times the dataset's lost mark rose: Redis came back older than a node had read (restored from disk, failover to a lagging replica).")
	mPubErrors = desc("publish_errors_total", "Publications not sequenced, by reason.", "reason")
	mQueued    = desc("publish_queued", "Publications waiting to be sent to Redis.")
	mBad       = desc("bus_errors_total", "Log entries that could not be applied, by reason.", "reason")
	mNodes     = desc("nodes", "Nodes in the cluster view.")
	mNodeStr   = desc("node_streams", "Streams per node, from the cluster view.", "node", "addr")
	mSeq       = desc("seq", "Sequence number of the last log entry applied by this node.")
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mUp, mLag, mRTT, mGaps, mEpochs, mRollbacks, mPubErrors, mQueued, mBad, mNodes, mNodeStr, mSeq} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	st := e.Stats()
	up := 0.0
	if st.Ready {
		up = 1
	}
	gauge(mUp, up)
	gauge(mLag, st.Lag.Seconds())
	gauge(mRTT, st.RTT.Seconds())
	gauge(mSeq, float64(st.Seq))
	counter(mGaps, st.Gaps)
	counter(mEpochs, st.EpochChanges)
	counter(mRollbacks, st.Rollbacks)
	counter(mPubErrors, st.Refused, "unavailable")
	counter(mPubErrors, st.Dropped, "queue_full")
	gauge(mQueued, float64(st.Queued))
	counter(mBad, st.BadEntries, "malformed")
	counter(mBad, st.OrderErrors, "order")
	view := e.View()
	gauge(mNodes, float64(len(view)))
	for _, n := range view {
		gauge(mNodeStr, float64(n.Streams), n.ID, n.Addr)
	}
}
