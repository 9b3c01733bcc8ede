// Package cluster joins several hasses nodes into one server on Redis.
//
// One Lua script in Redis (scripts.go) numbers every publication and appends
// it to a single log stream: that is the cluster's one order. Every node
// reads the whole log with XREAD, in order, into its own hub (bus.go), which
// stays the hot cache that live streams and replays are served from. A
// publication made on a node goes to Redis first and reaches the node's own
// streams only through the log, so every node delivers the same events in
// the same order under the same ids. A node that joins late warms its hub
// from the log. See docs/cluster.md.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/lograte"
)

// Config configures an Engine.
type Config struct {
	// URL is redis://[user:pass@]HOST:PORT/DB, rediss://... (TLS) or
	// redis+sentinel://HOST:PORT[,HOST:PORT...]/DB?master=NAME.
	URL string
	// Prefix namespaces every key ("{prefix}:..."), so that several
	// clusters can share one Redis.
	Prefix string
	// LogLength is about how many entries the log stream keeps.
	LogLength int
	// Queue bounds the fire-and-forget units (control port line protocol,
	// FIFO) held while Redis is unreachable.
	Queue int
	// HistoryAge is how far back a joining node loads the log.
	HistoryAge time.Duration
	// IdempotencyWindow is how long Redis remembers a publication's
	// idempotency key; zero means hub.DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
	// Coalesce is the least time between two bus reads, and between two
	// publish batches of fire-and-forget units, while events keep coming:
	// fewer, larger round trips to Redis for at most this much latency. A
	// publication whose publisher waits for its answer is never held back.
	// It is at least minCoalesce.
	Coalesce time.Duration
	// OnRevoke is called, in the log's order, for every revocation a node
	// published (and, at join, for those kept in Redis), so that every node
	// refuses the revoked tokens.
	OnRevoke func(user string, r hub.Revocation)
	// Addr names this node in the cluster view (host:port of its SSE port).
	Addr   string
	Logger *slog.Logger
}

// Defaults for Config's zero fields.
const (
	DefaultPrefix    = "hasses"
	DefaultLogLength = 100_000
	DefaultQueue     = 1000
)

const (
	publishTimeout = 5 * time.Second        // a publish waits at most this for Redis
	applyWait      = time.Second            // and this for its own node to apply it
	busBlock       = time.Second            // XREAD BLOCK, also the liveness probe
	busGrace       = 2 * time.Second        // beyond the block, Redis is unresponsive
	retryDelay     = 250 * time.Millisecond // between attempts while Redis is down
	nodeInterval   = 2 * time.Second        // cluster view refresh
	nodeTTL        = 10 * time.Second       // a node silent this long has left
	maxBatch       = 256                    // units per publish script call
	maxBatchBytes  = 1 << 20                // and about this much data
	busCount       = 512                    // entries per XREAD
	warmPage       = 1000                   // entries per XRANGE while warming
	// minCoalesce: every node reads every event, so per-read costs count
	// three times in a 3-node cluster; 5 ms between reads keeps them small
	// against the deliveries (bench/cluster.sh) within the latency targets.
	minCoalesce = 5 * time.Millisecond
	// The sentinel client follows the master on +switch-master; it also asks
	// the sentinels this often, so that one missed event (its sentinel
	// connection dropped then) cannot bind it to a demoted master for good.
	sentinelRefresh = 5 * time.Second
)

// Engine is a node's link to the cluster.
type Engine struct {
	cfg                       Config
	log                       *slog.Logger
	hub                       *hub.Hub
	opt                       rueidis.ClientOption
	client                    rueidis.Client // the bus, joins and the cluster view
	pub                       rueidis.Client // sendLoop's only
	node                      string         // random id of this process
	kMeta, kLog, kNodes, kPub string
	kIdem, kIdemV             string // idempotency keys by time, and their results
	kRevoked                  string // revocations: user -> "<at> <until>" (Unix ms)
	kPresQ, kPresR            string // presence queries (a channel) and answers (lists, + query id)
	kPresN, kPresC            string // presence members and their node counts (presenceScript)
	kPresNodes                string // the nodes that have members
	pq                        presenceQueue
	missing                   map[string]int // nodes with members missing from the view, for how many refreshes (nodesLoop)
	started                   time.Time

	up       atomic.Bool  // the last Redis call succeeded
	lastRead atomic.Int64 // Unix ns of the last successful bus read
	joinedCh chan struct{}
	joined   atomic.Bool

	mu        sync.Mutex // bus position and the waiters on it
	pos       uint64     // sequence number of the last log entry read
	tag       string     // its tag, "" if not known
	epoch     uint64     // epoch of the dataset being read
	appliedCh chan struct{}
	own       map[uint64]int // receivers of this node's publications, by seq
	pruned    uint64         // e.pos when own was last pruned
	// unitsDone is the highest number of this node's units seen in the
	// log, and unitIDs the ids of the answered ones among the latest: a
	// batch whose reply was lost is not resent past them (after Redis lost
	// its data, the publish record that would make a resent unit a no-op
	// is gone too).
	unitsDone uint64
	unitIDs   map[uint64]reply
	lost      uint64 // the dataset's lost mark, as last read

	q queue
	// busWake cuts the bus's coalescing pause short: a publisher waits
	// for its own event.
	busWake chan struct{}
	waiting atomic.Int32 // publishers waiting for the bus to apply their event

	view atomic.Pointer[[]Node]

	// skipTo is the id of the latest malformed entry read while e.pos was
	// skipAt: the bus reads on from there (guarded by mu).
	skipAt uint64
	skipTo string
	badLog lograte.Limiter[string] // malformed entries come in floods

	// Counters for /metrics.
	gaps, epochs, rollbacks, dropped, unavailable, badEntries, orderErrors atomic.Int64
	lagNs, rttNs                                                           atomic.Int64
}

