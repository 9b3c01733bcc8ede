// Package epoll serves SSE streams from edge-triggered epoll loops: no
// goroutine per connection and a small struct per stream, so one process
// holds tens of thousands of subscribers in a few tens of megabytes.
//
// Each loop owns its connections. It accepts from the shared listener
// (EPOLLEXCLUSIVE wakes one loop per connection), parses the request head,
// subscribes the stream in the hub, and writes events straight from the
// hub's shared log when the hub wakes it.
package epoll

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
)

// Config configures a Server.
type Config struct {
	Handshake *handshake.Config
	// Loops is the number of epoll loops; zero means one per CPU.
	Loops int
	// HandshakeTimeout closes connections that have not sent a complete
	// request by then (hasses: 20 s).
	HandshakeTimeout time.Duration
	// Lifetime is the maximum age of a stream (hasses: 3600 s). Each stream
	// gets a random 80-100 % of it, so clients that connected together do
	// not all reconnect together.
	Lifetime time.Duration
	// Heartbeat is the interval of the comment written to idle streams so
	// that proxies do not cut them; zero disables it.
	Heartbeat time.Duration
	// Retry, if non-zero, is sent as the "retry:" hint when a stream opens.
	Retry time.Duration
	// Coalesce, if non-zero, is the least time between two flush passes of a
	// loop: events published meanwhile go out together, in one write per
	// stream. It trades latency for CPU: on loopback the cost of a delivery
	// is mostly the cost of its write.
	Coalesce time.Duration
	// Drain bounds a graceful shutdown: streams still open then are closed.
	Drain time.Duration
	// MaxConns caps the connections on the SSE port; zero means no cap
	// beyond the file limit. Connections over it get 503.
	MaxConns int
	// SendBuffer, if non-zero, fixes each stream's kernel send buffer. The
	// kernel's autotuning grows it to megabytes for a client that does not
	// read; a fixed size bounds kernel memory and makes the lag limit, not
	// the kernel, decide when a stalled client is dropped.
	SendBuffer int
	// MaxConnsPerIP caps the connections of one client address; more get
	// 429. Zero means no cap.
	MaxConnsPerIP int
	// TrustedProxies are the reverse proxies whose connections are not
	// capped at accept: once a request head names the client behind the
	// proxy, the stream counts against that client until it ends. Nil
	// trusts nobody.
	TrustedProxies *access.Proxies
	// Refusals logs refused connections and streams; nil logs none.
	Refusals *refusal.Log
	// Authorize, if set, checks a stream request (subscriber tokens) and
	// returns when its grant expires (zero: never) or the status to refuse
	// it with.
	Authorize func(req *handshake.Request, now time.Time) (expires time.Time, status int, err error)
	// Reinit is hasses' reinit switch (-ra): a streaming client may send a
	// new GET request on the same connection.
	Reinit *atomic.Bool
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Loops <= 0 {
		c.Loops = runtime.NumCPU()
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 20 * time.Second
	}
	if c.Lifetime <= 0 {
		c.Lifetime = time.Hour
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.Reinit == nil {
		c.Reinit = new(atomic.Bool)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Handshake == nil {
		c.Handshake = &handshake.Config{Path: "/sse"}
	}
}

// Server is the epoll front end of the SSE port.
type Server struct {
	cfg   Config
	hub   *hub.Hub
	loops []*loop

	allConn atomic.Int64 // every open connection on the SSE port
	sseConn atomic.Int64 // connections in streaming state
	maxConn atomic.Int64 // highest allConn seen
	lagged  atomic.Int64 // streams closed because they fell too far behind
	refused atomic.Int64 // connections refused for lack of capacity
	writes  atomic.Int64 // write system calls carrying events

	spareMu sync.Mutex
	spare   int // a reserved fd, given up to answer when out of fds

	perIP        access.PerAddr
	refusedPerIP atomic.Int64 // connections refused by MaxConnsPerIP
	unauthorized atomic.Int64 // stream requests refused by Authorize
}

// New creates the loops and registers them as owners in h. It must be
// called before any stream subscribes.
func New(h *hub.Hub, cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{cfg: cfg, hub: h, spare: -1, perIP: access.PerAddr{Limit: cfg.MaxConnsPerIP}}
	for i := range cfg.Loops {
		l, err := newLoop(s, i)
		if err != nil {
			s.closeLoops()
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.spare = fd
	}
	return s, nil
}

func (s *Server) closeLoops() {
	for _, l := range s.loops {
		l.closeFds()
	}
}

// Serve accepts and serves connections from ln until ctx is done, then
// drains: it stops accepting, ends every stream cleanly with a short
// randomised retry hint, and closes what is left after Config.Drain.
// ln must be a *net.TCPListener; Serve closes it.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("epoll: listener is %T, not TCP", ln)
	}
	f, err := tl.File() // a blocking-mode dup; the loops use it non-blocking
	ln.Close()
	if err != nil {
		return fmt.Errorf("epoll: listener fd: %w", err)
	}
	lfd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return fmt.Errorf("epoll: dup listener: %w", err)
	}
	defer unix.Close(lfd)
	if err := unix.SetNonblock(lfd, true); err != nil {
		return fmt.Errorf("epoll: listener non-blocking: %w", err)
	}
	for _, l := range s.loops {
		if err := l.addListener(lfd); err != nil {
			s.closeLoops()
			return err
		}
	}
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Go(l.run)
	}
	<-ctx.Done()
	for _, l := range s.loops {
		l.post(func() { l.startDrain() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.Drain):
		for _, l := range s.loops {
			l.post(func() { l.closeAll() })
		}
		<-done
	}
	s.closeLoops()
	if s.spare >= 0 {
		unix.Close(s.spare)
	}
	return nil
}

