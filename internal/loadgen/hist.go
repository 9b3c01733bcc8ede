package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram counts latencies in log-linear buckets: 16 per power of two of
// microseconds, so quantiles are within ~5 %, and histograms from several
// workers merge by adding counts.
type Histogram struct {
	Counts []uint64 `json:"counts"`
	Max    int64    `json:"max_us"`
	N      uint64   `json:"n"`
}

const subBuckets = 16

func bucketOf(us int64) int {
	if us < subBuckets {
		return int(max(us, 0))
	}
	exp := 63 - bits.LeadingZeros64(uint64(us)) // floor(log2)
	shift := exp - 4
	return (exp-3)*subBuckets + int(us>>uint(shift)) - subBuckets
}

// lowerBound returns the smallest value of bucket b, in microseconds.
func lowerBound(b int) int64 {
	if b < subBuckets {
		return int64(b)
	}
	exp := b/subBuckets + 3
	sub := b%subBuckets + subBuckets
	return int64(sub) << uint(exp-4)
}

// Add records one latency.
func (h *Histogram) Add(d time.Duration) {
	us := d.Microseconds()
	b := bucketOf(us)
	for len(h.Counts) <= b {
		h.Counts = append(h.Counts, 0)
	}
	h.Counts[b]++
	h.N++
	h.Max = max(h.Max, us)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for len(h.Counts) < len(o.Counts) {
		h.Counts = append(h.Counts, 0)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Quantile returns the q-quantile (0..1) in milliseconds; 0 without
// samples (JSON has no NaN).
func (h *Histogram) Quantile(q float64) float64 {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	var seen uint64
	for b, c := range h.Counts {
		seen += c
		if seen >= rank && c > 0 {
			return float64(min(lowerBound(b+1)-1, h.Max)) / 1000
		}
	}
	return float64(h.Max) / 1000
}