// Node is one member in the cluster view.
type Node struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"`
	Streams int       `json:"streams"`
	Seq     uint64    `json:"seq"`
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
}

// New checks cfg and returns an engine for h; Run connects it. It makes h
// publish through the engine.
func New(cfg Config, h *hub.Hub) (*Engine, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LogLength <= 0 {
		cfg.LogLength = DefaultLogLength
	}
	// One publish batch of a node lands in the log at once: a log
	// shorter than two would be trimmed past nodes that keep up.
	cfg.LogLength = max(cfg.LogLength, 2*maxBatch)
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.HistoryAge <= 0 {
		cfg.HistoryAge = hub.DefaultHistoryAge
	}
	if cfg.IdempotencyWindow <= 0 {
		cfg.IdempotencyWindow = hub.DefaultIdempotencyWindow
	}
	cfg.Coalesce = max(cfg.Coalesce, minCoalesce)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opt, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	// One hash tag for every key: the scripts touch several keys at once,
	// and on a Redis Cluster they must live in one slot.
	tag := "{" + cfg.Prefix + "}:"
	e := &Engine{cfg: cfg, log: cfg.Logger.With("cluster", cfg.Prefix), hub: h, opt: opt,
		node: hex.EncodeToString(id[:]), kMeta: tag + "meta", kLog: tag + "log", kNodes: tag + "nodes",
		started: time.Now(), joinedCh: make(chan struct{}), appliedCh: make(chan struct{}), own: make(map[uint64]int), unitIDs: make(map[uint64]reply)}
	e.kPub = tag + "pub:" + e.node
	e.kIdem, e.kIdemV, e.kRevoked = tag+"idem", tag+"idemv", tag+"revoked"
	e.kPresQ, e.kPresR = tag+"presq", tag+"presr:"
	e.kPresN, e.kPresC, e.kPresNodes = tag+"presn", tag+"presc", tag+"presnodes"
	e.pq.sig = make(chan struct{}, 1)
	e.missing = make(map[string]int)
	e.q.sig = make(chan struct{}, 1)
	e.busWake = make(chan struct{}, 1)
	h.SetReplica()
	h.SetPresenceRemote(e.presenceChanged)
	return e, nil
}

// Redact returns the -cluster URL s with the password of its user info
// replaced, for logs, errors and the profiler's command line. It works on
// the text, so that a URL too malformed to parse is redacted too.
func Redact(s string) string {
	i, j := passwordAt(s)
	if i < 0 {
		return s
	}
	return s[:i] + "REDACTED" + s[j:]
}

// passwordAt returns where the password of URL s is, s[i:j], or -1, -1.
func passwordAt(s string) (i, j int) {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return -1, -1
	}
	start := len(s) - len(rest)
	authority := rest
	if k := strings.IndexAny(rest, "/?#"); k >= 0 {
		authority = rest[:k]
	}
	at := strings.LastIndexByte(authority, '@')
	colon := strings.IndexByte(authority[:max(at, 0)], ':')
	if at < 0 || colon < 0 {
		return -1, -1
	}
	return start + colon + 1, start + at
}

// parseURL turns the -cluster URL into client options. Its errors never
// carry the password (a parser's error may quote the URL, or part of it).
func parseURL(s string) (rueidis.ClientOption, error) {
	opt, err := parseURLUnsafe(s)
	if err == nil {
		return opt, nil
	}
	msg := err.Error()
	if i, j := passwordAt(s); j > i {
		pw := s[i:j]
		msg = strings.ReplaceAll(msg, s, Redact(s))
		msg = strings.ReplaceAll(msg, pw, "REDACTED")
		if un, err := url.PathUnescape(pw); err == nil && un != "" {
			msg = strings.ReplaceAll(msg, un, "REDACTED")
		}
	}
	return opt, errors.New(msg)
}

