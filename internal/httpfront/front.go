// Package httpfront serves SSE streams through the standard library's
// net/http: one goroutine per stream, but TLS (crypto/tls) and HTTP/2, which
// the epoll loops cannot offer. It feeds from the same hub: a stream's
// goroutine fills and writes from the shared event log exactly as an epoll
// loop does.
package httpfront

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/internal/sse"
)

// Config configures the front end; the fields mean what they mean for the
// epoll front end.
type Config struct {
	Handshake        *handshake.Config
	HandshakeTimeout time.Duration
	Lifetime         time.Duration
	Heartbeat        time.Duration
	Retry            time.Duration
	Drain            time.Duration
	WriteTimeout     time.Duration // a stream whose write blocks this long is closed
	TLS              *tls.Config   // nil: plain HTTP (h2c is not offered)
	// MaxStreams and MaxStreamsPerIP cap the streams in all and per client
	// address (503 and 429); zero means no cap.
	MaxStreams, MaxStreamsPerIP int
	// TrustedProxies: a stream from one of these counts against the client
	// its request names, if any (see the epoll front end). Nil trusts nobody.
	TrustedProxies *access.Proxies
	// Refusals logs refused streams; nil logs none.
	Refusals *refusal.Log
	// Authorize checks stream requests; see the epoll front end.
	Authorize func(req *handshake.Request, now time.Time) (expires time.Time, status int, err error)
	Logger    *slog.Logger
}

// Server is the net/http front end.
type Server struct {
	cfg   Config
	hub   *hub.Hub
	owner *hub.Owner
	wake  chan struct{}
	http  *http.Server

	allConn, sseConn, maxConn atomic.Int64
	lagged                    atomic.Int64
	refused, refusedPerIP     atomic.Int64
	stopping                  chan struct{} // closed at shutdown: streams end

	perIP access.PerAddr
}

// stream is one open SSE response.
type stream struct {
	wake chan struct{}
}

// New registers the front end as an owner in h; call it before any stream
// subscribes.
func New(h *hub.Hub, cfg Config) *Server {
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = time.Hour
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, hub: h, wake: make(chan struct{}, 1), stopping: make(chan struct{}),
		perIP: access.PerAddr{Limit: cfg.MaxStreamsPerIP}}
	s.owner = h.NewOwner(func() {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	})
	s.http = &http.Server{
		Handler:           s,
		TLSConfig:         cfg.TLS,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnState:         s.connState,
	}
	return s
}

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := s.allConn.Add(1)
		for m := s.maxConn.Load(); n > m && !s.maxConn.CompareAndSwap(m, n); m = s.maxConn.Load() {
		}
	case http.StateClosed, http.StateHijacked:
		s.allConn.Add(-1)
	}
}

// Serve serves ln until ctx is done, then ends every stream cleanly and
// shuts down within the drain time.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	dctx, stopDispatch := context.WithCancel(context.Background())
	wg.Go(func() { s.dispatch(dctx) })
	defer func() { stopDispatch(); wg.Wait() }()

	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLS != nil {
			err = s.http.ServeTLS(ln, "", "")
		} else {
			err = s.http.Serve(ln)
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("httpfront: %w", err)
	case <-ctx.Done():
	}
	close(s.stopping)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Drain)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.http.Close()
	}
	<-errc
	return nil
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
		ready = s.hub.Collect(s.owner, ready[:0])
		for _, sub := range ready {
			select {
			case sub.Conn.(*stream).wake <- struct{}{}:
			default:
			}
		}
		clear(ready)
	}
}

// ServeHTTP answers one request on the SSE port.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hcfg := s.cfg.Handshake
	path := r.URL.EscapedPath()
	if r.RequestURI == "*" {
		path = "*"
	}
	req, err := handshake.FromHTTP(r.Method, path, r.URL.RawQuery, r.URL.RawQuery != "" || r.URL.ForceQuery,
		r.Header, hcfg)
	if err != nil {
		status := http.StatusBadRequest
		if he := (*handshake.Error)(nil); errors.As(err, &he) {
			status = he.Status
		}
		if status == http.StatusNotImplemented {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		}
		if status == http.StatusForbidden {
			s.cfg.Refusals.Refused(refusal.Origin, status, r.RemoteAddr, err)
		}
		w.Header().Set("Access-Control-Allow-Origin", originOf(hcfg))
		http.Error(w, err.Error(), status)
		return
	}
	var expires time.Time
	if req.Method == "GET" && s.cfg.Authorize != nil {
		var status int
		if expires, status, err = s.cfg.Authorize(req, time.Now()); err != nil {
			reason := refusal.Unauthorized
			if status == http.StatusForbidden {
				reason = refusal.Forbidden
			}
			s.cfg.Refusals.Refused(reason, status, s.clientString(r, req), err)
			w.Header().Set("Access-Control-Allow-Origin", originOf(hcfg))
			http.Error(w, err.Error(), status)
			return
		}
	}
	if req.Method != "GET" {
		handshake.SetPreflightHeaders(w.Header(), hcfg, req.Method, req.Origin)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.stream(w, r, req, expires)
}

func originOf(c *handshake.Config) string {
	if c.CORSBase == "" {
		return "*"
	}
	return c.CORSBase
}

