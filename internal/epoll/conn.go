package epoll

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/internal/sse"
)

type connState uint8

const (
	stateHead   connState = iota // waiting for a complete request head
	stateStream                  // streaming events
	stateLinger                  // answered and half-closed; waiting for the peer to close
	stateClosed
)

func (s connState) String() string {
	return [...]string{"handshake", "streaming", "closing", "closed"}[s]
}

// conn is one connection of the SSE port. It is kept small: tens of
// thousands of them live at once.
type conn struct {
	fd        int
	state     connState
	blocked   bool // the socket is full; wait for EPOLLOUT
	ending    bool // the stream's last chunk is queued
	endReq    bool // end the stream once the current event is complete
	sub       *hub.Sub
	in        []byte // request head received so far; nil while streaming
	out       []byte // connection-specific bytes, written before any event
	outOff    int
	endRetry  time.Duration // retry hint with the last chunk
	peer      unix.Sockaddr
	trusted   bool       // peer is a trusted proxy
	capped    netip.Addr // counted under the per-address cap as this; zero: not counted
	client    netip.Addr // behind a trusted proxy: the client its request named
	userAgent string
	opened    time.Time
	deadline  time.Time // handshake, stream lifetime, or linger end
	lastWrite time.Time
}

// idle reports whether nothing is queued, so a heartbeat or a new head may
// be written without cutting into an event.
func (c *conn) idle() bool {
	return !c.blocked && c.outOff == len(c.out) && (c.sub == nil || !c.sub.Pending())
}

func (l *loop) read(c *conn) {
	for c.state != stateClosed {
		n, err := unix.Read(c.fd, l.rbuf)
		switch {
		case n > 0:
			l.received(c, l.rbuf[:n])
		case err == nil: // end of file
			l.close(c)
			return
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR:
		default:
			l.close(c)
			return
		}
	}
}

// received handles bytes from the client.
func (l *loop) received(c *conn, p []byte) {
	switch c.state {
	case stateHead:
	case stateStream:
		// hasses' reinit: a streaming client may send a new GET request.
		if len(c.in) == 0 && !(l.srv.cfg.Reinit.Load() && bytes.HasPrefix(p, []byte("GET "))) {
			return // anything else sent after the handshake is ignored
		}
	default:
		return
	}
	if len(c.in) == 0 {
		// The usual case: the whole head in one read. It is parsed from the
		// loop's read buffer, so the connection allocates no buffer for it.
		if end := handshake.HeadEnd(p); end >= 0 {
			l.request(c, p[:end])
			return
		}
	}
	max := l.hcfg.HeadLimit()
	room := max + 1 - len(c.in)
	c.in = append(c.in, p[:min(len(p), room)]...)
	end := handshake.HeadEnd(c.in)
	if end < 0 {
		if len(c.in) > max {
			l.fail(c, 431)
		}
		return
	}
	head := c.in[:end]
	c.in = nil
	l.request(c, head)
}

