package access

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the auxiliary HTTP listeners (admin, publish API). They are
// reserved out of the process's file limit, so that these listeners can
// never take the descriptors the SSE and control ports need.
const (
	// HTTPMaxConns caps the connections of one auxiliary listener.
	HTTPMaxConns = 256
	// HTTPMaxConnsPerAddr caps the connections of one address (an IPv6 /64)
	// on one auxiliary listener: room for a backend's connection pool.
	HTTPMaxConnsPerAddr = 64
	// HTTPReadTimeout bounds the reading of a request head, and again of
	// its body: a client that declares a body and does not send it is cut.
	HTTPReadTimeout = 10 * time.Second
	// HTTPMaxHeaderBytes bounds a request head.
	HTTPMaxHeaderBytes = 8 << 10
	// HTTPIdleTimeout closes a keep-alive connection without a request.
	HTTPIdleTimeout = time.Minute
)

// Bearer returns the credentials of an "Authorization: Bearer" header, or
// "". The scheme is case-insensitive (RFC 9110, 11.1). Every listener that
// takes the publisher secret reads it here.
func Bearer(r *http.Request) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// Peer returns the address of the connection r came on (not a forwarded
// client: access decisions judge the peer itself). The zero Addr if
// RemoteAddr is not an address.
func Peer(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// LimitListener caps the connections ln hands out: max in total and
// perAddr per address (an IPv6 /64); a connection over a cap is answered
// at once (503 over the total, 429 over the address's share, as the SSE
// port answers) and closed. refused, if not nil, is told of each refusal.
func LimitListener(ln net.Listener, max, perAddr int, refused func(addr netip.Addr, status int)) net.Listener {
	return &limitListener{Listener: ln, max: int64(max), per: PerAddr{Limit: perAddr}, refused: refused}
}

type limitListener struct {
	net.Listener
	max     int64
	n       atomic.Int64
	per     PerAddr
	refused func(netip.Addr, int)
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var addr netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			addr = ta.AddrPort().Addr().Unmap()
		}
		status := 0
		if l.max > 0 && l.n.Add(1) > l.max {
			l.n.Add(-1)
			status = http.StatusServiceUnavailable
		} else if !l.per.Take(addr) {
			l.n.Add(-1)
			status = http.StatusTooManyRequests
		}
		if status == 0 {
			return &limitConn{Conn: c, l: l, addr: addr}, nil
		}
		if l.refused != nil {
			l.refused(addr, status)
		}
		// A fresh socket's send buffer is empty: this write does not block.
		c.Write(fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status, http.StatusText(status)))
		c.Close()
	}
}

// limitConn gives its place back when closed.
type limitConn struct {
	net.Conn
	l    *limitListener
	addr netip.Addr
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.per.Release(c.addr)
		c.l.n.Add(-1)
	})
	return c.Conn.Close()
}

// BoundRequests bounds each request h serves in time and size: a body
// must arrive within HTTPReadTimeout of the head and is cut at maxBody
// bytes (413 from MaxBytesReader). The read deadline is lifted once the
// body is read, so that a long answer (a live feed, a profile) is not
// ended by net/http's background read timing out.
func BoundRequests(h http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(HTTPReadTimeout))
			r.Body = &eofBody{ReadCloser: http.MaxBytesReader(w, r.Body, maxBody), eof: func() { rc.SetReadDeadline(time.Time{}) }}
		}
		h.ServeHTTP(w, r)
	})
}

// eofBody calls eof once when the body has been read to its end.
type eofBody struct {
	io.ReadCloser
	eof  func()
	done bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.eof()
	}
	return n, err
}
