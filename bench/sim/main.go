// Command sim takes hasses past the sockets one machine can hold: it drives
// the real hub and stream core in-process with fake writers, as the epoll
// loops do (N loops, each a goroutine that collects its dirty subscribers
// and flushes them), with no sockets at all. Each stream is opened the way a
// client's is: a connection admitted by the core (one client address per
// stream, under the per-address cap), its request head parsed, the stream
// subscribed and its response head and preamble written.
//
// For each point (streams × tokens per stream) it reports the heap per
// stream after a collection (the kernel's socket is not in it), how long a
// sweep over every stream takes, deliveries/s for an event reaching every
// stream ("*") and for per-user tokens published at random as fast as one
// publisher can, the process CPU per delivery and the time goroutines waited
// on mutexes (the hub's lock, in effect). Every point runs in a child
// process of its own, so that one point's garbage is not the next one's
// baseline.
//
//	go run ./bench/sim -streams 10000,100000,1000000 -tokens-per-stream 1,64
//
// A point whose memory, projected from a smaller point with as many tokens
// per stream, exceeds -max-mem is skipped and its projection printed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hasses-go/hasses/internal/gcpace"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
)

// Result is one point, as its -json line carries it.
type Result struct {
	Streams         int     `json:"streams"`
	TokensPerStream int     `json:"tokens_per_stream"`
	Loops           int     `json:"loops"`
	GOMAXPROCS      int     `json:"gomaxprocs"`
	Skipped         bool    `json:"skipped,omitempty"`
	ProjectedBytes  float64 `json:"projected_bytes,omitempty"`
	OpenSeconds     float64 `json:"open_s"`
	HeapPerStream   float64 `json:"heap_per_stream_bytes"` // HeapAlloc after GC, per stream
	InusePerStream  float64 `json:"heapinuse_per_stream_bytes"`
	// The split, from subscriptions made on a hub of their own with no
	// stream: HubSub is a subscription whose tokens every stream shares,
	// HubTopics what distinct tokens add (per stream, all its tokens), and
	// Stream the rest (connection, stream, request strings, per-address
	// count).
	SplitHubSub    float64 `json:"split_hub_sub_bytes,omitempty"`
	SplitHubTopics float64 `json:"split_hub_topics_bytes,omitempty"`
	SplitStream    float64 `json:"split_stream_bytes,omitempty"`
	SweepSeconds   float64 `json:"sweep_s"` // one Tick over every stream, loops in parallel
	Heartbeats     int64   `json:"heartbeats"`
	RSSPerStream   float64 `json:"rss_per_stream_bytes"` // VmRSS growth, GOGC=50 as hasses (without its floor); with -split=false (the split's hubs leave freed memory behind)

	Broadcast Phase `json:"broadcast"`
	PerUser   Phase `json:"per_user"`
}

// Phase is one delivery measurement.
type Phase struct {
	Published int     `json:"published"`
	Delivered int64   `json:"delivered"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"deliveries_per_s"`
	CPUNsPer  float64 `json:"cpu_ns_per_delivery"`
	MutexWait float64 `json:"mutex_wait_s"` // summed over goroutines
	// MaxCollect is the longest hub.Collect (it holds the hub's lock
	// throughout, after taking it), MaxCollected the streams it returned.
	MaxCollect   float64 `json:"max_collect_ms"`
	MaxCollected int64   `json:"max_collected"`
	RoundP50     float64 `json:"round_p50_ms,omitempty"`
	RoundMax     float64 `json:"round_max_ms,omitempty"`
	PublishAvg   float64 `json:"publish_avg_us,omitempty"` // one hub.Publish, as its caller waits
	PublishP99   float64 `json:"publish_p99_us,omitempty"`
	PublishMax   float64 `json:"publish_max_us,omitempty"`
}

