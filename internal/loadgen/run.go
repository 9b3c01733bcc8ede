package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
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
	Scenario string
	Addrs    []string // SSE ports, IPv4 host:port: streams are spread over them (a cluster's nodes)
	Path     string
	Ctls     []string // control ports host:port: publishers are spread over them
	Subs     int
	// Tokens is how many tokens the streams share; 0: every stream has
	// PerStream tokens of its own (Subs × PerStream tokens, per-user style).
	Tokens int
	// PerStream is how many tokens each stream subscribes to (default 1);
	// see tokens.go for which.
	PerStream   int
	TokenPrefix string // tokens are named TokenPrefix+number (default "t")
	Workers     int
	Rate        float64       // messages per second; 0 with Burst
	Burst       int           // publish this many messages as fast as possible
	Duration    time.Duration // publishing time at Rate
	Size        int           // payload bytes
	Idle        bool          // connect, measure memory, no publishing
	NonReaders  float64
	Reconnect   float64 // fraction of subscribers reconnecting per minute
	// BroadcastRate publishes this many messages per second to "*" (every
	// stream), on their own publisher, besides Rate.
	BroadcastRate float64
	// Storm: this share of the streams (a count if > 1) closes and
	// reconnects with Last-Event-ID, spread evenly over StormWithin,
	// starting StormAt after publishing starts (default: a third of
	// Duration).
	// Each storm stream stays closed StormDown (as a browser waits its
	// retry time), so the server has something to replay.
	Storm       float64
	StormAt     time.Duration
	StormWithin time.Duration
	StormDown   time.Duration
	// StormNew: the storm's streams connect for the first time in the
	// storm (a connect storm on new topics) instead of reconnecting.
	StormNew bool
	// Churn streams per second close and open anew (a new id, the same
	// tokens) while publishing, taking turns among ChurnShare of the streams
	// (default 0.5).
	Churn      float64
	ChurnShare float64
	ServerPIDs []int // processes whose RSS and CPU are summed (nginx: master and workers; a cluster's nodes)
	RedisPID   int   // a cluster's Redis: its CPU per publication is reported
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
	// Settle is how long the streams stay idle before the server's memory
	// is measured; zero means 500 ms.
	Settle time.Duration
	// WebhookSink, with WebhookSecretFile, receives the server's webhooks
	// (-webhook=http://WebhookSink/) during the run and reports them.
	WebhookSink       string
	WebhookSecretFile string
}

// Result is the outcome of a run, printed as a table and as one JSON line.
type Result struct {
	Scenario       string      `json:"scenario"`
	Subs           int         `json:"subs"`
	Tokens         int         `json:"tokens"`
	PerStream      int         `json:"tokens_per_stream"`
	Connected      int         `json:"connected"`
	Failed         int         `json:"failed"`            // no answer at all
	Refused        map[int]int `json:"refused,omitempty"` // answered with another status than 200, by status
	RefusedReconn  int         `json:"refused_reconnects,omitempty"`
	ConnectSecs    float64     `json:"connect_s"`
	Published      uint64      `json:"published"` // broadcasts included
	Broadcasts     uint64      `json:"broadcasts,omitempty"`
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
	// The stable streams (neither the storm's nor the churn's), with a
	// storm or churn.
	StableP50ms float64 `json:"stable_p50_ms,omitempty"`
	StableP99ms float64 `json:"stable_p99_ms,omitempty"`
	StableMaxMs float64 `json:"stable_max_ms,omitempty"`
	// With -broadcast-rate, the latency of the messages to one token and
	// of those to "*" (all streams), apart.
	TokenP50ms    float64        `json:"token_p50_ms,omitempty"`
	TokenP99ms    float64        `json:"token_p99_ms,omitempty"`
	TokenMaxMs    float64        `json:"token_max_ms,omitempty"`
	BcastP50ms    float64        `json:"broadcast_p50_ms,omitempty"`
	BcastP99ms    float64        `json:"broadcast_p99_ms,omitempty"`
	BcastMaxMs    float64        `json:"broadcast_max_ms,omitempty"`
	Unexpected    uint64         `json:"unexpected,omitempty"` // events of tokens a stream did not subscribe to
	Resets        uint64         `json:"resets,omitempty"`     // hasses-reset events
	OtherEvents   uint64         `json:"other_events,omitempty"`
	Storm         *StormResult   `json:"storm,omitempty"`
	Churn         *ChurnResult   `json:"churn,omitempty"`
	Webhook       *WebhookReport `json:"webhook,omitempty"`
	Publishers    int            `json:"publishers"`
	RSSBeforeKiB  int64          `json:"server_rss_before_kib"`
	RSSAfterKiB   int64          `json:"server_rss_kib"`
	RSSPerSubKiB  float64        `json:"server_rss_per_sub_kib"`
	CPUSecs       float64        `json:"server_cpu_s"`
	CPUPerMillion float64        `json:"server_cpu_s_per_1m"`
	// The same from the first publication on: without connecting, which
	// costs more the more tokens each stream subscribes to.
	PubCPUSecs       float64 `json:"server_cpu_publishing_s,omitempty"`
	PubCPUPerMillion float64 `json:"server_cpu_publishing_s_per_1m,omitempty"`
	RedisCPUSecs     float64 `json:"redis_cpu_s,omitempty"`
	RedisUsPerPub    float64 `json:"redis_cpu_us_per_publish,omitempty"`
}

