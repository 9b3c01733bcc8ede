package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/pipeline"
)

// Replies that end a connection before it has authenticated.
const (
	authRequired = `{"error": "authentication required: send auth <secret> first"}` + "\n"
	authTimedOut = `{"error": "authentication timeout"}` + "\n"
	authBusy     = `{"error": "too many connections waiting to authenticate"}` + "\n"
	notReading   = `{"error": "replies not read"}` + "\n"
	connsBusy    = `{"error": "too many control connections"}` + "\n"
)

const (
	writeTimeout = 10 * time.Second
	// maxReplyBacklog bounds the replies waiting for a client that sends
	// commands faster than it reads the answers.
	maxReplyBacklog = 1 << 20
)

// readBufs are the read buffers, shared: an idle connection holds none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// ServeTCP serves the control port until ctx is done, with a goroutine per
// control connection (there are few), each held open until the client
// closes it or half-closes after its last message.
//
// Order across connections. A backend that publishes with one short
// connection per message (open, write, close: PHP's way) must see its
// messages delivered in order, as hasses, with one thread, always did. So:
// a connection accepted later does not handle any byte of its own before
// it has drained, in accept order, every earlier-accepted connection still
// open: under that connection's lock, it reads (without blocking) the
// bytes already in its socket when the later one was accepted, and hands
// them to that connection's framer, including the end of file and the
// flush of an unterminated fragment it ends. Every read of a connection,
// by its own goroutine or by a later one draining it, happens under its
// lock, together with the handling of what was read, so nothing read can
// be handled late. A connection closed before the next was opened has its
// bytes and its end of file in its socket by the time the next is
// accepted (the accept queue is in order), so they are handled first, by
// construction, whatever the scheduler does. Only a fragment still waiting
// for its idle gap on a connection held open can come after.
//
// The earlier connections to drain are found in O(1) per idle connection:
// every control socket is also in an epoll set of the server's own (level
// triggered), which names those with bytes or an end of file waiting; and
// a connection whose goroutine has read bytes it is still handling is in
// the busy set until it has. Those two are all that can hold bytes from
// before the accept; the idle ones are not looked at.
//
// Connections are capped (MaxConns) and closed after IdleTimeout without
// input, authenticated or not.
func (h *Handler) ServeTCP(ctx context.Context, ln net.Listener) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("control: epoll: %w", err)
	}
	defer unix.Close(ep)
	s := &tcpServer{h: h, ep: ep, conns: map[uint64]*ctlConn{}, busy: map[uint64]*ctlConn{}}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		s.closeAll()
	})
	defer stop()
	defer func() {
		s.closeAll() // the listener may have been closed before ctx was done
		s.wg.Wait()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors (EMFILE) and the like: the error
			// repeats at once, so wait and log at most once a second.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			h.logs.Log(h.Logger, slog.LevelError, "accept", "control: accept failed", "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		s.start(ctx, c)
	}
}

type tcpServer struct {
	h        *Handler
	wg       sync.WaitGroup
	unauthed atomic.Int64 // connections still to authenticate
	ep       int          // epoll set of every open connection, data = its seq

	mu     sync.Mutex
	seq    uint64              // accept order
	conns  map[uint64]*ctlConn // open connections by seq
	busy   map[uint64]*ctlConn // connections handling bytes they read
	events []unix.EpollEvent
}

func (s *tcpServer) start(ctx context.Context, c net.Conn) {
	h := s.h
	source := c.RemoteAddr().String()
	if h.Policy != nil && !h.Policy.PermitsConn(c.RemoteAddr()) {
		h.refuse(pipeline.Control, pipeline.Forbidden)
		h.warn("not allowed", "control: connection refused: address not allowed", "remote", source)
		c.Close()
		return
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		h.Logger.Error("control: connection without a file descriptor", "remote", source)
		c.Close()
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	full := len(s.conns) >= h.maxConns()
	s.mu.Unlock()
	if full {
		h.warn("conn cap", "control: connection refused: too many control connections",
			"remote", source, "limit", h.maxConns())
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte(connsBusy))
		c.Close()
		return
	}
	cc := &ctlConn{h: h, srv: s, c: c, rc: rc, source: source, fr: h.newFramer(), authed: true, lastRead: time.Now()}
	if h.Policy != nil && h.Policy.Secret != "" {
		if s.unauthed.Add(1) > int64(h.maxUnauthed()) {
			s.unauthed.Add(-1)
			h.warn("unauthed cap", "control: connection refused: too many waiting to authenticate",
				"remote", source, "limit", h.maxUnauthed())
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte(authBusy))
			c.Close()
			return
		}
		cc.unauthed = &s.unauthed
		cc.authed, cc.fr.Restricted = false, true
		cc.authBy = time.Now().Add(h.authTimeout())
	}
	s.mu.Lock()
	s.seq++
	cc.seq = s.seq
	s.conns[cc.seq] = cc
	s.mu.Unlock()
	var epErr error
	rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(uint32(cc.seq)), Pad: int32(uint32(cc.seq >> 32))}
		epErr = unix.EpollCtl(s.ep, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if epErr != nil {
		h.Logger.Error("control: epoll", "err", epErr, "remote", source)
		s.forget(cc)
		cc.close()
		return
	}
	s.wg.Go(func() {
		cc.serve(ctx)
		cc.close()
		s.forget(cc)
	})
}

