package stream

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/web"
)

// State is where an HTTP/1.x connection is.
type State uint8

const (
	StateHead   State = iota // waiting for a complete request head
	StateStream              // streaming events
	StateAnswer              // writing an answer, or ended: closing once written
	StateClosed
)

func (s State) String() string {
	return [...]string{"handshake", "streaming", "closing", "closed"}[s]
}

// Conn is one HTTP/1.x connection of the SSE port: the plain port's epoll
// loops and HTTP/1.1 over TLS run the same state machine, so both answer
// byte for byte alike, reinit and keep-alive included.
//
// A connection reads request heads; a GET opens a stream (the Stream
// embedded here); a refusal, HEAD or OPTIONS is answered and the
// connection closes after the answer. A stream that ends cleanly on an
// HTTP/1.1 connection leaves it open for the next request (keep-alive, so
// that a proxy's upstream connections are reused); with reinit on, a GET
// sent while streaming replaces the stream, as in hasses.
type Conn struct {
	Stream
	// peer and port are the peer (Peer), apart so that the fields below
	// fill what would be an AddrPort's padding. With that, what few
	// connections need kept apart (x) and the User-Agent interned, the
	// epoll loop's connection fits 160 bytes (a size class; 192 before).
	peer      netip.Addr
	port      uint16
	state     State
	admitted  bool
	capped    capped // what counts under the per-address cap
	keepAlive bool   // the stream's connection may serve another request
	x         *connExtra
	ua        *string // User-Agent of the last request (interned); nil: none
	opened    int64   // Unix nanoseconds
}

// connExtra is what few connections need, allocated on demand.
type connExtra struct {
	// in is the request head received so far (a head in several reads);
	// nil while none is pending.
	in []byte
	// client is, behind a trusted proxy, the client the current request
	// named (X-Forwarded-For, Forwarded, X-Real-IP); zero otherwise.
	client netip.Addr
}

// extra returns c.x, allocating it if need be.
func (c *Conn) extra() *connExtra {
	if c.x == nil {
		c.x = new(connExtra)
	}
	return c.x
}

// pending reports whether part of a request head has been received.
func (c *Conn) pending() bool { return c.x != nil && c.x.in != nil }

// forwarded returns the client the current request named behind a trusted
// proxy; zero when none.
func (c *Conn) forwarded() netip.Addr {
	if c.x == nil {
		return netip.Addr{}
	}
	return c.x.client
}

// dropIn forgets a partly received head.
func (c *Conn) dropIn() {
	if c.x != nil {
		c.x.in = nil
		c.tidy()
	}
}

// tidy drops c.x once it holds nothing.
func (c *Conn) tidy() {
	if c.x.in == nil && !c.x.client.IsValid() {
		c.x = nil
	}
}

// UserAgent returns the User-Agent of the connection's last request.
func (c *Conn) UserAgent() string {
	if c.ua == nil {
		return ""
	}
	return *c.ua
}

// capped says what a connection counts as under the per-address cap.
type capped uint8

const (
	cappedNone   capped = iota // a trusted proxy's connection between requests
	cappedPeer                 // the peer, from accept to close
	cappedClient               // the client a trusted proxy named, for one request
	cappedProxy                // a trusted proxy's request that names no client, under -max-conns-per-proxy
)

// Accept admits a new connection from peer into c, or returns the status
// to refuse it with (503 or 429; the front end answers it and closes).
func (core *Core) Accept(c *Conn, peer netip.AddrPort, now time.Time) (status int) {
	capped, status := core.Admit(peer.Addr())
	if status != 0 {
		return status
	}
	*c = Conn{peer: peer.Addr(), port: peer.Port(), opened: now.UnixNano(), admitted: true}
	if capped {
		c.capped = cappedPeer
	}
	c.Stream = Stream{core: core, deadline: now.Add(core.cfg.HandshakeTimeout).UnixNano()}
	return 0
}

// Peer returns the address the connection comes from.
func (c *Conn) Peer() netip.AddrPort { return netip.AddrPortFrom(c.peer, c.port) }

// State returns where the connection is.
func (c *Conn) State() State { return c.state }

