package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

const workerEnv = "HASSES_LOAD_WORKER"

// IsWorker reports whether this process was started as a worker.
func IsWorker() bool { return os.Getenv(workerEnv) != "" }

// Config is one load run.
type Config struct {
	Scenario   string
	Addrs      []string // SSE ports, IPv4 host:port: streams are spread over them (a cluster's nodes)
	Path       string
	Ctls       []string // control ports host:port: publishers are spread over them
	Subs       int
	Tokens     int
	Workers    int
	Rate       float64       // messages per second; 0 with Burst
	Burst      int           // publish this many messages as fast as possible
	Duration   time.Duration // publishing time at Rate
	Size       int           // payload bytes
	Idle       bool          // connect, measure memory, no publishing
	NonReaders float64
	Reconnect  float64 // fraction of subscribers reconnecting per minute
	ServerPIDs []int   // processes whose RSS and CPU are summed (nginx: master and workers; a cluster's nodes)
	RedisPID   int     // a cluster's Redis: its CPU per publication is reported
	// PubURLs publish over HTTP instead of the control ports: hasses'
	// /publish API, or a URL with {token} (raw body, as nchan).
	PubURLs []string
	// Publishers is how many publishers run at once, each on its own
	// connection to endpoint i%len (Ctls or PubURLs), each owning the tokens
	// t with t%Publishers == i, so that every token's order is one
	// publisher's. 0 means one per endpoint; never more than Tokens.
	Publishers int
	SourceIPs  []string
	Timeout    time.Duration
}

// Result is the outcome of a run, printed as a table and as one JSON line.
type Result struct {
	Scenario       string      `json:"scenario"`
	Subs           int         `json:"subs"`
	Tokens         int         `json:"tokens"`
	Connected      int         `json:"connected"`
	Failed         int         `json:"failed"`            // no answer at all
	Refused        map[int]int `json:"refused,omitempty"` // answered with another status than 200, by status
	RefusedReconn  int         `json:"refused_reconnects,omitempty"`
	ConnectSecs    float64     `json:"connect_s"`
	Published      uint64      `json:"published"`
	PublishSecs    float64     `json:"publish_s"`
	Expected       uint64      `json:"expected"`
	Received       uint64      `json:"received"`
	DeliveredPct   float64     `json:"delivered_pct"`
	Lost           uint64      `json:"lost"`
	Duplicated     uint64      `json:"duplicated"`
	Reordered      uint64      `json:"reordered"`
	Reconnects     uint64      `json:"reconnects"`
	Drops          uint64      `json:"server_closed"`
	DeliveriesPerS float64     `json:"deliveries_per_s"`
	PubP50ms       float64     `json:"publish_answer_p50_ms,omitempty"`
	PubP99ms       float64     `json:"publish_answer_p99_ms,omitempty"`
	P50ms          float64     `json:"p50_ms"`
	P99ms          float64     `json:"p99_ms"`
	MaxMs          float64     `json:"max_ms"`
	Publishers     int         `json:"publishers"`
	RSSBeforeKiB   int64       `json:"server_rss_before_kib"`
	RSSAfterKiB    int64       `json:"server_rss_kib"`
	RSSPerSubKiB   float64     `json:"server_rss_per_sub_kib"`
	CPUSecs        float64     `json:"server_cpu_s"`
	CPUPerMillion  float64     `json:"server_cpu_s_per_1m"`
	RedisCPUSecs   float64     `json:"redis_cpu_s,omitempty"`
	RedisUsPerPub  float64     `json:"redis_cpu_us_per_publish,omitempty"`
}

type workerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// Run executes a load run.
func Run(cfg Config) (*Result, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = max(1, (cfg.Subs+9999)/10000)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3*cfg.Duration + 180*time.Second // a slow server may slow the publisher down
	}
	if cfg.Tokens <= 0 {
		cfg.Tokens = 1
	}
	endpoints := len(cfg.Ctls)
	if len(cfg.PubURLs) > 0 {
		endpoints = len(cfg.PubURLs)
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = max(1, endpoints)
	}
	cfg.Publishers = min(cfg.Publishers, cfg.Tokens)
	if len(cfg.Addrs) == 0 || (!cfg.Idle && endpoints == 0) {
		return nil, fmt.Errorf("no SSE address or no control port / publish URL")
	}
	res := &Result{Scenario: cfg.Scenario, Subs: cfg.Subs, Tokens: cfg.Tokens, Publishers: cfg.Publishers}
	res.RSSBeforeKiB = rssKiB(cfg.ServerPIDs)
	cpu0 := cpuSecs(cfg.ServerPIDs)
	redisCPU0 := cpuOne(cfg.RedisPID)

	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var workers []*workerProc
	defer func() {
		for _, w := range workers {
			w.in.Close()
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	}()
	per := (cfg.Subs + cfg.Workers - 1) / cfg.Workers
	for i := 0; i < cfg.Workers; i++ {
		first := i * per
		count := min(per, cfg.Subs-first)
		if count <= 0 {
			break
		}
		wc := WorkerConfig{Addrs: cfg.Addrs, Path: cfg.Path, First: first, Count: count, Tokens: cfg.Tokens,
			SourceIPs: cfg.SourceIPs, NonReaders: cfg.NonReaders, Reconnect: cfg.Reconnect,
			Timeout: cfg.Timeout.Seconds()}
		js, _ := json.Marshal(wc)
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(js))
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting worker: %w", err)
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		workers = append(workers, &workerProc{cmd: cmd, in: in, out: sc})
	}
	connectStart := time.Now()
	for _, w := range workers {
		var m workerMsg
		if err := w.read(&m); err != nil || !m.Ready {
			return nil, fmt.Errorf("worker did not get ready: %v", err)
		}
		res.Connected += m.Connected
		res.Failed += m.Failed
		for code, n := range m.Refused {
			if res.Refused == nil {
				res.Refused = map[int]int{}
			}
			res.Refused[code] += n
		}
	}
	res.ConnectSecs = time.Since(connectStart).Seconds()
	time.Sleep(500 * time.Millisecond) // let the server settle before measuring
	res.RSSAfterKiB = rssKiB(cfg.ServerPIDs)
	if res.Connected > 0 && res.RSSAfterKiB > 0 {
		res.RSSPerSubKiB = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(res.Connected)
	}

	published := make([]uint64, cfg.Tokens)
	pubStart := time.Now()
	if !cfg.Idle {
		var answers Histogram
		if err := publish(cfg, published, &answers); err != nil {
			return nil, err
		}
		if answers.N > 0 {
			res.PubP50ms, res.PubP99ms = answers.Quantile(0.5), answers.Quantile(0.99)
		}
	}
	res.PublishSecs = time.Since(pubStart).Seconds()
	for _, p := range published {
		res.Published += p
	}
	var hist Histogram
	var lastRecv int64
	for _, w := range workers {
		js, _ := json.Marshal(workerMsg{Published: published})
		fmt.Fprintf(w.in, "%s\n", js)
	}
	for _, w := range workers {
		var m workerMsg
		if err := w.read(&m); err != nil || m.Report == nil {
			return nil, fmt.Errorf("worker report: %v", err)
		}
		r := m.Report
		res.Expected += r.Expected
		res.Received += r.Received
		res.Lost += r.Lost
		res.Duplicated += r.Duplicated
		res.Reordered += r.Reordered
		res.Reconnects += r.Reconnects
		res.Drops += r.Drops
		res.RefusedReconn += r.RefusedReconnects
		hist.Merge(&r.Latency)
		lastRecv = max(lastRecv, r.LastRecvNs)
	}
	if res.Expected > 0 {
		res.DeliveredPct = 100 * float64(res.Expected-min(res.Lost, res.Expected)) / float64(res.Expected)
	}
	if lastRecv > 0 {
		if el := float64(lastRecv-pubStart.UnixNano()) / 1e9; el > 0 {
			res.DeliveriesPerS = float64(res.Received) / el
		}
	}
	res.P50ms, res.P99ms, res.MaxMs = hist.Quantile(0.5), hist.Quantile(0.99), float64(hist.Max)/1000
	res.CPUSecs = cpuSecs(cfg.ServerPIDs) - cpu0
	if res.Received > 0 && len(cfg.ServerPIDs) > 0 {
		res.CPUPerMillion = res.CPUSecs / (float64(res.Received) / 1e6)
	}
	if cfg.RedisPID > 0 {
		res.RedisCPUSecs = cpuOne(cfg.RedisPID) - redisCPU0
		if res.Published > 0 {
			res.RedisUsPerPub = res.RedisCPUSecs / float64(res.Published) * 1e6
		}
	}

	return res, nil
}

