// Package stream is what an SSE stream is, whatever carries it: the
// preamble (retry hint, replay status, hasses-reset), the Fill → write →
// Wrote loop over the hub's shared log, the slow-consumer policy, heartbeats
// on idle streams, the randomised lifetime, token expiry and its warning
// (hasses-expiring), the end of a stream, and the counters. It also holds
// the HTTP/1.x connection state machine (request heads, answers,
// keep-alive, reinit) that the plain port and HTTP/1.1 over TLS share.
//
// Front ends only move bytes. Each hands a Stream a Writer and calls Flush
// when there may be something to write, Tick when a deadline or the sweep
// comes, and Close when the connection goes. The epoll loops write without
// blocking (a short write parks the stream until the socket is writable);
// goroutine front ends (TLS, HTTP/2) write with a deadline and block.
//
// Concurrency: a Core is safe for concurrent use. A Stream or Conn belongs
// to one goroutine at a time (its epoll loop, or the goroutine or lock of
// its connection).
package stream

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
)

// Defaults for Config's zero fields, and the defaults of the options that
// set them.
const (
	DefaultHandshakeTimeout = 20 * time.Second
	DefaultLifetime         = time.Hour
	DefaultHeartbeat        = 20 * time.Second // the -heartbeat default; zero in Config means none
	DefaultDrain            = 5 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxConnsPerAddr  = 1000 // the -max-conns-per-ip default; zero in Config means no cap
	// DefaultMaxConnsPerProxy is the -max-conns-per-proxy default: the
	// streams a trusted proxy may carry without naming their clients (a
	// proxy that adds no forwarding header, as the seed's nginx recipe).
	// 20 clients' worth: far above one client, so that a proxy for a busy
	// site works as configured, yet a bound should the proxy be a TCP relay
	// that lets anyone through unnamed. Zero in Config means no cap.
	DefaultMaxConnsPerProxy = 20000
	// DefaultRenewBefore is the -jwt-renew-before default: a stream whose
	// grant expires gets hasses-expiring this long before, time enough to
	// fetch a fresh token and reopen. Zero in Config means no such event.
	DefaultRenewBefore = 30 * time.Second
)

// Linger is how long a connection that has finished gets to take its last
// bytes, or to close after a complete answer, before it is closed.
const Linger = 2 * time.Second

// Bounds of one write, so that one stream cannot hog its loop.
const (
	MaxWriteBufs  = 1024 // the kernel's IOV_MAX
	MaxWriteBytes = 256 << 10
)

// Config configures the SSE port; both front ends take it whole.
type Config struct {
	// Handshake holds the request rules and the answers' headers; nil means
	// path /sse and the handshake package's defaults.
	Handshake *handshake.Config
	// HandshakeTimeout closes a connection that has not sent a complete
	// request head this long after it opened, or after its last stream
	// ended (keep-alive); zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Lifetime is the maximum age of a stream; each gets a random 80-100 %
	// of it, so that clients that connected together do not all reconnect
	// together. Zero means DefaultLifetime.
	Lifetime time.Duration
	// Heartbeat is how long a stream may stay idle before a comment is
	// written to it, so that proxies keep it; zero means no heartbeat.
	Heartbeat time.Duration
	// Retry, if non-zero, is sent as the "retry:" hint when a stream opens.
	Retry time.Duration
	// Drain bounds a graceful shutdown: streams still open then are closed.
	// Zero means DefaultDrain.
	Drain time.Duration
	// WriteTimeout closes a stream whose writes make no progress this long;
	// zero means DefaultWriteTimeout. (A stream whose client reads, but too
	// slowly, is closed by the hub's lag limit instead.)
	WriteTimeout time.Duration
	// MaxConns caps the connections on the SSE port (503); zero means no
	// cap.
	MaxConns int
	// MaxConnsPerAddr caps the connections of one client address (429), an
	// IPv6 /64 counting as one; zero means no cap.
	MaxConnsPerAddr int
	// MaxConnsPerProxy caps the streams of one trusted proxy whose
	// requests name no client (429); zero means no cap.
	MaxConnsPerProxy int
	// TrustedProxies are the reverse proxies whose connections are not
	// capped per address when accepted: once a request head names the
	// client behind the proxy (X-Forwarded-For, Forwarded, X-Real-IP), the
	// stream counts against that client until it ends. Nil trusts nobody.
	TrustedProxies *access.Proxies
	// Refusals logs refused connections and streams, a line per reason
	// and second; nil logs none.
	Refusals *refusal.Log
	// Authorize, if set, checks a stream request (subscriber tokens) and
	// returns when its grant expires (zero: never) or the status to refuse
	// it with.
	Authorize func(req *handshake.Request, now time.Time) (expires time.Time, status int, err error)
	// RenewBefore is how long before its grant expires a stream gets a
	// hasses-expiring event (at once if it opens closer to the expiry than
	// that); zero means none.
	RenewBefore time.Duration
	// Reinit is hasses' reinit switch (-ra): a streaming HTTP/1.1 client may
	// send a new GET request on the same connection. Nil means off.
	Reinit *atomic.Bool
	// Logger receives refusals and slow-client closes; nil means
	// slog.Default().
	Logger *slog.Logger
	// Observer, if set, hears of every stream that opens and ends.
	Observer Observer
}