// request acts on a complete request head.
func (l *loop) request(c *conn, head []byte) {
	req, err := handshake.Parse(head, l.hcfg)
	if err != nil {
		status := 400
		var he *handshake.Error
		if errors.As(err, &he) {
			status = he.Status
		}
		if status == 403 {
			l.srv.cfg.Refusals.Refused(refusal.Origin, status, c.addrString(), err)
		} else {
			l.srv.cfg.Logger.Debug("bad request", "peer", c.addrString(), "status", status, "err", err)
		}
		l.fail(c, status)
		return
	}
	switch req.Method {
	case "HEAD":
		l.answer(c, handshake.AppendHeadResponse(nil, l.hcfg, l.now, req.Origin))
		return
	case "OPTIONS":
		l.answer(c, handshake.AppendOptionsResponse(nil, l.hcfg, l.now, req.Origin))
		return
	}
	var expires time.Time
	if auth := l.srv.cfg.Authorize; auth != nil {
		var status int
		if expires, status, err = auth(req, l.now); err != nil {
			l.srv.unauthorized.Add(1)
			reason := refusal.Unauthorized
			if status == 403 {
				reason = refusal.Forbidden
			}
			l.srv.cfg.Refusals.Refused(reason, status, c.addrString(), err)
			l.fail(c, status)
			return
		}
	}
	if c.state == stateStream { // reinit
		if !c.idle() {
			return // mid-event: a head now would corrupt the stream
		}
		if req.ID == "" {
			req.ID = c.sub.ID
		}
		l.unsubscribe(c)
	}
	if c.trusted && !l.capClient(c, req) {
		return
	}
	sub, replay := l.hub.Subscribe(l.owner, req.Tokens, req.ID, req.LastEventID, c)
	c.sub = sub
	c.state = stateStream
	c.userAgent = req.UserAgent
	l.srv.sseConn.Add(1)
	life := l.srv.cfg.Lifetime
	c.deadline = l.now.Add(life - time.Duration(rand.Int64N(int64(life)/5+1)))
	if !expires.IsZero() && expires.Before(c.deadline) {
		c.deadline = expires // the grant ends, so does the stream
	}
	var extra []string
	if replay != hub.ReplayNone {
		extra = append(extra, "X-Hasses-Replay: "+replay.String())
	}
	// The head is built in the loop's scratch buffer and usually written at
	// once; only an unwritten rest is copied to the connection.
	out := handshake.AppendStreamHead(l.scratch[:0], l.hcfg, l.now, req.Origin, extra...)
	headLen := len(out)
	if r := l.srv.cfg.Retry; r > 0 {
		out = sse.AppendRetry(out, r.Milliseconds())
	}
	if replay == hub.ReplayGap || replay == hub.ReplayUnknown {
		// Tell the page it missed events it cannot get back, so it can
		// resynchronise from its backend instead of showing a hole.
		// Its id is where this stream resumes, so that a reconnect does not
		// send the unusable id again.
		out = sse.AppendEvent(out, []byte(l.hub.CursorID(sub)), "hasses-reset", []byte(replay.String()))
	}
	if len(out) == headLen {
		// A body byte at once: nginx speaking HTTP/2 to the browser holds
		// the response head until the first body bytes, so the page's
		// EventSource would stay "connecting" until the first heartbeat.
		out = append(out, heartbeat...)
	}
	l.scratch = out[:0]
	c.out, c.outOff = out, 0
	l.flush(c)
	if c.outOff < len(c.out) { // the socket took only part of it
		c.out, c.outOff = bytes.Clone(c.out[c.outOff:]), 0
	}
}

// fail answers with an error status and closes.
func (l *loop) fail(c *conn, status int) {
	if c.state == stateStream {
		l.close(c) // never write an error head into a chunked body
		return
	}
	l.answer(c, handshake.AppendError(nil, l.hcfg, status, l.now))
}

// capClient counts a stream from a trusted proxy against the client its
// request names, and refuses it with 429 if that client is at the cap. A
// request that names no client (or names a trusted proxy) is not capped.
func (l *loop) capClient(c *conn, req *handshake.Request) bool {
	proxies := l.srv.cfg.TrustedProxies
	client := proxies.Client(sockaddrIP(c.peer), req.Forwarded)
	c.client = client
	if !proxies.Capped(client) {
		return true
	}
	if !l.srv.perIP.Take(client) {
		l.srv.refusedPerIP.Add(1)
		l.srv.cfg.Refusals.Refused(refusal.PerAddrCap, 429, c.addrString(), nil)
		l.fail(c, 429)
		return false
	}
	c.capped = client
	return true
}

// unsubscribe ends c's subscription, if any. A trusted proxy's connection
// stops counting against its client: its next request may be another's.
func (l *loop) unsubscribe(c *conn) {
	if c.sub != nil {
		l.hub.Unsubscribe(c.sub)
		c.sub = nil
		l.srv.sseConn.Add(-1)
	}
	if c.trusted {
		l.uncap(c)
	}
}

func (l *loop) uncap(c *conn) {
	if c.capped.IsValid() {
		l.srv.perIP.Release(c.capped)
		c.capped = netip.Addr{}
	}
}

// addrString is the peer's address for clientlist and logs; behind a
// trusted proxy, the client its request named, then the proxy.
func (c *conn) addrString() string {
	peer := sockaddrString(c.peer)
	if c.client.IsValid() && c.client != sockaddrIP(c.peer) {
		return c.client.String() + " via " + peer
	}
	return peer
}