// StormResult is what -storm measured.
type StormResult struct {
	New        bool           `json:"new,omitempty"` // first connections, not reconnections
	Streams    int            `json:"streams"`
	Reconnects int            `json:"reconnects"`
	Answered   int            `json:"answered"`
	Refused    int            `json:"refused"`
	Failed     int            `json:"failed"`
	Replay     map[string]int `json:"replay"`
	AnswerP50  float64        `json:"answer_p50_ms"`
	AnswerP99  float64        `json:"answer_p99_ms"`
	AnswerMax  float64        `json:"answer_max_ms"`
	// The stable streams' latency from the first reconnection to 3 s after
	// the last answer.
	WindowP50 float64 `json:"window_p50_ms"`
	WindowP99 float64 `json:"window_p99_ms"`
	WindowMax float64 `json:"window_max_ms"`
	WindowN   uint64  `json:"window_events"`
	// With -broadcast-rate, the same for the messages to one token.
	WindowTokP50 float64 `json:"window_token_p50_ms,omitempty"`
	WindowTokP99 float64 `json:"window_token_p99_ms,omitempty"`
	WindowTokMax float64 `json:"window_token_max_ms,omitempty"`
	Expected     uint64  `json:"expected"`
	Lost         uint64  `json:"lost"`
	Duplicated   uint64  `json:"duplicated"`
	Reordered    uint64  `json:"reordered"`
}