// Received handles bytes from the client. o and self are the hub owner of
// the connection and the handle hub.Collect returns for it. It returns
// Flush when something is queued to write, Close when the connection must
// go at once.
func (c *Conn) Received(p []byte, o *hub.Owner, self any, now time.Time) Action {
	cfg := &c.core.cfg
	switch c.state {
	case StateHead:
	case StateStream:
		// hasses' reinit: a streaming client may send a new GET request;
		// anything else sent after the head is ignored.
		if !c.pending() && !(cfg.Reinit.Load() && c.chunked && bytes.HasPrefix(p, []byte("GET "))) {
			return None
		}
	default:
		return None
	}
	var head []byte
	if !c.pending() {
		// The usual case: the whole head in one read, parsed from the
		// caller's buffer, so the connection allocates none.
		if end := handshake.HeadEnd(p); end >= 0 {
			head = p[:end]
		}
	}
	if head == nil {
		limit := cfg.Handshake.HeadLimit()
		x := c.extra()
		in := append(x.in, p[:min(len(p), limit+1-len(x.in))]...)
		if in == nil {
			in = []byte{} // pending, though empty
		}
		x.in = in
		end := handshake.HeadEnd(in)
		if end < 0 {
			if len(in) > limit {
				return c.fail(431, now)
			}
			return None
		}
		head = in[:end]
		c.dropIn()
	}
	return c.request(head, o, self, now)
}

// request acts on a complete request head.
func (c *Conn) request(head []byte, o *hub.Owner, self any, now time.Time) Action {
	core := c.core
	cfg := &core.cfg
	req, err := handshake.Parse(head, cfg.Handshake)
	var client netip.Addr
	if err == nil && c.capped != cappedPeer {
		// A trusted proxy: the request names the client behind it.
		if a := cfg.TrustedProxies.Client(c.peer, req.Forwarded); a != c.peer {
			client = a
		}
	}
	expires, status := core.Check(req, err, func() string { return c.addrOf(client) }, now)
	if status != 0 {
		if hint := handshake.Hint(err); hint != "" {
			return c.respond(handshake.AppendErrorHint(nil, cfg.Handshake, status, hint, now), now)
		}
		return c.fail(status, now)
	}
	if req.Script {
		return c.respond(handshake.AppendScriptResponse(nil, cfg.Handshake, now, web.Script, req.Method == "GET"), now)
	}
	switch req.Method {
	case "HEAD":
		return c.respond(handshake.AppendHeadResponse(nil, cfg.Handshake, now, req.Origin), now)
	case "OPTIONS":
		return c.respond(handshake.AppendOptionsResponse(nil, cfg.Handshake, now, req.Origin), now)
	}
	if c.state == StateStream { // reinit
		if !c.Idle() {
			return None // mid-event: a head now would corrupt the stream
		}
		if req.ID == "" {
			req.ID = c.sub.ID
		}
		c.Stream.Close()
	}
	c.uncapClient()
	if client.IsValid() {
		c.extra().client = client
	}
	switch {
	case c.capped == cappedPeer:
	case client.IsValid() && cfg.TrustedProxies.Capped(client):
		if !core.takeAddr(client, c.addr) {
			return c.fail(429, now)
		}
		c.capped = cappedClient
	default: // a trusted proxy that names no client: its own, larger cap
		if !core.takeProxy(c.peer, c.addr) {
			return c.fail(429, now)
		}
		c.capped = cappedProxy
	}
	replay := core.Open(&c.Stream, o, req, expires, req.HTTP10, self, now)
	c.state = StateStream
	c.ua = core.userAgents.intern(req.UserAgent)
	c.keepAlive = !req.HTTP10 && !req.Close
	var extra []string
	if replay != hub.ReplayNone {
		extra = append(extra, "X-Hasses-Replay: "+replay.String())
	}
	buf := headBufs.Get().(*[]byte)
	h := (*buf)[:0]
	if req.HTTP10 {
		h = handshake.AppendStreamHeadClose(h, cfg.Handshake, now, req.Origin, extra...)
	} else {
		h = handshake.AppendStreamHead(h, cfg.Handshake, now, req.Origin, extra...)
	}
	c.Start(h, replay) // copies it
	*buf = h
	headBufs.Put(buf)
	return Flush
}

