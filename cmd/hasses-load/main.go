// Command hasses-load measures a running hasses: N subscribers spread over
// worker processes and source addresses, a paced publisher on the control
// port, and a report of delivery, latency and the server's memory and CPU.
// See docs/performance.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hasses-go/hasses/internal/loadgen"
)

func main() {
	if loadgen.IsWorker() {
		if err := loadgen.RunWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		return
	}
	var cfg loadgen.Config
	var sources int
	flag.StringVar(&cfg.Scenario, "scenario", "run", "name printed with the results")
	var addrs, ctls, pubURLs string
	flag.StringVar(&addrs, "addr", "127.0.0.1:8080", "SSE port (IPv4 host:port); comma-separated ports of several nodes share the streams, and -reconnect moves a stream to the next node")
	flag.StringVar(&cfg.Path, "path", "/sse", "SSE path")
	flag.StringVar(&ctls, "ctl", "127.0.0.1:8085", "control port; comma-separated ports of several nodes share the publishers")
	flag.IntVar(&cfg.Publishers, "publishers", 0, "publishers at once, publisher i on endpoint i%len(-ctl or -pub-url), owning the tokens t%publishers == i (default: one per endpoint)")
	flag.IntVar(&cfg.Subs, "n", 1000, "subscribers")
	flag.IntVar(&cfg.Tokens, "tokens", 1, "tokens the streams share: stream i listens to tokens (i*K+j)%tokens, j < K (-tokens-per-stream); 0: every stream its own K tokens (per-user style, n*K tokens)")
	flag.IntVar(&cfg.PerStream, "tokens-per-stream", 1, "tokens each stream subscribes to (K; the server's -max-tokens is 64)")
	flag.StringVar(&cfg.TokenPrefix, "token-prefix", "t", "token names: prefix and number (t0, t1, ...), e.g. room for a server's -presence='room*'")
	flag.Float64Var(&cfg.BroadcastRate, "broadcast-rate", 0, "messages per second to * (every stream), besides -rate")
	flag.Float64Var(&cfg.Storm, "storm", 0, "share of the streams (or, above 1, how many) that close and reconnect with Last-Event-ID once while publishing")
	flag.DurationVar(&cfg.StormWithin, "storm-within", 5*time.Second, "the storm's reconnections are spread evenly over this time")
	flag.BoolVar(&cfg.StormNew, "storm-new", false, "the storm's streams connect for the first time in the storm (new topics, no Last-Event-ID) instead of reconnecting")
	flag.DurationVar(&cfg.StormDown, "storm-down", 0, "how long each storm stream stays closed before it reconnects (a browser's retry time)")
	flag.DurationVar(&cfg.StormAt, "storm-at", 0, "when the storm starts, after publishing starts (default: a third of -duration)")
	flag.Float64Var(&cfg.Churn, "churn", 0, "streams per second that close while publishing, each opening anew at once (a new id, the same tokens)")
	flag.Float64Var(&cfg.ChurnShare, "churn-share", 0.5, "share of the streams that take turns churning; the others are the stable streams")
	flag.IntVar(&cfg.Workers, "workers", 0, "worker processes (default: one per 10,000 subscribers)")
	flag.Float64Var(&cfg.Rate, "rate", 100, "messages per second")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "publishing time")
	flag.IntVar(&cfg.Burst, "burst", 0, "publish this many messages as fast as possible instead of -rate")
	flag.IntVar(&cfg.Size, "size", 64, "payload bytes")
	flag.BoolVar(&cfg.Idle, "idle", false, "only connect and measure the server's memory")
	flag.DurationVar(&cfg.Settle, "settle", 500*time.Millisecond, "how long the streams stay idle before the server's memory is measured (hasses returns its collector's headroom after 10 s of quiet: -settle 20s measures that)")
	flag.Float64Var(&cfg.NonReaders, "nonreaders", 0, "fraction of subscribers that never read past the response head")
	flag.Float64Var(&cfg.Reconnect, "reconnect", 0, "fraction of subscribers reconnecting per minute (with Last-Event-ID)")
	var pids string
	flag.StringVar(&pids, "server-pid", "", "pid(s) of the server, comma-separated, for RSS and CPU (summed: nginx's workers, a cluster's nodes)")
	flag.IntVar(&cfg.RedisPID, "redis-pid", 0, "pid of a cluster's Redis, for its CPU per publication")
	flag.StringVar(&pubURLs, "pub-url", "", "publish over HTTP instead of the control port: hasses' /publish URL, or a URL with {token} for a raw body (nchan); comma-separated URLs share the publishers")
	flag.IntVar(&sources, "sources", 8, "source addresses 127.0.0.10 ... to spread client ports over")
	flag.DurationVar(&cfg.Timeout, "timeout", 0, "hard limit (default: 3 × duration + 180 s)")
	flag.StringVar(&cfg.WebhookSink, "webhook-sink", "", "HOST:PORT to receive the server's webhooks on (start it with -webhook=http://HOST:PORT/): counts them and their delay")
	flag.StringVar(&cfg.WebhookSecretFile, "webhook-secret-file", "", "the server's -webhook-secret-file, to verify the sink's batches")
	flag.Parse()
	for _, p := range strings.Split(pids, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			cfg.ServerPIDs = append(cfg.ServerPIDs, n)
		}
	}
	cfg.Addrs, cfg.Ctls, cfg.PubURLs = list(addrs), list(ctls), list(pubURLs)
	for i := range sources {
		cfg.SourceIPs = append(cfg.SourceIPs, fmt.Sprintf("127.0.0.%d", 10+i))
	}
	res, err := loadgen.Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses-load:", err)
		os.Exit(1)
	}
	fmt.Print(res.Table())
	for _, w := range res.Warnings() {
		fmt.Fprintln(os.Stderr, "hasses-load: warning:", w)
	}
	js, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasses-load:", err)
		os.Exit(1)
	}
	fmt.Println(string(js))
}

// list splits a comma-separated flag value, dropping empty items.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