// ChurnResult is what -churn did; its streams' losses are counted from
// each token's first event (or the start) to its last (or the end).
type ChurnResult struct {
	Pool       int    `json:"pool"`
	Opens      int    `json:"opens"`
	Refused    int    `json:"refused"`
	Lives      int    `json:"lives"`
	Expected   uint64 `json:"expected"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
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
	cfg.PerStream = max(cfg.PerStream, 1)
	if cfg.Settle <= 0 {
		cfg.Settle = 500 * time.Millisecond
	}
	if cfg.Tokens <= 0 {
		cfg.Tokens = max(cfg.Subs, 1) * cfg.PerStream
	}
	if cfg.PerStream > cfg.Tokens {
		return nil, fmt.Errorf("%d tokens per stream out of %d tokens", cfg.PerStream, cfg.Tokens)
	}
	if cfg.TokenPrefix == "" {
		cfg.TokenPrefix = "t"
	}
	if strings.ContainsAny(cfg.TokenPrefix, "-*=;&# \t\r\n") {
		return nil, fmt.Errorf("token prefix %q: '-' separates tokens, and * = ; & # and blanks mean something else", cfg.TokenPrefix)
	}
	if cfg.BroadcastRate > 0 && cfg.Burst > 0 {
		return nil, fmt.Errorf("-broadcast-rate paces with -rate, not with -burst")
	}
	storm := int(cfg.Storm + 0.5)
	if cfg.Storm <= 1 {
		storm = int(cfg.Storm*float64(cfg.Subs) + 0.5)
	}
	storm = min(storm, cfg.Subs)
	if cfg.StormAt <= 0 {
		cfg.StormAt = cfg.Duration / 3
	}
	if cfg.ChurnShare <= 0 {
		cfg.ChurnShare = 0.5
	}
	churnPool := 0
	if cfg.Churn > 0 {
		churnPool = int(min(cfg.ChurnShare, 1)*float64(cfg.Subs) + 0.5)
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
	res := &Result{Scenario: cfg.Scenario, Subs: cfg.Subs, Tokens: cfg.Tokens, PerStream: cfg.PerStream, Publishers: cfg.Publishers}
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
		wc := WorkerConfig{Addrs: cfg.Addrs, Path: cfg.Path, First: first, Count: count, Subs: cfg.Subs,
			Tokens: cfg.Tokens, PerStream: cfg.PerStream, TokenPrefix: cfg.TokenPrefix,
			SourceIPs: cfg.SourceIPs, NonReaders: cfg.NonReaders, Reconnect: cfg.Reconnect,
			Storm: storm, StormAt: cfg.StormAt.Seconds(), StormWithin: cfg.StormWithin.Seconds(), StormDown: cfg.StormDown.Seconds(), StormNew: cfg.StormNew,
			ChurnPool: churnPool, Churn: cfg.Churn * float64(count) / float64(cfg.Subs),
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
	var sink *webhookSink
	if cfg.WebhookSink != "" {
		var err error
		if sink, err = startWebhookSink(cfg.WebhookSink, cfg.WebhookSecretFile); err != nil {
			return nil, fmt.Errorf("webhook sink: %w", err)
		}
		defer sink.srv.Close() // on every return; stop closes it first on success
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
	time.Sleep(cfg.Settle) // let the server settle before measuring
	res.RSSAfterKiB = rssKiB(cfg.ServerPIDs)
	if res.Connected > 0 && res.RSSAfterKiB > 0 {
		res.RSSPerSubKiB = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(res.Connected)
	}

	published := make([]uint64, cfg.Tokens+1) // the broadcast's last
	pubStart := time.Now()
	cpuPub0 := cpuSecs(cfg.ServerPIDs)
	if !cfg.Idle {
		for _, w := range workers {
			fmt.Fprintf(w.in, "{\"start\":true}\n")
		}
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
	res.Broadcasts = published[cfg.Tokens]
	var stable, stormAcct, churnAcct Acct
	var sr StormReport
	var cr ChurnReport
	var tok, bcast Histogram
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
		stable.add(&r.Stable)
		stormAcct.add(&r.StormAcct)
		churnAcct.add(&r.ChurnAcct)
		sr.merge(&r.Storm)
		tok.Merge(&r.Tok)
		bcast.Merge(&r.Bcast)
		cr.Opens += r.Churn.Opens
		cr.Refused += r.Churn.Refused
		res.Unexpected += r.Unexpected
		res.Resets += r.Resets
		res.OtherEvents += r.Other
		res.Reconnects += r.Reconnects
		res.Drops += r.Drops
		res.RefusedReconn += r.RefusedReconnects
		lastRecv = max(lastRecv, r.LastRecvNs)
	}
	var all Acct
	all.add(&stable)
	all.add(&stormAcct)
	all.add(&churnAcct)
	hist := all.Latency
	res.Expected, res.Received, res.Lost = all.Expected, all.Received, all.Lost
	res.Duplicated, res.Reordered = all.Duplicated, all.Reordered
	if res.Broadcasts > 0 {
		res.TokenP50ms, res.TokenP99ms, res.TokenMaxMs = tok.Quantile(0.5), tok.Quantile(0.99), float64(tok.Max)/1000
		res.BcastP50ms, res.BcastP99ms, res.BcastMaxMs = bcast.Quantile(0.5), bcast.Quantile(0.99), float64(bcast.Max)/1000
	}
	if storm > 0 || churnPool > 0 {
		h := &stable.Latency
		res.StableP50ms, res.StableP99ms, res.StableMaxMs = h.Quantile(0.5), h.Quantile(0.99), float64(h.Max)/1000
	}
	if storm > 0 {
		res.Storm = &StormResult{New: cfg.StormNew, Streams: storm, Reconnects: sr.Reconnects, Answered: sr.Answered, Refused: sr.Refused,
			Failed: sr.Failed, Replay: sr.Replay,
			AnswerP50: sr.Answer.Quantile(0.5), AnswerP99: sr.Answer.Quantile(0.99), AnswerMax: float64(sr.Answer.Max) / 1000,
			WindowP50: sr.Window.Quantile(0.5), WindowP99: sr.Window.Quantile(0.99), WindowMax: float64(sr.Window.Max) / 1000,
			WindowN: sr.Window.N, Expected: stormAcct.Expected, Lost: stormAcct.Lost,
			Duplicated: stormAcct.Duplicated, Reordered: stormAcct.Reordered}
		if res.Broadcasts > 0 {
			h := &sr.WindowTok
			res.Storm.WindowTokP50, res.Storm.WindowTokP99, res.Storm.WindowTokMax = h.Quantile(0.5), h.Quantile(0.99), float64(h.Max)/1000
		}
	}
	if churnPool > 0 {
		res.Churn = &ChurnResult{Pool: churnPool, Opens: cr.Opens, Refused: cr.Refused, Lives: churnAcct.Streams,
			Expected: churnAcct.Expected, Lost: churnAcct.Lost, Duplicated: churnAcct.Duplicated, Reordered: churnAcct.Reordered}
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
		res.PubCPUSecs = cpuSecs(cfg.ServerPIDs) - cpuPub0
		res.PubCPUPerMillion = res.PubCPUSecs / (float64(res.Received) / 1e6)
	}
	if cfg.RedisPID > 0 {
		res.RedisCPUSecs = cpuOne(cfg.RedisPID) - redisCPU0
		if res.Published > 0 {
			res.RedisUsPerPub = res.RedisCPUSecs / float64(res.Published) * 1e6
		}
	}
	if sink != nil {
		res.Webhook = sink.stop()
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

// publish runs cfg.Publishers publishers at once, and the broadcast's
// publisher with -broadcast-rate, and waits for them all. published has one
// count per token and the broadcast's last.
func publish(cfg Config, published []uint64, answers *Histogram) error {
	pubs := cfg.Publishers
	if cfg.BroadcastRate > 0 {
		pubs++
	}
	errs := make(chan error, pubs)
	hists := make([]Histogram, pubs)
	for i := range cfg.Publishers {
		var tokens []int
		for t := i; t < cfg.Tokens; t += cfg.Publishers {
			tokens = append(tokens, t)
		}
		// Random tokens, each as often: a seeded permutation, cycled.
		rand.New(rand.NewPCG(uint64(i), 42)).Shuffle(len(tokens), func(a, b int) { tokens[a], tokens[b] = tokens[b], tokens[a] })
		share := float64(len(tokens)) / float64(cfg.Tokens)
		c := cfg
		c.Rate *= share
		if c.Burst > 0 {
			c.Burst = max(1, int(float64(c.Burst)*share))
		}
		go func() { errs <- publishOne(c, i, tokens, published, &hists[i]) }()
	}
	if cfg.BroadcastRate > 0 {
		c := cfg
		c.Rate = cfg.BroadcastRate
		go func() { errs <- publishOne(c, 0, []int{cfg.Tokens}, published, &hists[pubs-1]) }()
	}
	var first error
	for range pubs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	for i := range hists {
		answers.Merge(&hists[i])
	}
	return first
}

// publishOne is publisher i: it sends the messages of its tokens (index
// cfg.Tokens is "*") through its control port (or HTTP endpoint) at
// cfg.Rate (or cfg.Burst), cycling over its tokens, batching what is due
// every millisecond into one write. published[t] is written by t's
// publisher only.
func publishOne(cfg Config, i int, tokens []int, published []uint64, answers *Histogram) error {
	next := 0
	take := func() (tok int, name string, seq uint64) {
		tok = tokens[next%len(tokens)]
		next++
		published[tok]++
		if tok == cfg.Tokens {
			return tok, "*", published[tok]
		}
		return tok, cfg.TokenPrefix + strconv.Itoa(tok), published[tok]
	}
	if len(cfg.PubURLs) > 0 {
		url := cfg.PubURLs[i%len(cfg.PubURLs)]
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		return pace(cfg, func(n int) error {
			for range n {
				tok, name, seq := take()
				data := string(appendPayload(nil, seq, time.Now().UnixNano(), tok, cfg.Size))
				var req *http.Request
				if strings.Contains(url, "{token}") {
					req, _ = http.NewRequest("POST", strings.ReplaceAll(url, "{token}", name), strings.NewReader(data))
				} else {
					body, _ := json.Marshal(map[string]string{"token": name, "data": data})
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
			tok, name, seq := take()
			buf = append(append(buf, name...), '=')
			buf = appendPayload(buf, seq, time.Now().UnixNano(), tok, cfg.Size)
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
		el := min(now.Sub(start), cfg.Duration) // the last tick sends the rest: Rate × Duration in all
		due := int(cfg.Rate*el.Seconds()) - sent
		if due > 0 {
			if err := send(due); err != nil {
				return err
			}
			sent += due
		}
		if el >= cfg.Duration {
			break
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
	if want := r.connectWanted(); r.Connected < want {
		var why []string
		for _, code := range slices.Sorted(maps.Keys(r.Refused)) {
			why = append(why, fmt.Sprintf("%d answered %d %s%s", r.Refused[code], code, http.StatusText(code), refusalHint(code)))
		}
		if r.Failed > 0 {
			why = append(why, fmt.Sprintf("%d got no answer (connection refused, reset or closed)", r.Failed))
		}
		w = append(w, fmt.Sprintf("only %d of %d streams connected: %s; the figures are for %d streams",
			r.Connected, want, strings.Join(why, ", "), r.Connected))
	}
	if r.RefusedReconn > 0 {
		w = append(w, fmt.Sprintf("%d reconnections were refused", r.RefusedReconn))
	}
	if r.Unexpected > 0 {
		w = append(w, fmt.Sprintf("%d events reached streams that did not subscribe to their token", r.Unexpected))
	}
	if st := r.Storm; st != nil && st.Reconnects < st.Streams {
		w = append(w, fmt.Sprintf("only %d of the %d storm streams reconnected: the others were not streaming at their turn, or publishing ended first (-storm-at, -storm-within)",
			st.Reconnects, st.Streams))
	}
	return w
}

// connectWanted is how many streams should connect before publishing: all,
// but for a -storm-new storm's.
func (r *Result) connectWanted() int {
	if r.Storm != nil && r.Storm.New {
		return r.Subs - r.Storm.Streams
	}
	return r.Subs
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
	row("subscribers (connected)", fmt.Sprintf("%d (%d) on %d tokens, %d per stream", r.Subs, r.Connected, r.Tokens, max(r.PerStream, 1)))
	if r.Connected < r.connectWanted() {
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
		if r.Broadcasts > 0 {
			row("… of which to * (every stream)", r.Broadcasts)
		}
		row("delivered", fmt.Sprintf("%d of %d expected by connected streams (%.3f %%)", r.Received, r.Expected, r.DeliveredPct))
		row("lost / duplicated / reordered", fmt.Sprintf("%d / %d / %d", r.Lost, r.Duplicated, r.Reordered))
		row("deliveries/s", fmt.Sprintf("%.0f", r.DeliveriesPerS))
		if r.PubP99ms > 0 {
			row("publish answer p50 / p99", fmt.Sprintf("%.2f / %.2f ms", r.PubP50ms, r.PubP99ms))
		}
		row("latency p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.P50ms, r.P99ms, r.MaxMs))
		if r.Broadcasts > 0 {
			row("… messages to one token", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.TokenP50ms, r.TokenP99ms, r.TokenMaxMs))
			row("… messages to *", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.BcastP50ms, r.BcastP99ms, r.BcastMaxMs))
		}
		if r.Storm != nil || r.Churn != nil {
			row("… stable streams", fmt.Sprintf("%.1f / %.1f / %.1f ms", r.StableP50ms, r.StableP99ms, r.StableMaxMs))
		}
		if r.Unexpected > 0 {
			row("events of tokens not subscribed", r.Unexpected)
		}
		if r.Resets > 0 || r.OtherEvents > 0 {
			row("hasses-reset / other events", fmt.Sprintf("%d / %d", r.Resets, r.OtherEvents))
		}
		row("server CPU", fmt.Sprintf("%.2f s (%.3f s per 1M deliveries)", r.CPUSecs, r.CPUPerMillion))
		if r.PubCPUSecs > 0 {
			row("… from the first publication", fmt.Sprintf("%.2f s (%.3f s per 1M deliveries)", r.PubCPUSecs, r.PubCPUPerMillion))
		}
		if wh := r.Webhook; wh != nil {
			var types []string
			for _, t := range slices.Sorted(maps.Keys(wh.Events)) {
				types = append(types, fmt.Sprintf("%d %s", wh.Events[t], t))
			}
			row("webhook events (batches)", fmt.Sprintf("%s (%d; %d bad signatures)", strings.Join(types, ", "), wh.Batches, wh.BadSignatures))
			row("… delay p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", wh.DelayP50ms, wh.DelayP99ms, wh.DelayMaxms))
		}
		if r.RedisCPUSecs > 0 {
			row("Redis CPU", fmt.Sprintf("%.2f s (%.1f µs per publication)", r.RedisCPUSecs, r.RedisUsPerPub))
		}
		row("reconnects (refused) / server closes", fmt.Sprintf("%d (%d) / %d", r.Reconnects, r.RefusedReconn, r.Drops))
	}
	if st := r.Storm; st != nil {
		if st.New {
			row("storm (first connections): streams / connected", fmt.Sprintf("%d / %d (not connected before: counted from each token's first event)", st.Streams, st.Reconnects))
		} else {
			row("storm: streams / reconnected", fmt.Sprintf("%d / %d", st.Streams, st.Reconnects))
		}
		row("… answered / refused / no answer", fmt.Sprintf("%d / %d / %d", st.Answered, st.Refused, st.Failed))
		if !st.New {
			row("… replay complete / gap / unknown", fmt.Sprintf("%d / %d / %d", st.Replay["complete"], st.Replay["gap"], st.Replay["unknown"]))
		}
		row("… answer p50 / p99 / max", fmt.Sprintf("%.1f / %.1f / %.1f ms", st.AnswerP50, st.AnswerP99, st.AnswerMax))
		row("… their lost / dup / reordered", fmt.Sprintf("%d / %d / %d of %d expected", st.Lost, st.Duplicated, st.Reordered, st.Expected))
		row("… others' latency in the storm", fmt.Sprintf("%.1f / %.1f / %.1f ms (p50 / p99 / max, %d events, the storm's first connection to 3 s after its last answer)",
			st.WindowP50, st.WindowP99, st.WindowMax, st.WindowN))
		if st.WindowTokP99 > 0 {
			row("… of which messages to one token", fmt.Sprintf("%.1f / %.1f / %.1f ms", st.WindowTokP50, st.WindowTokP99, st.WindowTokMax))
		}
	}
	if c := r.Churn; c != nil {
		row("churn: opened anew (refused)", fmt.Sprintf("%d (%d), taking turns among %d streams", c.Opens, c.Refused, c.Pool))
		row("… their lost / dup / reordered", fmt.Sprintf("%d / %d / %d of %d expected over %d stream lives", c.Lost, c.Duplicated, c.Reordered, c.Expected, c.Lives))
		row("", "(counted per token from its first event, or the start, to its last, or the end; not what a stream missed just after opening or just before closing)")
	}
	return b.String()
}