func (s *tcpServer) forget(cc *ctlConn) {
	s.mu.Lock()
	delete(s.conns, cc.seq)
	s.mu.Unlock()
}

// earlier returns, in accept order, the connections accepted before seq
// that may hold bytes from before it: those with input waiting in their
// socket, and those handling what they read.
func (s *tcpServer) earlier(seq uint64) []*ctlConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.conns) + 1; cap(s.events) < n {
		s.events = make([]unix.EpollEvent, n) // level triggered: all ready ones at once
	}
	var out []*ctlConn
	n, err := unix.EpollWait(s.ep, s.events[:cap(s.events)], 0)
	for err == unix.EINTR {
		n, err = unix.EpollWait(s.ep, s.events[:cap(s.events)], 0)
	}
	for _, ev := range s.events[:max(n, 0)] {
		k := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		if cc := s.conns[k]; cc != nil && k < seq {
			out = append(out, cc)
		}
	}
	for k, cc := range s.busy {
		if k < seq && !slices.Contains(out, cc) {
			out = append(out, cc)
		}
	}
	slices.SortFunc(out, func(a, b *ctlConn) int { return cmp.Compare(a.seq, b.seq) })
	s.h.drains.Add(int64(len(out)))
	return out
}

func (s *tcpServer) closeAll() {
	s.mu.Lock()
	live := slices.Collect(maps.Values(s.conns))
	s.mu.Unlock()
	for _, cc := range live {
		cc.close()
	}
}

// ctlConn is one control connection.
type ctlConn struct {
	h      *Handler
	srv    *tcpServer
	seq    uint64 // accept order
	c      net.Conn
	rc     syscall.RawConn
	source string

	// mu is held while reading the socket and handling what was read, by
	// the connection's goroutine or by a later connection draining it.
	mu       sync.Mutex
	fr       *Framer
	reply    []byte // replies not yet written
	gen      int    // counts reads, to notice one done by another goroutine
	lastRead time.Time
	eof      bool // end of file (or a read error) handled
	refused  bool // authentication failed: nothing more is handled
	idle     bool // closed for sending nothing for the idle timeout
	closed   bool
	authed   bool
	authBy   time.Time     // authentication deadline
	unauthed *atomic.Int64 // the server's count, while this one is in it
}

type readResult uint8

const (
	readData readResult = iota
	readAgain
	readEnd
)

// read reads once from fd without blocking and handles what it got.
// mu is held.
func (cc *ctlConn) read(fd int) (int, readResult) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	// Busy from before the read until what it read is handled: a
	// connection accepted meanwhile finds it here, since its socket no
	// longer shows the bytes (see ServeTCP).
	s := cc.srv
	s.mu.Lock()
	s.busy[cc.seq] = cc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.busy, cc.seq)
		s.mu.Unlock()
	}()
	n, err := syscall.Read(fd, *bp)
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, *bp)
	}
	if err == syscall.EAGAIN {
		return 0, readAgain
	}
	cc.gen++
	if err != nil || n <= 0 {
		cc.fr.Flush(cc.handle) // end of file ends the last unit
		cc.eof = true
		return 0, readEnd
	}
	cc.lastRead = time.Now()
	cc.fr.Feed((*bp)[:n], cc.handle)
	if cc.fr.PendingCommand() {
		cc.fr.Flush(cc.handle)
	}
	return n, readData
}

// handle executes one unit; mu is held.
func (cc *ctlConn) handle(u Unit) {
	if cc.refused {
		return
	}
	h := cc.h
	if u.Kind == KindAuth && h.Policy != nil && h.Policy.Secret != "" {
		if !u.Oversized && h.Policy.CheckSecret(string(u.Data[len("auth "):])) {
			cc.authed, cc.fr.Restricted = true, false
			cc.leaveUnauthed()
			cc.reply = append(cc.reply, authOK...)
			return
		}
		h.refuse(pipeline.Control, pipeline.Unauthorized)
		h.warn("auth failed", "control: authentication failed", "remote", cc.source)
		cc.refuse(authRequired)
		return
	}
	if !cc.authed {
		h.refuse(pipeline.Control, pipeline.Unauthorized)
		h.warn("auth failed", "control: authentication failed: first unit is not auth", "remote", cc.source)
		cc.refuse(authRequired)
		return
	}
	cc.reply = h.handleUnit(cc.reply, u, true, cc.source)
	if len(cc.reply) > maxReplyBacklog {
		h.warn("not reading", "control: connection closed: it does not read its replies", "remote", cc.source)
		cc.reply = cc.reply[:0]
		cc.refuse(notReading)
	}
}