// headBufs are the buffers response heads are built in before Start
// copies them: built from nothing, a head would leave garbage in every
// size class its appends grow through, among the connections' and
// subscriptions' own, and a burst of connections would leave those spans
// half empty once collected.
var headBufs = sync.Pool{New: func() any { return new([]byte) }}

// fail answers with an error status and closes after it; a stream is
// closed at once, never with an error head written into its body.
func (c *Conn) fail(status int, now time.Time) Action {
	if c.state == StateStream {
		return Close
	}
	return c.respond(handshake.AppendError(nil, c.core.cfg.Handshake, status, now), now)
}

// respond queues a complete answer; the connection closes after it.
func (c *Conn) respond(resp []byte, now time.Time) Action {
	c.Stream.Close()
	c.Stream.answer(c.core, resp, now)
	c.state = StateAnswer
	c.dropIn()
	return Flush
}

// Flush writes what is pending; see Stream.Flush. When a stream has ended
// cleanly on a keep-alive connection, the connection waits for another
// request and Flush returns Waiting; Finished means the front end shuts
// down its side and closes once the peer has (or at Deadline).
func (c *Conn) Flush(w Writer, sc *Scratch, now time.Time) Status {
	s := c.Stream.Flush(w, sc, now)
	if s != Finished {
		return s
	}
	if c.state == StateStream && c.keepAlive && !c.core.draining.Load() {
		c.Stream.Close()
		c.uncapClient() // the next request may be another client's
		c.state = StateHead
		c.deadline = now.Add(c.core.cfg.HandshakeTimeout).UnixNano()
		return Waiting
	}
	if c.state == StateStream {
		c.Stream.Close()
		c.Stream.answer(c.core, nil, now)
	}
	c.state = StateAnswer
	return Finished
}

// Tick enforces the connection's deadlines; see Stream.Tick.
func (c *Conn) Tick(now time.Time) Action {
	switch c.state {
	case StateHead:
		if now.UnixNano() >= c.deadline {
			return Close
		}
		return None
	case StateStream, StateAnswer:
		return c.Stream.Tick(now)
	}
	return None
}

// Drain starts a graceful shutdown of the connection: a stream ends with a
// randomised retry hint; anything else closes.
func (c *Conn) Drain(now time.Time) Action {
	if c.state != StateStream {
		return Close
	}
	return c.Stream.Drain(now)
}

// Close releases the connection: its stream, its admission.
func (c *Conn) Close() {
	if c.state == StateClosed {
		return
	}
	c.Stream.Close()
	c.uncapClient()
	c.state = StateClosed
	c.dropIn()
	if c.admitted {
		c.admitted = false
		c.core.Leave(c.peer, c.capped == cappedPeer)
	}
}

// uncapClient stops counting the connection against the client its last
// request named.
func (c *Conn) uncapClient() {
	switch c.capped {
	case cappedClient:
		c.core.perAddr.Release(c.x.client)
		c.capped = cappedNone
	case cappedProxy:
		c.core.perProxy.Release(c.peer)
		c.capped = cappedNone
	}
	if c.x != nil {
		c.x.client = netip.Addr{}
		c.tidy()
	}
}

// addr is the client as clientlist and logs show it: behind a trusted
// proxy, the client its request named and the proxy.
func (c *Conn) addr() string {
	client := c.forwarded()
	if !client.IsValid() {
		return c.Peer().String()
	}
	return c.addrOf(client)
}

// ClientAddr is the client as logs show it (see Client).
func (c *Conn) ClientAddr() string { return c.addr() }

func (c *Conn) addrOf(client netip.Addr) string {
	if client.IsValid() {
		return client.String() + " via " + c.Peer().String()
	}
	return c.Peer().String()
}

// Info describes the connection for clientlist.
func (c *Conn) Info(now time.Time) ClientInfo {
	ci := ClientInfo{Addr: c.addr(), State: c.state.String(), UserAgent: c.UserAgent(), Age: time.Duration(now.UnixNano() - c.opened)}
	if s := c.sub; s != nil {
		ci.ID, ci.Tokens = s.ID, c.Tokens()
	}
	return ci
}