func parseURLUnsafe(s string) (rueidis.ClientOption, error) {
	u, err := url.Parse(s)
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("-cluster: %w", err)
	}
	var master string
	var sentinels []string
	switch u.Scheme {
	case "redis", "rediss":
	case "redis+sentinel", "rediss+sentinel":
		master = u.Query().Get("master")
		if master == "" {
			return rueidis.ClientOption{}, fmt.Errorf("-cluster: %s needs ?master=NAME", u.Scheme)
		}
		sentinels = strings.Split(u.Host, ",")
		u.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
		u.Host = sentinels[0]
		q := u.Query()
		q.Del("master")
		u.RawQuery = q.Encode()
	default:
		return rueidis.ClientOption{}, fmt.Errorf("-cluster: want redis://, rediss:// or redis+sentinel://, not %q", s)
	}
	opt, err := rueidis.ParseURL(u.String())
	if err != nil {
		return opt, fmt.Errorf("-cluster: %w", err)
	}
	if master != "" {
		opt.InitAddress = sentinels
		opt.Sentinel.MasterSet = master
		opt.Sentinel.Username, opt.Sentinel.Password = opt.Username, opt.Password
		opt.Sentinel.TopologyRefreshInterval = sentinelRefresh
	}
	// A publish whose reply was lost must not be sent again by the client
	// behind our back: the engine retries it itself, with its unit number.
	opt.DisableRetry = true
	opt.DisableCache = true
	opt.DialCtxFn = guardDial // a malformed reply must not crash the client
	opt.Dialer.Timeout = 2 * time.Second
	opt.ConnWriteTimeout = publishTimeout
	opt.ClientName = "hasses"
	return opt, nil
}

// Joined is closed once the node has joined the cluster and loaded its
// history: the SSE port may then serve replays exactly.
func (e *Engine) Joined() <-chan struct{} { return e.joinedCh }

// Ready reports whether the bus is working: joined, and Redis answered
// recently.
func (e *Engine) Ready() bool {
	return e.joined.Load() && e.up.Load() && time.Since(time.Unix(0, e.lastRead.Load())) < busBlock+busGrace
}

// Run connects to Redis and runs the bus, the publisher and the cluster
// view until ctx is done. Redis being unreachable is not an error: the
// engine keeps trying.
func (e *Engine) Run(ctx context.Context) error {
	for warned := false; ; {
		c, err := rueidis.NewClient(e.opt)
		if err == nil {
			// The publisher has a client of its own: alone on its
			// connection, a batch is written and its replies read by the
			// sending goroutine itself, with no hand-off to the client's
			// background reader and writer.
			var p rueidis.Client
			if p, err = rueidis.NewClient(e.opt); err == nil {
				e.client, e.pub = c, p
				break
			}
			c.Close()
		}
		if !warned {
			e.log.Warn("cluster: cannot reach Redis yet; streams stay open, publications wait", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retryDelay):
		}
	}
	defer e.client.Close()
	defer e.pub.Close()
	var wg sync.WaitGroup
	wg.Go(func() { e.busLoop(ctx) })
	wg.Go(func() { e.sendLoop(ctx) })
	wg.Go(func() { e.nodesLoop(ctx) })
	wg.Go(func() { e.presenceLoop(ctx) })
	wg.Go(func() { e.presenceSendLoop(ctx) })
	wg.Wait()
	if n := e.q.len(); n > 0 {
		e.log.Warn("cluster: stopped with publications not yet sent to Redis", "units", n)
	}
	return nil
}

// setUp records whether Redis answered, logging the changes.
func (e *Engine) setUp(up bool, err error) {
	if e.up.Swap(up) != up {
		if up {
			e.log.Info("cluster: Redis reachable")
		} else {
			e.log.Warn("cluster: Redis unreachable; HTTP publishes get 503, control units are queued", "err", err, "queue", e.cfg.Queue)
		}
	}
}

func (e *Engine) rtt(start time.Time) { e.rttNs.Store(int64(time.Since(start))) }

// View returns the nodes seen in the last refresh.
func (e *Engine) View() []Node {
	if v := e.view.Load(); v != nil {
		return *v
	}
	return nil
}

// NodeID is this process's id in the cluster view.
func (e *Engine) NodeID() string { return e.node }

// Stats are the engine's counters.
type Stats struct {
	Ready                         bool
	Epoch, Seq                    uint64
	Lag, RTT                      time.Duration
	Queued                        int
	Gaps, EpochChanges, Rollbacks int64
	Dropped, Refused              int64
	BadEntries, OrderErrors       int64
}

// Stats returns a snapshot of the engine's state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	epoch, seq := e.epoch, e.pos
	e.mu.Unlock()
	return Stats{Ready: e.Ready(), Epoch: epoch, Seq: seq, Lag: time.Duration(e.lagNs.Load()), RTT: time.Duration(e.rttNs.Load()),
		Queued: e.q.len(), Gaps: e.gaps.Load(), EpochChanges: e.epochs.Load(), Rollbacks: e.rollbacks.Load(), Dropped: e.dropped.Load(),
		Refused: e.unavailable.Load(), BadEntries: e.badEntries.Load(), OrderErrors: e.orderErrors.Load()}
}

// CheckURL reports whether s is a usable -cluster URL, without connecting.
func CheckURL(s string) error {
	_, err := parseURL(s)
	return err
}