func (w *workerProc) read(v any) error {
	if !w.out.Scan() {
		if err := w.out.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	return json.Unmarshal(w.out.Bytes(), v)
}

// publish runs cfg.Publishers publishers at once and waits for them all.
func publish(cfg Config, published []uint64, answers *Histogram) error {
	errs := make(chan error, cfg.Publishers)
	hists := make([]Histogram, cfg.Publishers)
	for i := range cfg.Publishers {
		var tokens []int
		for t := i; t < cfg.Tokens; t += cfg.Publishers {
			tokens = append(tokens, t)
		}
		go func() { errs <- publishOne(cfg, i, tokens, published, &hists[i]) }()
	}
	var first error
	for range cfg.Publishers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	for i := range hists {
		answers.Merge(&hists[i])
	}
	return first
}

// publishOne is publisher i: it sends the messages of its tokens through
// its control port (or HTTP endpoint) at its share of the rate (or of the
// burst), round-robin over its tokens, batching what is due every
// millisecond into one write. published[t] is written by t's publisher only.
func publishOne(cfg Config, i int, tokens []int, published []uint64, answers *Histogram) error {
	share := float64(len(tokens)) / float64(cfg.Tokens)
	cfg.Rate *= share
	if cfg.Burst > 0 {
		cfg.Burst = max(1, int(float64(cfg.Burst)*share))
	}
	next := 0
	take := func() (tok int, seq uint64) {
		tok = tokens[next%len(tokens)]
		next++
		published[tok]++
		return tok, published[tok]
	}
	if len(cfg.PubURLs) > 0 {
		url := cfg.PubURLs[i%len(cfg.PubURLs)]
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		return pace(cfg, func(n int) error {
			for range n {
				tok, seq := take()
				data := string(appendPayload(nil, seq, time.Now().UnixNano(), cfg.Size))
				var req *http.Request
				if strings.Contains(url, "{token}") {
					req, _ = http.NewRequest("POST", strings.ReplaceAll(url, "{token}", fmt.Sprintf("t%d", tok)), strings.NewReader(data))
				} else {
					body, _ := json.Marshal(map[string]string{"token": fmt.Sprintf("t%d", tok), "data": data})
					req, _ = http.NewRequest("POST", url, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("publish: %w", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answers.Add(time.Since(t0))
				if resp.StatusCode >= 300 {
					return fmt.Errorf("publish to %s: %s", url, resp.Status)
				}
			}
			return nil
		})
	}
	c, err := net.Dial("tcp", cfg.Ctls[i%len(cfg.Ctls)])
	if err != nil {
		return fmt.Errorf("control port: %w", err)
	}
	defer c.Close()
	go io.Copy(io.Discard, c) // ends when c is closed
	var buf []byte
	return pace(cfg, func(n int) error {
		buf = buf[:0]
		for range n {
			tok, seq := take()
			buf = fmt.Appendf(buf, "t%d=", tok)
			buf = appendPayload(buf, seq, time.Now().UnixNano(), cfg.Size)
			buf = append(buf, ';')
		}
		_, err := c.Write(buf)
		return err
	})
}

// pace calls send for the messages due: a burst, or Rate per second.
func pace(cfg Config, send func(n int) error) error {
	if cfg.Burst > 0 {
		for sent := 0; sent < cfg.Burst; sent += 100 {
			if err := send(min(100, cfg.Burst-sent)); err != nil {
				return err
			}
		}
		return nil
	}
	start := time.Now()
	sent := 0
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		el := now.Sub(start)
		if el >= cfg.Duration {
			break
		}
		due := int(cfg.Rate*el.Seconds()) - sent
		if due > 0 {
			if err := send(due); err != nil {
				return err
			}
			sent += due
		}
	}
	return nil
}

// rssKiB sums VmRSS of pids; 0 if unknown.
func rssKiB(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		sum += rssOne(pid)
	}
	return sum
}

func rssOne(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// cpuSecs sums user+system CPU time of pids from /proc/PID/stat.
func cpuSecs(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		sum += cpuOne(pid)
	}
	return sum
}

func cpuOne(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// Warnings says what makes the figures weaker than they look: streams that
// did not connect (by status, with the option that governs it) and refused
// reconnections.
func (r *Result) Warnings() []string {
	var w []string
	if r.Connected < r.Subs {
		var why []string
		for _, code := range slices.Sorted(maps.Keys(r.Refused)) {
			why = append(why, fmt.Sprintf("%d answered %d %s%s", r.Refused[code], code, http.StatusText(code), refusalHint(code)))
		}
		if r.Failed > 0 {
			why = append(why, fmt.Sprintf("%d got no answer (connection refused, reset or closed)", r.Failed))
		}
		w = append(w, fmt.Sprintf("only %d of %d streams connected: %s; the figures are for %d streams",
			r.Connected, r.Subs, strings.Join(why, ", "), r.Connected))
	}
	if r.RefusedReconn > 0 {
		w = append(w, fmt.Sprintf("%d reconnections were refused", r.RefusedReconn))
	}
	return w
}

func refusalHint(code int) string {
	switch code {
	case 429:
		return " (hasses' -max-conns-per-ip: raise it, or spread over more -sources)"
	case 503:
		return " (the server is full: hasses' -max-conns or its open-file limit)"
	}
	return ""
}

// Table renders r for people.
func (r *Result) Table() string {
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-36s %v\n", k, v) }
	fmt.Fprintf(&b, "scenario %s\n", r.Scenario)
	row("subscribers (connected)", fmt.Sprintf("%d (%d) on %d tokens", r.Subs, r.Connected, r.Tokens))
	if r.Connected < r.Subs {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(r.Refused)) {
			parts = append(parts, fmt.Sprintf("%d × %d", r.Refused[code], code))
		}
		parts = append(parts, fmt.Sprintf("%d × no answer", r.Failed))
		row("not connected", strings.Join(parts, ", "))
	}
	row("connect time", fmt.Sprintf("%.2f s", r.ConnectSecs))
	row("server RSS before / after", fmt.Sprintf("%d / %d KiB (%.2f KiB per subscriber)", r.RSSBeforeKiB, r.RSSAfterKiB, r.RSSPerSubKiB))
	if r.Published > 0 {
		row("published", fmt.Sprintf("%d msgs in %.2f s by %d publishers", r.Published, r.PublishSecs, r.Publishers))
		row("delivered", fmt.Sprintf("%d of %d expected by connected streams (%.3f %%)", r.Received, r.Expected, r.DeliveredPct))
		row("lost / duplicated / reordered", fmt.Sprintf("%d / %d / %d", r.Lost, r.Duplicated, r.Reordered))
		row("deliveries/s", fmt.Sprintf("%.0f", r.DeliveriesPerS))
		if r.PubP99ms > 0 {
			row("publish answer p50 / p99", fmt.Sprintf("%.2f / %.2f ms", r.PubP50ms, r.PubP99ms))
		}
		row("latency p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.P50ms, r.P99ms, r.MaxMs))
		row("server CPU", fmt.Sprintf("%.2f s (%.3f s per 1M deliveries)", r.CPUSecs, r.CPUPerMillion))
		if r.RedisCPUSecs > 0 {
			row("Redis CPU", fmt.Sprintf("%.2f s (%.1f µs per publication)", r.RedisCPUSecs, r.RedisUsPerPub))
		}
		row("reconnects (refused) / server closes", fmt.Sprintf("%d (%d) / %d", r.Reconnects, r.RefusedReconn, r.Drops))
	}
	return b.String()
}
