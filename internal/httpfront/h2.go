package httpfront

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
	"github.com/hasses-go/hasses/web"
)

// h2stream is one HTTP/2 stream.
type h2stream struct {
	stream.Stream
	wake      chan struct{}
	peer      netip.AddrPort
	userAgent string
	opened    time.Time
}

// ClientAddr names the stream's client (stream.Client).
func (st *h2stream) ClientAddr() string { return st.peer.String() }

func (st *h2stream) wakeup() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *h2stream) info(now time.Time) stream.ClientInfo {
	ci := stream.ClientInfo{Addr: st.peer.String(), State: "streaming (HTTP/2)", UserAgent: st.userAgent, Age: now.Sub(st.opened)}
	if sub := st.Sub(); sub != nil {
		ci.ID, ci.Tokens = sub.ID, st.Tokens()
	}
	return ci
}

// serveH2 answers one request of an HTTP/2 connection with the same rules
// and answers as the HTTP/1.1 state machine.
func (s *Server) serveH2(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	hcfg := s.core.Config().Handshake
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	path := r.URL.EscapedPath()
	if r.RequestURI == "*" {
		path = "*"
	}
	var req *handshake.Request
	var err error
	if n := headSize(r); n > hcfg.HeadLimit() {
		err = &handshake.Error{Status: 431, Reason: "request head over the limit"}
	} else {
		req, err = handshake.FromHTTP(r.Method, path, r.URL.RawQuery, r.URL.RawQuery != "" || r.URL.ForceQuery, r.Header, hcfg)
	}
	clear(r.Header) // the stream keeps only what it needs, in req
	expires, status := s.core.Check(req, err, peer.String, now)
	if status != 0 {
		handshake.SetErrorHeaders(w.Header(), hcfg, status)
		w.WriteHeader(status)
		w.Write(handshake.AppendErrorBodyHint(nil, status, handshake.Hint(err)))
		return
	}
	if req.Script {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(web.Script)))
		w.WriteHeader(http.StatusOK)
		if req.Method == "GET" {
			w.Write(web.Script)
		}
		return
	}
	if req.Method != "GET" {
		handshake.SetPreflightHeaders(w.Header(), hcfg, req.Method, req.Origin)
		w.WriteHeader(http.StatusOK)
		return
	}
	if c, _ := r.Context().Value(connKey{}).(*conn); c != nil {
		// The per-address cap counts streams: the connection's admission
		// stands for its first, every other counts on its own.
		if !c.openH2(s.core, peer.Addr()) {
			handshake.SetErrorHeaders(w.Header(), hcfg, http.StatusTooManyRequests)
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(handshake.AppendErrorBody(nil, http.StatusTooManyRequests))
			return
		}
		defer c.closeH2(s.core, peer.Addr())
	}
	st := &h2stream{wake: make(chan struct{}, 1), peer: peer, userAgent: req.UserAgent, opened: now}
	replay := s.core.Open(&st.Stream, s.owner, req, expires, true, st, now)
	s.mu.Lock()
	s.h2s[st] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.h2s, st)
		s.mu.Unlock()
		st.Close()
	}()
	handshake.SetStreamHeaders(w.Header(), hcfg, req.Origin)
	if replay != hub.ReplayNone {
		w.Header().Set("X-Hasses-Replay", replay.String())
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	st.Start(nil, replay)
	bw := &blockingWriter{core: s.core, st: &st.Stream, set: rc.SetWriteDeadline,
		write: func(bufs [][]byte) (int, error) {
			n := 0
			for _, b := range bufs {
				m, err := w.Write(b)
				n += m
				if err != nil {
					return n, err
				}
			}
			return n, rc.Flush()
		}}
	defer s.track(bw)()
	s.pump(&st.Stream, noLock{}, bw, st.wake, r.Context().Done(), func() bool { return true })
}

// headSize approximates the size of the request head, as HTTP/1.1 would
// spell it, for the same limit on both protocols.
func headSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(" HTTP/1.1\r\n")
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n + len(r.Host)
}

// noLock is the lock of a stream that only its own goroutine touches.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}
