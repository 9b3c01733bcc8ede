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
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/lograte"
	"github.com/hasses-go/hasses/internal/stream"
)

// DefaultLoops is one loop per two CPUs, at least one: the other half is
// left to the kernel's TCP work for the writes (on loopback and with most
// network cards it runs on the writing core), the clients and the rest of
// the machine. Measured on 2 cores at 18,000 streams on 1,800 tokens, one
// loop spent 20 % less CPU per delivery than two, and one token at
// 1.8 M deliveries/s stayed well within its latency target
// (docs/performance.md).
func DefaultLoops() int { return max(1, runtime.NumCPU()/2) }

// DefaultSendBuffer is the -sndbuf default: small enough that the lag
// limit, not the kernel, decides when a stalled client is dropped.
const DefaultSendBuffer = 64 << 10

// Config configures the loops; what a stream is, and its limits, is the
// stream.Core's configuration.
type Config struct {
	// Loops is the number of epoll loops; zero means DefaultLoops().
	Loops int
	// Coalesce, if non-zero, is the least time between two flush passes of a
	// loop: events published meanwhile go out together, in one write per
	// stream. It trades latency for CPU: on loopback the cost of a delivery
	// is mostly the cost of its write.
	Coalesce time.Duration
	// SendBuffer, if non-zero, fixes each stream's kernel send buffer. The
	// kernel's autotuning grows it to megabytes for a client that does not
	// read; a fixed size bounds kernel memory and makes the lag limit, not
	// the kernel, decide when a stalled client is dropped.
	SendBuffer int
}

// Server is the epoll front end of the SSE port.
type Server struct {
	cfg   Config
	core  *stream.Core
	loops []*loop

	spareMu sync.Mutex
	spare   int // a reserved fd, given up to answer when out of fds

	acceptErr lograte.Limiter[string] // accept errors come in floods
}

// New creates the loops and registers them as owners in the core's hub. It
// must be called before any stream subscribes.
func New(core *stream.Core, cfg Config) (*Server, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = DefaultLoops()
	}
	s := &Server{cfg: cfg, core: core, spare: -1}
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
	// A loop that fails stops the server: its connections would be
	// orphaned otherwise. The others drain as at a shutdown.
	failed := make(chan error, len(s.loops))
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Go(func() {
			if err := l.run(); err != nil {
				failed <- err
				l.closeAll()
			}
		})
	}
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	s.core.Drain()
	for _, l := range s.loops {
		l.post(func() { l.startDrain() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.core.Config().Drain):
		for _, l := range s.loops {
			l.post(func() { l.closeAll() })
		}
		<-done
	}
	s.closeLoops()
	if s.spare >= 0 {
		unix.Close(s.spare)
	}
	return err
}

// Stats returns the port's counters.
func (s *Server) Stats() stream.Stats { return s.core.Stats() }

// Clients returns a snapshot of every connection. It asks each loop, so it
// is for administration, not the hot path. A loop that does not answer
// within a second is left out; the others' answers are kept.
func (s *Server) Clients() []stream.ClientInfo {
	answers := make(chan []stream.ClientInfo, len(s.loops)) // never blocks a loop
	for _, l := range s.loops {
		l.post(func() { answers <- l.snapshot() })
	}
	var out []stream.ClientInfo
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for range s.loops {
		select {
		case infos := <-answers:
			out = append(out, infos...)
		case <-timeout.C:
			return out
		}
	}
	return out
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
	if nfd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC); err == nil {
		s.core.Refused()
		send(nfd, resp)
		unix.Close(nfd)
	}
	if fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		s.spare = fd
	}
}