func (c *Config) setDefaults() {
	if c.Handshake == nil {
		c.Handshake = &handshake.Config{Path: "/sse"}
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Lifetime <= 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Reinit == nil {
		c.Reinit = new(atomic.Bool)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Core is what the streams of one SSE port share: the hub, the policies and
// the counters. Every front end reports through it, so the counters and
// metrics mean the same under TLS as on the plain port.
type Core struct {
	cfg     Config
	hub     *hub.Hub
	perAddr access.PerAddr
	// perProxy counts the streams of trusted proxies that name no client.
	perProxy access.PerAddr
	owners   atomic.Pointer[[]*hub.Owner]
	// userAgents interns the connections' User-Agent strings.
	userAgents userAgents

	conns, streams, maxConns atomic.Int64
	lagged, stalled          atomic.Int64
	refused, refusedPerAddr  atomic.Int64
	unauthorized, writes     atomic.Int64
	draining                 atomic.Bool
}

// New returns the core of an SSE port on h; cfg's zero fields get their
// defaults.
func New(h *hub.Hub, cfg Config) *Core {
	cfg.setDefaults()
	c := &Core{cfg: cfg, hub: h, perAddr: access.PerAddr{Limit: cfg.MaxConnsPerAddr},
		perProxy: access.PerAddr{Limit: cfg.MaxConnsPerProxy}}
	c.owners.Store(new([]*hub.Owner))
	return c
}

// Config returns the configuration with its defaults applied; it must not
// be changed.
func (c *Core) Config() *Config { return &c.cfg }

// Hub returns the hub the streams read from.
func (c *Core) Hub() *hub.Hub { return c.hub }

// Logger returns the logger for the port's events.
func (c *Core) Logger() *slog.Logger { return c.cfg.Logger }

// NewOwner registers a hub owner whose deliveries count for this port.
func (c *Core) NewOwner(wake func()) *hub.Owner {
	o := c.hub.NewOwner(wake)
	for {
		old := c.owners.Load()
		owners := append(append([]*hub.Owner(nil), *old...), o)
		if c.owners.CompareAndSwap(old, &owners) {
			return o
		}
	}
}

// Admit counts a new connection from addr, or returns the status to refuse
// it with: 503 over MaxConns, 429 over the per-address cap. capped reports
// whether addr counts under the per-address cap: a trusted proxy's
// connections are capped per request instead (see Conn). An admitted
// connection is given back with Leave.
func (c *Core) Admit(addr netip.Addr) (capped bool, status int) {
	if max := c.cfg.MaxConns; max > 0 && c.conns.Load() >= int64(max) {
		c.refused.Add(1) // counted before the answer, which a client may read at once
		c.cfg.Refusals.Refused(refusal.ConnCap, 503, addr.String(), nil)
		return false, 503
	}
	if !c.cfg.TrustedProxies.Trusts(addr) {
		if !c.takeAddr(addr, addr.String) {
			return false, 429
		}
		capped = true
	}
	n := c.conns.Add(1)
	for m := c.maxConns.Load(); n > m && !c.maxConns.CompareAndSwap(m, n); m = c.maxConns.Load() {
	}
	return capped, 0
}

// takeAddr counts a stream or connection of addr under the per-address
// cap, or counts and logs the refusal (shown is the client as logs show
// it, made only then: every connection comes here).
func (c *Core) takeAddr(addr netip.Addr, shown func() string) bool {
	if c.perAddr.Take(addr) {
		return true
	}
	c.refusedPerAddr.Add(1)
	c.cfg.Refusals.Refused(refusal.PerAddrCap, 429, shown(), nil)
	return false
}

// AdmitStream counts one more HTTP/2 stream of a connection from peer,
// beyond the one that the connection's own admission stands for, so that
// the per-address cap counts streams, not connections; a trusted proxy's
// streams (every one: its connection is not counted) count under the
// per-proxy cap. False means refused (429), counted and logged; an
// admitted stream is given back with LeaveStream.
func (c *Core) AdmitStream(peer netip.Addr) bool {
	if c.cfg.TrustedProxies.Trusts(peer) {
		return c.takeProxy(peer, peer.String)
	}
	return c.takeAddr(peer, peer.String)
}

// LeaveStream forgets a stream that AdmitStream counted.
func (c *Core) LeaveStream(peer netip.Addr) {
	if c.cfg.TrustedProxies.Trusts(peer) {
		c.perProxy.Release(peer)
	} else {
		c.perAddr.Release(peer)
	}
}

// takeProxy counts a stream that trusted proxy addr carries without
// naming its client, or counts and logs the refusal.
func (c *Core) takeProxy(addr netip.Addr, shown func() string) bool {
	if c.perProxy.Take(addr) {
		return true
	}
	c.refusedPerAddr.Add(1)
	c.cfg.Refusals.Refused(refusal.PerProxyCap, 429, shown(), nil)
	return false
}

// Leave forgets a connection that Admit counted; capped is what Admit
// returned.
func (c *Core) Leave(addr netip.Addr, capped bool) {
	if capped {
		c.perAddr.Release(addr)
	}
	c.conns.Add(-1)
}

// Refused counts and logs a connection refused before it could be admitted:
// the process is out of file descriptors.
func (c *Core) Refused() {
	c.refused.Add(1)
	c.cfg.Refusals.Refused(refusal.OutOfFiles, 503, "", nil)
}

// Check decides a request: parseErr is what parsing it returned. It
// returns the status to refuse it with (0 to serve it) and, for a stream,
// when its grant expires (zero: never).
// peer returns the client as logs show it (called only to log).
func (c *Core) Check(req *handshake.Request, parseErr error, peer func() string, now time.Time) (expires time.Time, status int) {
	if parseErr != nil {
		status = 400
		var he *handshake.Error
		if errors.As(parseErr, &he) {
			status = he.Status
		}
		if status == 403 {
			c.cfg.Refusals.Refused(refusal.Origin, status, peer(), parseErr)
		} else {
			c.cfg.Logger.Debug("bad request", "peer", peer(), "status", status, "err", parseErr)
		}
		return time.Time{}, status
	}
	if req.Method != "GET" || req.Script || c.cfg.Authorize == nil {
		return time.Time{}, 0
	}
	expires, status, err := c.cfg.Authorize(req, now)
	if err != nil {
		if status == 0 {
			status = 401
		}
		c.unauthorized.Add(1)
		reason := refusal.Unauthorized
		if status == 403 {
			reason = refusal.Forbidden
		}
		c.cfg.Refusals.Refused(reason, status, peer(), err)
		return time.Time{}, status
	}
	return expires, 0
}

// Drain marks the port as shutting down: streams that end now close their
// connection instead of keeping it for another request.
func (c *Core) Drain() { c.draining.Store(true) }

// DrainRetry is the retry hint a stream ended by a shutdown gets: spread
// over a few seconds, so that clients do not all reconnect at once.
func DrainRetry() time.Duration { return time.Duration(500+rand.IntN(4500)) * time.Millisecond }

// CountLagged counts a stream closed for falling past the lag limit while
// a blocking front end's write was stuck.
func (c *Core) CountLagged() { c.lagged.Add(1) }

// CountStalled counts a stream closed because its writes made no progress
// (a blocking front end's write deadline passed).
func (c *Core) CountStalled() { c.stalled.Add(1) }

// AddWrites adds n writes that carried events; front ends batch them.
func (c *Core) AddWrites(n int64) {
	if n != 0 {
		c.writes.Add(n)
	}
}

// Open subscribes st, which must be a zero Stream or a closed one, on the
// hub through owner o. text selects unframed SSE text (HTTP/1.0 and
// net/http) instead of HTTP/1.1 chunks. conn is the owner's handle, found
// again in hub.Collect's results. Open is called before the response head
// is written, so that a message published the moment the client sees the
// head is not missed.
func (c *Core) Open(st *Stream, o *hub.Owner, req *handshake.Request, expires time.Time, text bool, conn any, now time.Time) hub.Replay {
	sub, replay, snapshot := c.hub.Open(o, hub.SubRequest{Tokens: req.Tokens, ID: req.ID, User: req.User, LastID: req.LastEventID, Conn: conn})
	sub.Text = text
	// The presence snapshot waits in out for Start to put it after the
	// head and the preamble.
	deadline := c.deadline(now, expires)
	*st = Stream{core: c, sub: sub, out: snapshot, chunked: !text, initID: !req.NoInitID, lastWrite: now.UnixNano(), deadline: deadline.UnixNano(),
		grant: !expires.IsZero() && deadline.Equal(expires)}
	if c.cfg.RenewBefore > 0 && !expires.IsZero() {
		st.expiring = expires.UnixNano()
	}
	c.streams.Add(1)
	if ob := c.cfg.Observer; ob != nil {
		ob.Opened(st.info())
	}
	return replay
}

// deadline is when a stream opened now ends: a random 80-100 % of the
// lifetime, or when its grant expires if that is sooner.
func (c *Core) deadline(now, expires time.Time) time.Time {
	life := c.cfg.Lifetime
	d := now.Add(life - time.Duration(rand.Int64N(int64(life)/5+1)))
	if !expires.IsZero() && expires.Before(d) {
		return expires
	}
	return d
}

// Stats is a snapshot of the port's counters.
type Stats struct {
	Conns, Streams, MaxConns int64 // open now, streaming now, most seen at once
	Delivered                int64 // events written to streams
	Writes                   int64 // writes that carried events
	Lagged                   int64 // streams closed for falling more than the lag limit behind
	Stalled                  int64 // streams closed because their writes made no progress
	Refused                  int64 // connections refused for lack of capacity
	RefusedPerAddr           int64 // connections refused by the per-address cap
	Unauthorized             int64 // stream requests refused by Authorize
}

// Stats returns the counters.
func (c *Core) Stats() Stats {
	s := Stats{Conns: c.conns.Load(), Streams: c.streams.Load(), MaxConns: c.maxConns.Load(),
		Writes: c.writes.Load(), Lagged: c.lagged.Load(), Stalled: c.stalled.Load(), Refused: c.refused.Load(),
		RefusedPerAddr: c.refusedPerAddr.Load(), Unauthorized: c.unauthorized.Load()}
	for _, o := range *c.owners.Load() {
		s.Delivered += o.Delivered()
	}
	return s
}

// ClientInfo describes one connection, for the clientlist command.
type ClientInfo struct {
	FD        int // the socket, where the front end knows it
	Addr      string
	State     string
	ID        string
	UserAgent string
	Tokens    []string
	Age       time.Duration
}