func main() {
	streamsF := flag.String("streams", "10000,100000", "streams per point, comma-separated")
	tokensF := flag.String("tokens-per-stream", "1", "distinct tokens per stream, comma-separated")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "delivery loops (hub owners)")
	rounds := flag.Int("rounds", 5, "broadcast rounds: one event to every stream, each waited for")
	perUser := flag.Int("per-user", 500000, "per-user publications (random tokens, as fast as the publishers go)")
	publishers := flag.Int("publishers", 1, "goroutines publishing the per-user messages")
	pool := flag.Int("token-pool", 0, "if > 0, stream i subscribes to t<i%pool> (shared tokens, as hasses-load -tokens) instead of tokens of its own")
	partial := flag.Int("partial", 0, "if > 0, a write takes at most this many bytes (the rest waits for the next pass)")
	maxMem := flag.Float64("max-mem", 12, "GiB: skip a point projected above this")
	split := flag.Bool("split", true, "also measure the split of the memory per stream")
	jsonOut := flag.Bool("json", false, "print one JSON line per point")
	child := flag.Bool("child", false, "run one point in this process (internal)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the delivery phases (one point only)")
	flag.Parse()

	cfg := simConfig{loops: *loops, rounds: *rounds, perUser: *perUser, publishers: max(1, *publishers), pool: *pool, partial: *partial, split: *split, cpuprofile: *cpuprofile}
	if *child {
		n, _ := strconv.Atoi(*streamsF)
		k, _ := strconv.Atoi(*tokensF)
		r := runPoint(n, k, cfg)
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}

	var results []Result
	for _, k := range ints(*tokensF) {
		for _, n := range ints(*streamsF) {
			r := Result{Streams: n, TokensPerStream: k, Loops: *loops, GOMAXPROCS: runtime.GOMAXPROCS(0)}
			if proj := project(results, n, k); proj > *maxMem*(1<<30) {
				r.Skipped, r.ProjectedBytes = true, proj
				fmt.Fprintf(os.Stderr, "sim: %d streams × %d tokens skipped: projected %.1f GiB of heap\n", n, k, proj/(1<<30))
			} else {
				r = runChild(n, k)
			}
			results = append(results, r)
			if *jsonOut {
				json.NewEncoder(os.Stdout).Encode(r)
			}
		}
	}
	printTable(os.Stdout, results)
}

// simConfig is what every point shares.
type simConfig struct {
	loops, rounds, perUser, partial, publishers, pool int
	split                                             bool
	cpuprofile                                        string
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("sim: bad number %q", f)
		}
		out = append(out, n)
	}
	return out
}

// project is the heap a point would take, scaled from the largest smaller
// point with as many tokens per stream; 0 if none was measured.
func project(done []Result, n, k int) float64 {
	for _, r := range slices.Backward(done) {
		if r.TokensPerStream == k && !r.Skipped && r.Streams < n {
			return r.HeapPerStream * float64(n)
		}
	}
	return 0
}

// runChild runs one point in a process of its own, with this process's
// flags.
func runChild(n, k int) Result {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	args := []string{"-child", "-streams", strconv.Itoa(n), "-tokens-per-stream", strconv.Itoa(k)}
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "streams", "tokens-per-stream", "json", "child":
		default:
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("sim: point %d × %d: %v", n, k, err)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		log.Fatalf("sim: point %d × %d: %v: %q", n, k, err, out)
	}
	return r
}

func printTable(w io.Writer, rs []Result) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "%-10s %-6s %-10s %-12s %-30s %-10s %-34s %-34s\n", "streams", "tokens", "open", "heap/stream", "split: sub+topics+stream", "sweep",
		"broadcast: deliveries/s, ns CPU, round p50/max", "per-user: deliveries/s, ns CPU, pub avg/p99")
	for _, r := range rs {
		if r.Skipped {
			fmt.Fprintf(bw, "%-10d %-6d skipped: projected %.1f GiB of heap\n", r.Streams, r.TokensPerStream, r.ProjectedBytes/(1<<30))
			continue
		}
		b, p := r.Broadcast, r.PerUser
		fmt.Fprintf(bw, "%-10d %-6d %-10s %-12s %-30s %-10s %-34s %-34s\n", r.Streams, r.TokensPerStream,
			fmt.Sprintf("%.2fs", r.OpenSeconds), fmt.Sprintf("%.0f B", r.HeapPerStream),
			fmt.Sprintf("%.0f + %.0f + %.0f B", r.SplitHubSub, r.SplitHubTopics, r.SplitStream),
			fmt.Sprintf("%.1fms", r.SweepSeconds*1e3),
			fmt.Sprintf("%.2fM/s, %.0f ns, %.0f/%.0f ms", b.PerSecond/1e6, b.CPUNsPer, b.RoundP50, b.RoundMax),
			fmt.Sprintf("%.2fM/s, %.0f ns, %.1f/%.0f µs", p.PerSecond/1e6, p.CPUNsPer, p.PublishAvg, p.PublishP99))
	}
}