// answer writes a complete response and closes the connection after it.
func (l *loop) answer(c *conn, resp []byte) {
	l.unsubscribe(c)
	c.state = stateLinger
	c.in = nil
	c.out = append(c.out[:0], resp...)
	c.outOff = 0
	c.deadline = l.now.Add(lingerTime)
	l.flush(c)
}

// end finishes a stream cleanly: after the current event, an optional retry
// hint and the last chunk, then close.
func (l *loop) end(c *conn, retry time.Duration) {
	if c.state != stateStream || c.endReq {
		return
	}
	c.endReq = true
	c.endRetry = retry
	c.deadline = l.now.Add(lingerTime + l.srv.cfg.Drain)
	l.flush(c)
}

// lag closes a stream that fell further behind than the lag limit. Its
// client reconnects with Last-Event-ID and replays what history still has.
func (l *loop) lag(c *conn) {
	l.srv.lagged.Add(1)
	l.srv.cfg.Logger.Debug("closing slow subscriber", "peer", c.addrString())
	l.close(c)
}

// flush writes what is queued for c: its own bytes first, then events from
// the hub, until the socket is full or nothing is left.
func (l *loop) flush(c *conn) {
	for !c.blocked && c.state != stateClosed {
		if c.outOff < len(c.out) {
			n, err := send(c.fd, c.out[c.outOff:])
			if err != nil && err != unix.EAGAIN {
				l.close(c)
				return
			}
			c.outOff += n
			c.lastWrite = l.now
			if c.outOff < len(c.out) {
				c.blocked = true
				return
			}
			c.out, c.outOff = nil, 0
			if c.ending && !l.draining {
				l.keepAlive(c)
				return
			}
			if c.state == stateLinger || c.ending {
				l.linger(c)
				return
			}
		}
		if c.state != stateStream {
			return
		}
		if l.hub.Fill(c.sub, &l.batch, maxIov, maxBatchBytes) {
			l.lag(c)
			return
		}
		b := &l.batch
		if len(b.Bufs) == 0 {
			if c.endReq && !c.sub.Pending() {
				if c.endRetry > 0 {
					c.out = sse.AppendRetry(c.out, c.endRetry.Milliseconds())
				}
				c.out = append(c.out, sse.LastChunk...)
				c.ending = true
				continue
			}
			return
		}
		n, err := sendv(c.fd, b.Bufs, l.iov)
		l.writes++
		if err != nil && err != unix.EAGAIN {
			l.close(c)
			return
		}
		c.sub.Wrote(b, n)
		c.lastWrite = l.now
		if n < b.Bytes {
			c.blocked = true
			return
		}
		if len(b.Bufs) < maxIov && b.Bytes < maxBatchBytes && !c.endReq {
			return // everything pending was written
		}
	}
}

// keepAlive readies a connection whose stream ended cleanly (at its
// lifetime or its grant's expiry) for the next request, as its head's
// "Connection: Keep-Alive" promised: a proxy with upstream keep-alive
// (nginx "keepalive", Apache's connection pool) sends its next request,
// often another subscriber's, on it.
func (l *loop) keepAlive(c *conn) {
	l.unsubscribe(c)
	c.state = stateHead
	c.ending, c.endReq, c.endRetry = false, false, 0
	c.in, c.userAgent, c.client = nil, "", netip.Addr{}
	c.deadline = l.now.Add(l.srv.cfg.HandshakeTimeout)
}

// linger half-closes after a complete answer and waits for the peer to
// close, so the answer is not lost to a reset caused by unread input.
func (l *loop) linger(c *conn) {
	l.unsubscribe(c)
	c.state = stateLinger
	c.deadline = l.now.Add(lingerTime)
	unix.Shutdown(c.fd, unix.SHUT_WR)
}

func (l *loop) close(c *conn) {
	if c.state == stateClosed {
		return
	}
	l.unsubscribe(c)
	l.uncap(c)
	c.state = stateClosed
	unix.Close(c.fd) // also removes it from the epoll set
	l.conns[c.fd] = nil
	l.nconns--
	l.srv.noteConn(-1)
	c.in, c.out = nil, nil
}

func sockaddrIP(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap()
	}
	return netip.Addr{}
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return "?"
}