// client returns the address a request stands for: the peer, or behind a
// trusted proxy the client its request names.
func (s *Server) client(r *http.Request, req *handshake.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return s.cfg.TrustedProxies.Client(ap.Addr().Unmap(), req.Forwarded), true
}

// clientString is the client address for logs.
func (s *Server) clientString(r *http.Request, req *handshake.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if a := s.cfg.TrustedProxies.Client(ap.Addr().Unmap(), req.Forwarded); a != ap.Addr().Unmap() {
		return a.String() + " via " + r.RemoteAddr
	}
	return r.RemoteAddr
}

// admit applies the stream caps; it returns a release function, or the
// status to refuse with.
func (s *Server) admit(r *http.Request, req *handshake.Request) (release func(), status int) {
	if max := s.cfg.MaxStreams; max > 0 && s.sseConn.Load() >= int64(max) {
		s.refused.Add(1)
		s.cfg.Refusals.Refused(refusal.ConnCap, http.StatusServiceUnavailable, s.clientString(r, req), nil)
		return nil, http.StatusServiceUnavailable
	}
	addr, ok := s.client(r, req)
	if !ok || !s.cfg.TrustedProxies.Capped(addr) {
		return func() {}, 0
	}
	if !s.perIP.Take(addr) {
		s.refusedPerIP.Add(1)
		s.cfg.Refusals.Refused(refusal.PerAddrCap, http.StatusTooManyRequests, s.clientString(r, req), nil)
		return nil, http.StatusTooManyRequests
	}
	return func() { s.perIP.Release(addr) }, 0
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, req *handshake.Request, expires time.Time) {
	release, status := s.admit(r, req)
	if release == nil {
		http.Error(w, http.StatusText(status), status)
		return
	}
	defer release()
	st := &stream{wake: make(chan struct{}, 1)}
	sub, replay := s.hub.Subscribe(s.owner, req.Tokens, req.ID, req.LastEventID, st)
	defer s.hub.Unsubscribe(sub)
	s.sseConn.Add(1)
	defer s.sseConn.Add(-1)

	rc := http.NewResponseController(w)
	handshake.SetStreamHeaders(w.Header(), s.cfg.Handshake, req.Origin)
	if replay != hub.ReplayNone {
		w.Header().Set("X-Hasses-Replay", replay.String())
	}
	w.WriteHeader(http.StatusOK)
	var own []byte
	if s.cfg.Retry > 0 {
		own = fmt.Appendf(own, "retry: %d\n\n", s.cfg.Retry.Milliseconds())
	}
	if replay == hub.ReplayGap || replay == hub.ReplayUnknown {
		frame := sse.AppendEvent(nil, []byte(s.hub.CursorID(sub)), "hasses-reset", []byte(replay.String()))
		own = append(own, payload(frame)...)
	}
	write := func(p []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		_, err := w.Write(p)
		return err == nil
	}
	if len(own) > 0 && !write(own) {
		return
	}
	if rc.Flush() != nil {
		return
	}

	life := s.cfg.Lifetime - time.Duration(rand.Int64N(int64(s.cfg.Lifetime)/5+1))
	if !expires.IsZero() {
		life = min(life, time.Until(expires))
	}
	end := time.NewTimer(life)
	defer end.Stop()
	var hb <-chan time.Time
	if s.cfg.Heartbeat > 0 {
		t := time.NewTicker(s.cfg.Heartbeat)
		defer t.Stop()
		hb = t.C
	}
	var b hub.Batch
	st.wake <- struct{}{} // replay, if any
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return // net/http ends the body cleanly
		case <-s.stopping:
			write(fmt.Appendf(nil, "retry: %d\n\n", 500+rand.IntN(4500)))
			rc.Flush()
			return
		case <-hb:
			if !write([]byte(": \n\n")) || rc.Flush() != nil {
				return
			}
		case <-st.wake:
			for {
				if s.hub.Fill(sub, &b, 1024, 256<<10) {
					s.lagged.Add(1)
					return
				}
				if len(b.Bufs) == 0 {
					break
				}
				for _, f := range b.Bufs {
					if !write(payload(f)) {
						return
					}
				}
				sub.Wrote(&b, b.Bytes)
				if rc.Flush() != nil {
					return
				}
			}
		}
	}
}

// payload strips the HTTP/1.1 chunk framing from an encoded event: net/http
// frames the body itself (chunks in HTTP/1.1, DATA frames in HTTP/2).
func payload(frame []byte) []byte {
	i := bytes.IndexByte(frame, '\n')
	if i < 0 || len(frame) < i+3 {
		return frame
	}
	return frame[i+1 : len(frame)-2]
}

// Counters returns the hasses counters of this front end.
func (s *Server) Counters() (all, streaming, maxSeen, delivered int64) {
	return s.allConn.Load(), s.sseConn.Load(), s.maxConn.Load(), s.owner.Delivered()
}

// Lagged returns how many streams were closed for being too slow.
func (s *Server) Lagged() int64 { return s.lagged.Load() }

// Refused returns how many streams the total cap refused.
func (s *Server) Refused() int64 { return s.refused.Load() }

// RefusedPerIP returns how many streams the per-address cap refused.
func (s *Server) RefusedPerIP() int64 { return s.refusedPerIP.Load() }
