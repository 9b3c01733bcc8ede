// Package gcpace sets how much the Go heap may grow between two
// collections: a share of what is live (GOGC), and, while boosted, at least
// a fixed amount.
//
// A share alone suits a steady heap: hasses allocates nothing per delivery,
// and at GOGC=50 its memory stays close to its live data. It does not suit a
// heap that grows fast from small with live data. A storm of new streams on
// new tokens into a near-empty server (5,000 streams on 64 new tokens each:
// 8 to 100 MB in 2 s) was collected at every 50 % of growth, eleven times in
// 2 s, each cycle marking the whole heap while the event loops allocated,
// and each one delaying the streams already open by tens of ms. With a floor
// under the headroom, a small heap collects after it has grown by the
// floor, so the same storm takes two or three cycles; a large heap's share
// is above the floor anyway. The server boosts while topics are made in a
// burst (internal/server, idle.go), and hands the memory back after. Not
// otherwise: the floor would keep up to its size of garbage, which a burst
// of TLS handshakes leaves plenty of.
package gcpace

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The defaults, unless GOGC is set. Percent: the heap is small and steady
// (no allocation per delivery), so a tighter collector costs little CPU and
// keeps RSS close to the live data (18,000 idle streams took 27 MB instead of
// 30 at GOGC=100). Headroom: see the package comment; 32 MiB left the storm
// two cycles more and its p99 higher (26-41 ms against 26-31 ms).
const (
	DefaultPercent  = 50
	DefaultHeadroom = 64 << 20
)

// limitShare is the most of the process's memory limit (GOMEMLIMIT, or a
// container's) the floor may take: a container given 64 MiB must not
// spend all of it on uncollected garbage.
const limitShare = 8

// Headroom is DefaultHeadroom, at most an eighth of the memory limit the
// process runs under: GOMEMLIMIT or its cgroup's (a container's --memory).
func Headroom() int64 {
	limit := debug.SetMemoryLimit(-1)
	if l := cgroupLimit("/sys/fs/cgroup"); l > 0 {
		limit = min(limit, l)
	}
	return min(DefaultHeadroom, limit/limitShare)
}

// cgroupLimit reads the memory limit of the cgroup the process sees at
// root (inside a container: its own): cgroup v2's memory.max or v1's
// memory.limit_in_bytes. 0 means none found.
func cgroupLimit(root string) int64 {
	for _, f := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or v1's "unlimited"
			return 0
		}
		return n
	}
	return 0
}

// Pacer keeps the collector's target at Percent of the live heap above
// it, and while boosted at least Headroom bytes above it, re-set after
// every collection. Its methods are safe for concurrent use.
type Pacer struct {
	Percent  int   // the share, as GOGC
	Headroom int64 // the least growth allowed while boosted, in bytes

	stopped atomic.Bool
	mu      sync.Mutex
	boosted bool
	last    int
	sample  [1]rtmetrics.Sample
}

// minLive is the least live heap Percent assumes: before the first
// collection the runtime reports none, and the runtime's least goal (4 MB
// at GOGC=100) grows with the percent.
const minLive = 4 << 20

// Start sets the collector's percent for the current live heap and then
// again after each collection, until Stop.
func (p *Pacer) Start() {
	p.sample[0].Name = "/gc/heap/live:bytes"
	p.update()
	p.arm()
}

// Stop ends the updates; the percent stays as last set.
func (p *Pacer) Stop() { p.stopped.Store(true) }

// Boost turns the floor on or off, and reports whether that changed it.
// On takes effect at once; off after the next collection (a forced one
// too): lowering the goal under a heap that the floor let grow would start
// a collection at once, behind on its work from the start, so that every
// goroutine that allocates is made to help it (an event loop among them:
// 60-90 ms stalls). A nil Pacer does nothing.
func (p *Pacer) Boost(on bool) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	changed := p.boosted != on
	p.boosted = on
	p.mu.Unlock()
	if changed && on {
		p.update()
	}
	return changed
}

// arm runs update once a collection has found a fresh object
// unreachable: after each cycle, on the runtime's cleanup goroutine (or
// after the next, when one began before the update: an object allocated
// while a cycle marks survives it).
func (p *Pacer) arm() {
	runtime.AddCleanup(new(sentinel), func(p *Pacer) {
		if p.stopped.Load() {
			return
		}
		p.update()
		p.arm()
	}, p)
}

// sentinel is an object of its own: the tiny allocator packs smaller
// pointer-free ones together, and one of those is unreachable only when
// its neighbours are.
type sentinel struct{ _ [16]byte }

// update sets the percent for the live heap the last cycle marked.
func (p *Pacer) update() {
	p.mu.Lock()
	defer p.mu.Unlock()
	rtmetrics.Read(p.sample[:])
	var live int64
	if p.sample[0].Value.Kind() == rtmetrics.KindUint64 {
		live = int64(p.sample[0].Value.Uint64())
	}
	var headroom int64
	if p.boosted {
		headroom = p.Headroom
	}
	if pc := Percent(p.Percent, headroom, live); pc != p.last {
		p.last = pc
		debug.SetGCPercent(pc)
	}
}

// Percent is the GOGC that lets a heap of live bytes grow by percent of
// itself, and at least by headroom.
func Percent(percent int, headroom, live int64) int {
	live = max(live, minLive)
	return max(percent, int((headroom*100+live-1)/live))
}
