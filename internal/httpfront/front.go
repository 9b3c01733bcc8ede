// Package httpfront serves the SSE port over TLS: HTTP/1.1 connections run
// the same connection state machine as the plain port's epoll loops
// (stream.Conn), byte for byte, reinit and keep-alive included; HTTP/2
// connections, negotiated by ALPN, are served by net/http. Either way a
// stream is a stream.Stream fed from the shared hub, and this package only
// moves bytes: a goroutine per stream writes with a deadline.
//
// Every TCP connection is admitted by the stream core when it is accepted,
// before the TLS handshake, so the connection caps count HTTP/1.1 and
// HTTP/2 connections alike, and a connection over a cap is closed at once.
package httpfront

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/lograte"
	"github.com/hasses-go/hasses/internal/stream"
)

// Config configures the TLS front end.
type Config struct {
	// TLS is the server's TLS configuration (certificates); required. Its
	// NextProtos are set here: h2, then http/1.1.
	TLS *tls.Config
	// MaxStreamsPerConn caps the concurrent streams of one HTTP/2
	// connection; zero means DefaultMaxStreamsPerConn.
	MaxStreamsPerConn int
	// SendBuffer, if non-zero, fixes each connection's kernel send buffer,
	// as on the plain port (epoll.Config.SendBuffer).
	SendBuffer int
}

// DefaultMaxStreamsPerConn is the HTTP/2 concurrent stream cap: enough for
// every tab of a browser, and a bound on what one connection can hold.
const DefaultMaxStreamsPerConn = 100

// Server is the TLS front end of the SSE port.
type Server struct {
	core  *stream.Core
	cfg   Config
	tls   *tls.Config
	owner *hub.Owner
	wake  chan struct{}
	h2    *http.Server
	h2ln  *chanListener
	stop  chan struct{} // closed at shutdown: streams end

	mu    sync.Mutex
	conns map[*conn]struct{} // every admitted connection
	byNet map[net.Conn]*conn // HTTP/2 connections, to account for them when net/http closes them
	h2s   map[*h2stream]struct{}
	// writers are the streams' writers, for the watchdog.
	writers map[*blockingWriter]struct{}
	wg      sync.WaitGroup // connection goroutines

	acceptErr lograte.Limiter[string] // accept errors come in floods
}

// New registers the front end as an owner in the core's hub; call it before
// any stream subscribes.
func New(core *stream.Core, cfg Config) *Server {
	if cfg.MaxStreamsPerConn <= 0 {
		cfg.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	tc := cfg.TLS.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	s := &Server{core: core, cfg: cfg, tls: tc, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		conns: map[*conn]struct{}{}, byNet: map[net.Conn]*conn{}, h2s: map[*h2stream]struct{}{},
		writers: map[*blockingWriter]struct{}{}}
	s.owner = core.NewOwner(func() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	})
	ccfg := core.Config()
	s.h2 = &http.Server{
		Handler:           http.HandlerFunc(s.serveH2),
		ReadHeaderTimeout: ccfg.HandshakeTimeout,
		IdleTimeout:       ccfg.HandshakeTimeout,
		MaxHeaderBytes:    ccfg.Handshake.HeadLimit(),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: cfg.MaxStreamsPerConn},
		ErrorLog:          slog.NewLogLogger(core.Logger().Handler(), slog.LevelDebug),
		ConnState:         s.h2ConnState,
		ConnContext: func(ctx context.Context, nc net.Conn) context.Context {
			s.mu.Lock()
			c := s.byNet[nc]
			s.mu.Unlock()
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	return s
}

// Serve serves ln until ctx is done, then ends every stream cleanly and
// shuts down within the drain time.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	dctx, stopDispatch := context.WithCancel(context.Background())
	var dwg sync.WaitGroup
	dwg.Go(func() { s.dispatch(dctx) })
	dwg.Go(func() { s.watch(dctx) })
	defer func() { stopDispatch(); dwg.Wait() }()

	s.h2ln = &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	h2done := make(chan error, 1)
	go func() { h2done <- s.h2.Serve(s.h2ln) }()

	stopAccept := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopAccept()
	var err error
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("httpfront: %w", aerr)
				break
			}
			s.acceptErr.Log(s.core.Logger(), slog.LevelWarn, "accept", "accept failed", "err", aerr)
			time.Sleep(50 * time.Millisecond) // out of fds: do not spin
			continue
		}
		s.accept(nc)
	}
	ln.Close()

	// Shut down: end every stream with a retry hint, then close what is
	// left when the drain time is over.
	s.core.Drain()
	close(s.stop)
	s.mu.Lock()
	for c := range s.conns {
		if !c.served.Load() {
			c.nc.Close() // its handshake fails at once
		}
	}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), s.core.Config().Drain)
	defer cancel()
	if s.h2.Shutdown(sctx) != nil {
		s.h2.Close()
	}
	<-h2done
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	return err
}