func (cc *ctlConn) refuse(msg string) {
	cc.reply = append(cc.reply, msg...)
	cc.refused = true
}

func (cc *ctlConn) leaveUnauthed() {
	if cc.unauthed != nil {
		cc.unauthed.Add(-1)
		cc.unauthed = nil
	}
}

func (cc *ctlConn) done() bool { return cc.eof || cc.refused || cc.idle || cc.closed }

// drain is called by a later connection before it handles anything: it
// handles the bytes that had arrived on cc by then, and its end of file.
func (cc *ctlConn) drain(ctx context.Context) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.done() {
		return
	}
	gen := cc.gen
	cc.rc.Control(func(fd uintptr) {
		avail, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil {
			avail = 0
		}
		// Read what was there, then once more: that read sees the end of
		// file if it had arrived with them (it follows the last byte).
		for got := 0; got <= avail && !cc.done() && ctx.Err() == nil; {
			n, r := cc.read(int(fd))
			if r != readData {
				break
			}
			got += n
		}
	})
	if cc.gen != gen {
		// Wake the connection's goroutine: replies to write, a fragment
		// whose idle gap starts now, or the end.
		cc.c.SetReadDeadline(time.Now())
	}
}

// serve runs the connection until it ends; the replies are written by
// this goroutine only, in order.
func (cc *ctlConn) serve(ctx context.Context) {
	for _, p := range cc.srv.earlier(cc.seq) {
		p.drain(ctx)
	}
	gap := cc.h.idleGap()
	idle := cc.h.idleTimeout()
	for ctx.Err() == nil {
		cc.mu.Lock()
		out := cc.reply
		cc.reply = nil
		done, gen := cc.done(), cc.gen
		var deadline time.Time
		if cc.fr.Pending() {
			deadline = cc.lastRead.Add(gap)
		}
		if !cc.authed && (deadline.IsZero() || cc.authBy.Before(deadline)) {
			deadline = cc.authBy
		}
		if end := cc.lastRead.Add(idle); deadline.IsZero() || end.Before(deadline) {
			deadline = end
		}
		cc.mu.Unlock()
		if len(out) > 0 {
			cc.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := cc.c.Write(out); err != nil {
				return
			}
		}
		if done {
			return
		}
		cc.c.SetReadDeadline(deadline)
		err := cc.rc.Read(func(fd uintptr) bool {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			if cc.gen != gen || cc.done() {
				return true // another goroutine read: look again
			}
			_, r := cc.read(int(fd))
			return r != readAgain
		})
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		cc.mu.Lock()
		now := time.Now()
		switch {
		case cc.done() || cc.gen != gen:
		case !cc.authed && !now.Before(cc.authBy):
			cc.h.refuse(pipeline.Control, pipeline.Unauthorized)
			cc.h.warn("auth timeout", "control: connection closed: no authentication in time", "remote", cc.source)
			cc.refuse(authTimedOut)
		case cc.fr.Pending() && !now.Before(cc.lastRead.Add(gap)):
			// Bytes that came while this goroutine waited to run (a busy
			// machine) continue the fragment: read them before deciding.
			r := readAgain
			cc.rc.Control(func(fd uintptr) { _, r = cc.read(int(fd)) })
			if r == readAgain {
				cc.fr.Flush(cc.handle) // the idle gap ended a fragment
			}
		case !now.Before(cc.lastRead.Add(idle)):
			cc.h.Logger.Debug("control: connection closed: idle", "remote", cc.source, "after", idle)
			cc.idle = true // nothing to say: a client that sends nothing reads nothing
		}
		cc.mu.Unlock()
	}
}

// close closes the socket. Not under mu: Close waits for the reads in
// progress, and the connection's own read may be waiting for mu. (A later
// connection reads this one through RawConn.Control, which never runs on
// a closed descriptor.)
func (cc *ctlConn) close() {
	cc.mu.Lock()
	first := !cc.closed
	cc.closed = true
	cc.leaveUnauthed()
	cc.mu.Unlock()
	if first {
		cc.rc.Control(func(fd uintptr) { unix.EpollCtl(cc.srv.ep, unix.EPOLL_CTL_DEL, int(fd), nil) })
		cc.c.Close()
	}
}