// conn mirrors the epoll front end's per-connection struct, so that the
// memory per stream counts the same bytes.
type conn struct {
	stream.Conn
	fd   int32
	hidx int32
	_    int64 // the epoll conn's third field: the same size
}

// writer takes every byte (or at most max per call) and counts them.
type writer struct {
	max   int
	bytes int64
}

func (w *writer) Write(bufs [][]byte) (int, error) {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	if w.max > 0 && n > w.max {
		n = w.max
	}
	w.bytes += int64(n)
	return n, nil
}

// loop is one delivery loop: the epoll loop's pass, without epoll.
type loop struct {
	core    *stream.Core
	hub     *hub.Hub
	owner   *hub.Owner
	wakeCh  chan struct{}
	cmds    chan func()
	conns   []*conn
	w       writer
	sc      stream.Scratch
	ready   []*hub.Sub
	blocked []*conn
	failed  int
	// lastPass and passCost give the epoll loop's gap between passes
	// under sustained traffic.
	lastPass     time.Time
	passCost     time.Duration
	maxCollect   atomic.Int64 // nanoseconds
	maxCollected atomic.Int64 // the streams that Collect returned
}

// As in internal/epoll: at least 2 ms between passes under sustained
// traffic, and at least as long as the last pass took, up to 100 ms.
const (
	minPassGap     = 2 * time.Millisecond
	maxAdaptiveGap = 100 * time.Millisecond
)

func (l *loop) wake() {
	select {
	case l.wakeCh <- struct{}{}:
	default:
	}
}

func (l *loop) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case fn := <-l.cmds:
			fn()
		case <-l.wakeCh:
			gap := max(minPassGap, min(l.passCost, maxAdaptiveGap))
			if d := time.Until(l.lastPass.Add(gap)); d > 0 {
				time.Sleep(d)
			}
			l.pass()
		}
	}
}

func (l *loop) pass() {
	start := time.Now()
	l.ready = l.hub.Collect(l.owner, l.ready[:0])
	if d := int64(time.Since(start)); d > l.maxCollect.Load() {
		l.maxCollect.Store(d)
		l.maxCollected.Store(int64(len(l.ready)))
	}
	// Streams a partial write blocked: their sockets have drained since.
	blocked := l.blocked
	l.blocked = nil
	for _, c := range blocked {
		c.Unblock()
		l.flush(c, start)
	}
	for _, s := range l.ready {
		l.flush(s.Conn.(*conn), start)
	}
	clear(l.ready)
	l.core.AddWrites(l.sc.Writes)
	l.sc.Writes = 0
	if len(l.blocked) > 0 {
		l.wake()
	}
	l.lastPass = time.Now()
	l.passCost = l.lastPass.Sub(start)
}

func (l *loop) flush(c *conn, now time.Time) {
	if c.State() == stream.StateClosed || c.Blocked() {
		return
	}
	switch c.Flush(&l.w, &l.sc, now) {
	case stream.Failed, stream.Finished:
		l.failed++
		c.Close()
	case stream.Blocked:
		l.blocked = append(l.blocked, c)
	}
}

// open opens streams first..first+n-1 of this loop, as the epoll loop
// accepts and serves them.
func (l *loop) open(first, n, k int) {
	now := time.Now()
	var head []byte
	for i := first; i < first+n; i++ {
		c := &conn{fd: int32(i), hidx: -1}
		// One client address per stream: 10.0.0.0/8 holds 16 M.
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000)
		if st := l.core.Accept(&c.Conn, peer, now); st != 0 {
			log.Fatalf("sim: accept: %d", st)
		}
		head = append(head[:0], "GET /sse?subscribe="...)
		head = appendTokens(head, i, k)
		head = fmt.Appendf(head, "&id=c%d HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n\r\n", i)
		if a := c.Received(head, l.owner, c, now); a != stream.Flush {
			log.Fatalf("sim: request: action %v", a)
		}
		l.flush(c, now)
		if c.State() != stream.StateStream {
			log.Fatalf("sim: stream %d not streaming", i)
		}
		l.conns = append(l.conns, c)
	}
}

// appendTokens appends stream i's k tokens, '-'-separated.
func appendTokens(b []byte, i, k int) []byte {
	for j := range k {
		if j > 0 {
			b = append(b, '-')
		}
		b = append(b, token(i, j, k)...)
	}
	return b
}