// Counters returns the hasses counters: all connections, streaming ones,
// the highest number of connections seen, and deliveries.
func (s *Server) Counters() (all, streaming, maxSeen, delivered int64) {
	for _, l := range s.loops {
		delivered += l.owner.Delivered()
	}
	return s.allConn.Load(), s.sseConn.Load(), s.maxConn.Load(), delivered
}

// Lagged returns how many streams were closed for being too slow.
func (s *Server) Lagged() int64 { return s.lagged.Load() }

// Writes returns how many writes carried events: deliveries divided by
// writes is the coalescing factor.
func (s *Server) Writes() int64 { return s.writes.Load() }

// RefusedPerIP returns how many connections the per-address cap refused.
func (s *Server) RefusedPerIP() int64 { return s.refusedPerIP.Load() }

// Unauthorized returns how many stream requests Authorize refused.
func (s *Server) Unauthorized() int64 { return s.unauthorized.Load() }

// Refused returns how many connections were refused for lack of capacity.
func (s *Server) Refused() int64 { return s.refused.Load() }

// ClientInfo describes one connection, for the clientlist command.
type ClientInfo struct {
	FD        int
	Addr      string
	State     string
	ID        string
	UserAgent string
	Tokens    []string
	Age       time.Duration
}

// Clients returns a snapshot of every connection. It asks each loop, so it
// is for administration, not the hot path.
func (s *Server) Clients() []ClientInfo {
	var mu sync.Mutex
	var out []ClientInfo
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Add(1)
		l.post(func() {
			defer wg.Done()
			infos := l.snapshot()
			mu.Lock()
			out = append(out, infos...)
			mu.Unlock()
		})
	}
	wait := make(chan struct{})
	go func() { wg.Wait(); close(wait) }()
	select {
	case <-wait:
	case <-time.After(2 * time.Second): // a loop that has stopped answers nothing
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	return out
}

func (s *Server) noteConn(delta int64) {
	n := s.allConn.Add(delta)
	for {
		m := s.maxConn.Load()
		if n <= m || s.maxConn.CompareAndSwap(m, n) {
			return
		}
	}
}

// shed answers a pending connection with 503 when the process is out of
// file descriptors: it gives up the spare fd for a moment. Without this the
// level-triggered listener would spin, and the client would hang (hasses 8.5).
func (s *Server) shed(lfd int, resp []byte) {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if s.spare < 0 {
		return
	}
	unix.Close(s.spare)
	s.spare = -1
	if nfd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err == nil {
		s.refused.Add(1)
		s.cfg.Refusals.Refused(refusal.OutOfFiles, 503, sockaddrIP(sa).String(), nil)
		send(nfd, resp)
		unix.Close(nfd)
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.spare = fd
	}
}
