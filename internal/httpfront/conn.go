package httpfront

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
)

// conn is one TLS connection: an HTTP/1.1 connection running the shared
// state machine, or the accounting of an HTTP/2 connection that net/http
// serves.
type conn struct {
	stream.Conn
	mu  sync.Mutex // guards Conn: the reader and the writer goroutine share it
	srv *Server
	nc  net.Conn
	tc  *tls.Conn
	h2  bool
	// The open streams of an HTTP/2 connection, and the places they hold
	// under the per-address cap beyond the connection's own: always one
	// fewer than the streams (the connection stands for one).
	h2mu              sync.Mutex
	h2active, h2extra int
	wake              chan struct{}
	gone              chan struct{} // closed when the reader is done
	shut              bool          // the write side is closed
	// served is set once the TLS handshake is done: a shutdown closes
	// connections still in their handshake at once.
	served atomic.Bool
	// shown is the connection as clientlist shows it while mu is held:
	// a write holds mu for as long as a client that stopped reading makes
	// it block. writev takes it anew when the stream or state changed
	// since (shownSub, shownState).
	shown      atomic.Pointer[shown]
	shownSub   *hub.Sub
	shownState stream.State
}

// shown is a connection's clientlist entry at a time.
type shown struct {
	info stream.ClientInfo
	at   time.Time
}

func (c *conn) wakeup() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// openH2 counts a new stream of the HTTP/2 connection; false if the
// per-address cap refuses it.
func (c *conn) openH2(core *stream.Core, peer netip.Addr) bool {
	c.h2mu.Lock()
	defer c.h2mu.Unlock()
	if c.h2extra < h2places(core, peer, c.h2active+1) {
		if !core.AdmitStream(peer) {
			return false
		}
		c.h2extra++
	}
	c.h2active++
	return true
}

// closeH2 forgets a stream that openH2 counted.
func (c *conn) closeH2(core *stream.Core, peer netip.Addr) {
	c.h2mu.Lock()
	defer c.h2mu.Unlock()
	c.h2active--
	for c.h2extra > h2places(core, peer, c.h2active) {
		core.LeaveStream(peer)
		c.h2extra--
	}
}

// h2places is how many places active streams of one connection hold
// beyond the connection's own: all but one, or all for a trusted proxy,
// whose connection is not counted.
func h2places(core *stream.Core, peer netip.Addr, active int) int {
	if core.Config().TrustedProxies.Trusts(peer) {
		return active
	}
	return max(active-1, 0)
}

// serve runs the TLS handshake, then hands an HTTP/2 connection to
// net/http, or serves HTTP/1.1 itself: this goroutine reads, another
// writes.
func (c *conn) serve() {
	s := c.srv
	cfg := s.core.Config()
	c.tc = tls.Server(c.nc, s.tls)
	c.tc.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if err := c.tc.Handshake(); err != nil {
		s.core.Logger().Debug("TLS handshake failed", "peer", c.Peer(), "err", err)
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// As net/http: tell the developer who typed http:// what happened,
			// instead of an empty reply.
			io.WriteString(re.Conn, plainHTTPAnswer)
		}
		c.nc.Close()
		s.forget(c)
		return
	}
	c.tc.SetDeadline(time.Time{})
	c.served.Store(true)
	if c.tc.ConnectionState().NegotiatedProtocol == "h2" {
		c.mu.Lock() // Clients reads it
		c.h2 = true
		c.mu.Unlock()
		s.mu.Lock()
		s.byNet[c.tc] = c
		s.mu.Unlock()
		select {
		case s.h2ln.ch <- c.tc: // net/http accounts for it from now on
		case <-s.h2ln.done:
			c.tc.Close()
			s.forget(c)
		}
		return
	}

	w := &blockingWriter{core: s.core, st: &c.Stream, set: c.tc.SetWriteDeadline, write: c.writev}
	defer s.track(w)()
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		s.pump(&c.Conn, &c.mu, w, c.wake, c.gone, c.finished)
		// Close the socket, not the TLS session: a close_notify would wait
		// for a client that may have stopped reading. It ends the reader.
		c.nc.Close()
	}()
	c.read()
	close(c.gone)
	<-pumpDone
	s.forget(c)
}

// read feeds the client's bytes to the state machine until the connection
// ends or must close.
func (c *conn) read() {
	buf := make([]byte, 1024)
	for {
		n, err := c.tc.Read(buf)
		if n > 0 {
			c.mu.Lock()
			a := c.Received(buf[:n], c.srv.owner, c, time.Now())
			c.mu.Unlock()
			switch a {
			case stream.Flush:
				c.wakeup()
			case stream.Close:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// finished half-closes after a complete answer or a close-delimited
// stream; the connection closes when the peer does or after the linger.
func (c *conn) finished() bool {
	if !c.shut {
		c.shut = true
		c.tc.CloseWrite()
		if tcp, ok := c.nc.(*net.TCPConn); ok {
			tcp.CloseWrite()
		}
	}
	return false
}

var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// writev writes bufs as one TLS write: one record and one system call for
// a batch of events, not one per event.
func (c *conn) writev(bufs [][]byte) (int, error) {
	if sub, st := c.Sub(), c.State(); c.shown.Load() == nil || sub != c.shownSub || st != c.shownState {
		now := time.Now()
		c.shown.Store(&shown{info: c.Info(now), at: now})
		c.shownSub, c.shownState = sub, st
	}
	if len(bufs) == 1 {
		return c.tc.Write(bufs[0])
	}
	p := writeBufs.Get().(*[]byte)
	buf := (*p)[:0]
	for _, b := range bufs {
		buf = append(buf, b...)
	}
	n, err := c.tc.Write(buf)
	if cap(buf) <= stream.MaxWriteBytes*2 {
		*p = buf[:0]
		writeBufs.Put(p)
	}
	return n, err
}

// plainHTTPAnswer is the answer to plain HTTP sent to the TLS port, in
// net/http's words (the handshake deadline bounds its write).
const plainHTTPAnswer = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" +
	"Client sent an HTTP request to an HTTPS server: this port speaks TLS, use https://\n"

// looksLikeHTTP reports whether the five bytes read as a TLS record header
// are the start of an HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE":
		return true
	}
	return false
}