// pool is -token-pool, for token.
var pool int

// token is stream i's j-th of k tokens: u<i> for one, u<i>x<j> for
// several, or with -token-pool, t<n> drawn from the pool.
func token(i, j, k int) string {
	switch {
	case pool > 0:
		return "t" + strconv.Itoa((i*k+j)%pool)
	case k == 1:
		return "u" + strconv.Itoa(i)
	}
	return "u" + strconv.Itoa(i) + "x" + strconv.Itoa(j)
}

// onLoops runs fn on every loop's goroutine and waits for all.
func onLoops(ls []*loop, fn func(l *loop)) {
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		l.cmds <- func() { defer wg.Done(); fn(l) }
	}
	wg.Wait()
}

func heapNow() (alloc, inuse uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func runPoint(n, k int, cfg simConfig) Result {
	r := Result{Streams: n, TokensPerStream: k, Loops: cfg.loops, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	// hasses's share of the live heap, without its floor (internal/gcpace):
	// at 10,000 streams the floor's uncollected garbage would count as
	// memory per stream.
	debug.SetGCPercent(gcpace.DefaultPercent)
	pool = cfg.pool
	if cfg.split {
		r.SplitHubSub, r.SplitHubTopics = splitHub(n, k, cfg.loops)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := hub.New(hub.Config{})
	go h.Run(ctx) // the server trims once a second
	core := stream.New(h, stream.Config{Logger: quiet, Heartbeat: stream.DefaultHeartbeat, MaxConnsPerAddr: stream.DefaultMaxConnsPerAddr})
	ls := make([]*loop, cfg.loops)
	for i := range ls {
		l := &loop{core: core, hub: h, wakeCh: make(chan struct{}, 1), cmds: make(chan func()), w: writer{max: cfg.partial}}
		l.owner = core.NewOwner(l.wake)
		ls[i] = l
		go l.run(ctx)
	}

	base, baseInuse := heapNow()
	rss0 := rss()
	t0 := time.Now()
	per := (n + len(ls) - 1) / len(ls)
	onLoops(ls, func(l *loop) {
		idx := slices.Index(ls, l)
		first := idx * per
		l.open(first, max(0, min(per, n-first)), k)
	})
	r.OpenSeconds = time.Since(t0).Seconds()
	alloc, inuse := heapNow()
	r.HeapPerStream = float64(alloc-base) / float64(n)
	r.InusePerStream = float64(inuse-baseInuse) / float64(n)
	r.RSSPerStream = float64(rss()-rss0) / float64(n)
	if cfg.split {
		r.SplitStream = r.HeapPerStream - r.SplitHubSub - r.SplitHubTopics
	}

	// One sweep, as the loops run every second: a stream idle for the
	// heartbeat interval (the first ones opened, at a million) gets one.
	t0 = time.Now()
	var heartbeats atomic.Int64
	onLoops(ls, func(l *loop) {
		now := time.Now()
		for _, c := range l.conns {
			switch c.Tick(now) {
			case stream.Flush:
				heartbeats.Add(1)
				l.flush(c, now)
			case stream.Close:
				log.Fatalf("sim: idle tick closes a stream")
			}
		}
	})
	r.Heartbeats = heartbeats.Load()
	r.SweepSeconds = time.Since(t0).Seconds()

	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	delivered := func() int64 { return core.Stats().Delivered }
	measure := func(ph *Phase, run func()) {
		for _, l := range ls {
			l.maxCollect.Store(0)
		}
		d0, cpu0, mw0 := delivered(), cpuTime(), mutexWait()
		t0 := time.Now()
		run()
		ph.Seconds = time.Since(t0).Seconds()
		ph.Delivered = delivered() - d0
		ph.PerSecond = float64(ph.Delivered) / ph.Seconds
		ph.CPUNsPer = float64(cpuTime()-cpu0) / float64(max(ph.Delivered, 1))
		ph.MutexWait = mutexWait() - mw0
		for _, l := range ls {
			if ms := float64(l.maxCollect.Load()) / 1e6; ms > ph.MaxCollect {
				ph.MaxCollect, ph.MaxCollected = ms, l.maxCollected.Load()
			}
		}
	}
	waitFor := func(target int64) {
		for delivered() < target {
			time.Sleep(200 * time.Microsecond)
		}
	}
	data := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") // 64 bytes, as the load tool's

	// (a) One event reaching every stream, one round at a time.
	measure(&r.Broadcast, func() {
		var times []float64
		for range cfg.rounds {
			d0 := delivered()
			t := time.Now()
			res, err := h.Publish(hub.Message{Targets: []string{"*"}, Data: data})
			if err != nil {
				log.Fatal(err)
			}
			if res.Receivers != n {
				log.Fatalf("sim: broadcast reaches %d streams of %d", res.Receivers, n)
			}
			waitFor(d0 + int64(n))
			times = append(times, float64(time.Since(t).Microseconds())/1e3)
			r.Broadcast.Published++
		}
		slices.Sort(times)
		r.Broadcast.RoundP50, r.Broadcast.RoundMax = times[len(times)/2], times[len(times)-1]
	})

	// (b) Per-user tokens: random tokens, each reaching one stream,
	// published as fast as the publishers go.
	rnd := rand.New(rand.NewPCG(1, 2))
	msgs := make([]hub.Message, cfg.perUser)
	for i := range msgs { // made before, so that the publishers only publish
		msgs[i] = hub.Message{Targets: []string{token(rnd.IntN(n), rnd.IntN(k), k)}, Data: data}
	}
	lats := make([][]time.Duration, cfg.publishers)
	measure(&r.PerUser, func() {
		d0 := delivered()
		var receivers atomic.Int64
		var wg sync.WaitGroup
		for p := range cfg.publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lat := make([]time.Duration, 0, len(msgs)/cfg.publishers+1)
				for i := p; i < len(msgs); i += cfg.publishers {
					t := time.Now()
					res, err := h.Publish(msgs[i])
					if err != nil {
						log.Fatal(err)
					}
					lat = append(lat, time.Since(t))
					receivers.Add(int64(res.Receivers))
				}
				lats[p] = lat
			}()
		}
		wg.Wait()
		waitFor(d0 + receivers.Load())
	})
	r.PerUser.Published = len(msgs)
	lat := slices.Concat(lats...)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	r.PerUser.PublishAvg = float64(sum.Nanoseconds()) / float64(len(lat)) / 1e3
	slices.Sort(lat)
	r.PerUser.PublishP99 = float64(lat[len(lat)*99/100].Nanoseconds()) / 1e3
	r.PerUser.PublishMax = float64(lat[len(lat)-1].Nanoseconds()) / 1e3
	for _, l := range ls {
		if l.failed > 0 {
			log.Fatalf("sim: %d streams failed", l.failed)
		}
	}
	runtime.KeepAlive(ls)
	return r
}

// splitHub measures, on a hub of its own, the heap of n subscriptions with
// no stream: first all on k shared tokens (what a subscription costs), then
// on k distinct tokens each (what its topics add).
func splitHub(n, k, loops int) (sub, topics float64) {
	measure := func(tok func(i, j int) string) float64 {
		h := hub.New(hub.Config{})
		owners := make([]*hub.Owner, loops)
		for i := range owners {
			owners[i] = h.NewOwner(func() {})
		}
		subs := make([]*hub.Sub, 0, n) // not theirs: made before the baseline
		base, _ := heapNow()
		for i := range n {
			// As the handshake keeps them: the tokens and the id in one
			// string.
			var sb strings.Builder
			for j := range k {
				sb.WriteString(tok(i, j))
			}
			id := "c" + strconv.Itoa(i)
			sb.WriteString(id)
			kept := sb.String()
			toks := make([]string, k)
			off := 0
			for j := range toks {
				toks[j] = kept[off : off+len(tok(i, j))]
				off += len(toks[j])
			}
			s, _ := h.Subscribe(owners[i%loops], toks, kept[off:], "", nil)
			subs = append(subs, s)
		}
		alloc, _ := heapNow()
		runtime.KeepAlive(subs)
		runtime.KeepAlive(h)
		return float64(alloc-base) / float64(n)
	}
	sub = measure(func(_, j int) string { return "shared" + strconv.Itoa(j) })
	all := measure(func(i, j int) string { return token(i, j, k) })
	return sub, all - sub
}

func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func mutexWait() float64 {
	s := []metrics.Sample{{Name: "/sync/mutex/wait/total:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return s[0].Value.Float64()
}

// rss is this process's resident set, in bytes.
func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kib << 10
		}
	}
	return 0
}