// accept admits a TCP connection and starts its goroutine.
func (s *Server) accept(nc net.Conn) {
	peer := addrPort(nc.RemoteAddr())
	c := &conn{srv: s, nc: nc, wake: make(chan struct{}, 1), gone: make(chan struct{})}
	if status := s.core.Accept(&c.Conn, peer, time.Now()); status != 0 {
		nc.Close() // no answer is possible before the TLS handshake
		return
	}
	if tcp, ok := nc.(*net.TCPConn); ok && s.cfg.SendBuffer > 0 {
		tcp.SetWriteBuffer(s.cfg.SendBuffer)
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Go(c.serve)
}

// connKey finds an HTTP/2 request's *conn in its context.
type connKey struct{}

// forget drops an admitted connection.
func (s *Server) forget(c *conn) {
	c.mu.Lock()
	c.Close()
	c.mu.Unlock()
	s.mu.Lock()
	delete(s.conns, c)
	delete(s.byNet, c.tc) // the key net/http knows the connection by
	s.mu.Unlock()
}

// h2ConnState accounts for the HTTP/2 connections net/http serves.
func (s *Server) h2ConnState(nc net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	s.mu.Lock()
	c := s.byNet[nc]
	s.mu.Unlock()
	if c != nil {
		s.forget(c)
	}
}

// dispatch turns the hub's wake-ups into wake-ups of the affected streams.
func (s *Server) dispatch(ctx context.Context) {
	var ready []*hub.Sub
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		ready = s.core.Hub().Collect(s.owner, ready[:0])
		for _, sub := range ready {
			sub.Conn.(waker).wakeup()
		}
		clear(ready)
	}
}

// waker is a stream's handle in the hub.
type waker interface{ wakeup() }

// Stats returns the port's counters.
func (s *Server) Stats() stream.Stats { return s.core.Stats() }

// Clients lists the connections (HTTP/1.1) and streams (HTTP/2).
func (s *Server) Clients() []stream.ClientInfo {
	now := time.Now()
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	var out []stream.ClientInfo
	for st := range s.h2s {
		out = append(out, st.info(now))
	}
	s.mu.Unlock()
	for _, c := range conns {
		if !c.mu.TryLock() {
			// A write holds the lock, maybe until the write timeout:
			// show the connection as of its last write (a moment old
			// if the reader holds the lock instead).
			if sh := c.shown.Load(); sh != nil {
				ci := sh.info
				ci.Age += now.Sub(sh.at)
				out = append(out, ci)
				continue
			}
			c.mu.Lock()
		}
		if !c.h2 {
			out = append(out, c.Info(now))
		}
		c.mu.Unlock()
	}
	return out
}

// pumped is what a stream goroutine drives: a stream.Conn (HTTP/1.1) or a
// stream.Stream (HTTP/2).
type pumped interface {
	Flush(w stream.Writer, sc *stream.Scratch, now time.Time) stream.Status
	Tick(now time.Time) stream.Action
	Drain(now time.Time) stream.Action
	Deadline() time.Time
	HeartbeatDue() time.Time
}

