package access

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
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
// bytes if maxBody > 0 (413 from MaxBytesReader). The read deadline is lifted once the
// body is read, so that a long answer (a live feed, a profile) is not
// ended by net/http's background read timing out.
func BoundRequests(h http.Handler, maxBody int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(HTTPReadTimeout))
			if maxBody > 0 {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			}
			r.Body = &eofBody{ReadCloser: r.Body, eof: func() { rc.SetReadDeadline(time.Time{}) }}
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

// Secret guessing: after SecretFailures wrong secrets from one address (an
// IPv6 /64) within SecretWindow, the address gets 429 until the window
// ends, whatever it sends.
const (
	SecretFailures = 10
	SecretWindow   = time.Minute
	// MinSecretLen is the shortest publisher secret accepted at start.
	MinSecretLen = 16
	// throttleKeys bounds the addresses remembered; past it, new addresses
	// share one entry (a flood of addresses throttles itself, not memory).
	throttleKeys = 4096
)

// Throttle counts wrong secrets per address. The zero value is ready; it
// is safe for concurrent use; a nil *Throttle throttles nobody.
type Throttle struct {
	mu sync.Mutex
	m  map[netip.Addr]*failures
}

type failures struct {
	n     int
	start time.Time
}

// Blocked reports whether addr has failed too often; if so, after how long
// it may try again.
func (t *Throttle) Blocked(addr netip.Addr, now time.Time) (retry time.Duration, blocked bool) {
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[t.key(addr)]
	if f == nil || f.n < SecretFailures || now.Sub(f.start) >= SecretWindow {
		return 0, false
	}
	return f.start.Add(SecretWindow).Sub(now), true
}

// Fail counts a wrong secret from addr.
func (t *Throttle) Fail(addr netip.Addr, now time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[netip.Addr]*failures{}
	}
	k := t.key(addr)
	f := t.m[k]
	if f == nil {
		if len(t.m) >= throttleKeys {
			for a, f := range t.m {
				if now.Sub(f.start) >= SecretWindow {
					delete(t.m, a)
				}
			}
			if len(t.m) >= throttleKeys {
				k = netip.Addr{}
				f = t.m[k]
			}
		}
		if f == nil {
			f = &failures{start: now}
			t.m[k] = f
		}
	}
	if now.Sub(f.start) >= SecretWindow {
		f.n, f.start = 0, now
	}
	f.n++
}

// key is the entry addr counts under: its own, or the shared overflow
// entry (the zero Addr) once the table is full. Called with mu held.
func (t *Throttle) key(addr netip.Addr) netip.Addr {
	k := Key(addr)
	if _, ok := t.m[k]; !ok && len(t.m) >= throttleKeys {
		return netip.Addr{}
	}
	return k
}

// RetryAfter spells d as a Retry-After value: whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}