// pump writes p until it is done: a write fails, the client goes (gone),
// a deadline closes it, or finished says so. Every call on p holds mu.
func (s *Server) pump(p pumped, mu sync.Locker, w stream.Writer, wake, gone <-chan struct{}, finished func() bool) {
	var sc stream.Scratch
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stop := s.stop
	for {
		mu.Lock()
		status := p.Flush(w, &sc, time.Now())
		next := p.Deadline()
		if hb := p.HeartbeatDue(); !hb.IsZero() && (next.IsZero() || hb.Before(next)) {
			next = hb
		}
		mu.Unlock()
		s.core.AddWrites(sc.Writes)
		sc.Writes = 0
		switch status {
		case stream.Failed:
			return
		case stream.Finished:
			if finished() {
				return
			}
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		var a stream.Action
		select {
		case <-wake:
			continue
		case <-gone:
			return
		case <-timer.C:
			mu.Lock()
			a = p.Tick(time.Now())
			mu.Unlock()
		case <-stop:
			stop = nil
			mu.Lock()
			a = p.Drain(time.Now())
			mu.Unlock()
		}
		if a == stream.Close {
			return
		}
	}
}

// blockingWriter writes with a deadline: the stream's end (Ends: its
// lifetime, grant or linger), and at most WriteTimeout from now, so that
// a client that stops reading holds nothing past either. While a write
// blocks, the watchdog checks the stream against the lag limit.
type blockingWriter struct {
	core  *stream.Core
	st    *stream.Stream
	set   func(time.Time) error
	write func(bufs [][]byte) (int, error)

	since  atomic.Int64 // start of the write in progress, Unix nanoseconds; 0 when none
	sub    atomic.Pointer[hub.Sub]
	cursor atomic.Uint64 // the events the stream had been given before it
	killed atomic.Bool   // the watchdog cut the write: the stream lagged
	// ending is held by the watchdog while it cuts and by Write as the
	// write ends: a cut never reaches a write that has ended, whose
	// stream may be gone (net/http's response writer panics once its
	// handler has returned).
	ending sync.Mutex
}

func (w *blockingWriter) Write(bufs [][]byte) (int, error) {
	now := time.Now()
	dl := now.Add(w.core.Config().WriteTimeout)
	if d := w.st.Ends(); !d.IsZero() && d.Before(dl) {
		dl = d
		if floor := now.Add(10 * time.Millisecond); dl.Before(floor) {
			dl = floor // a write at the deadline still gets its chance
		}
	}
	w.set(dl)
	// Disarmed once written: HTTP/2 resets a stream (INTERNAL_ERROR) whose
	// write deadline passes even with no write in progress, as when it
	// idles longer than WriteTimeout, or ends cleanly at its deadline.
	defer w.set(time.Time{})
	if sub := w.st.Sub(); sub != nil {
		w.cursor.Store(sub.Cursor())
		w.sub.Store(sub)
	}
	w.since.Store(now.UnixNano())
	n, err := w.write(bufs)
	w.ending.Lock()
	w.since.Store(0)
	w.ending.Unlock()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if !w.killed.Load() {
			w.core.CountStalled()
		}
		w.st.SetLagging()
	}
	return n, err
}

// watch cuts the writes of streams that fell past the lag limit while
// blocked, once a second, until ctx is done.
func (s *Server) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var ws []*blockingWriter
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			ws = ws[:0]
			for w := range s.writers {
				if since := w.since.Load(); since != 0 && now.UnixNano()-since > int64(time.Second) {
					ws = append(ws, w)
				}
			}
			s.mu.Unlock()
			for _, w := range ws {
				w.cut()
			}
			clear(ws)
		}
	}
}

// cut ends the write in progress if the stream is past the lag limit,
// and reports whether it did.
func (w *blockingWriter) cut() bool {
	w.ending.Lock()
	defer w.ending.Unlock()
	if w.since.Load() == 0 {
		return false // the write ended since the watchdog looked
	}
	if sub := w.sub.Load(); sub == nil || !w.core.Hub().Behind(sub, w.cursor.Load()) || !w.killed.CompareAndSwap(false, true) {
		return false
	}
	w.core.CountLagged() // first: the client may see its stream end at once
	w.set(time.Now())
	return true
}

// track registers a writer with the watchdog until the returned function
// is called.
func (s *Server) track(w *blockingWriter) (untrack func()) {
	s.mu.Lock()
	s.writers[w] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.writers, w)
		s.mu.Unlock()
	}
}

// chanListener hands HTTP/2 connections, already through their TLS
// handshake, to net/http.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
