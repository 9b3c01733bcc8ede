package epoll

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/internal/sse"
)

const (
	readBufSize   = 16 << 10
	maxBatchBytes = 256 << 10 // per write, so one stream cannot hog a loop
	lingerTime    = 2 * time.Second
	sweepEvery    = time.Second
)

// loop is one epoll instance and the connections it owns. Everything but
// the command queue and the wake flag is touched only by its goroutine.
type loop struct {
	srv   *Server
	hub   *hub.Hub
	hcfg  *handshake.Config
	owner *hub.Owner
	epfd  int
	evfd  int
	lfd   int

	conns  []*conn // indexed by fd
	nconns int

	wakePending atomic.Bool
	cmdMu       sync.Mutex
	cmds        []func()

	draining bool
	stopped  bool
	now      time.Time
	// flushDue is when the next flush pass runs, with Coalesce; zero when
	// no events are waiting.
	flushDue time.Time
	lastPass time.Time     // when the last flush pass ended
	passCost time.Duration // how long it took
	writes   int64         // flushed to srv.writes after each pass

	rbuf    []byte
	scratch []byte // response heads are built here
	batch   hub.Batch
	iov     []unix.Iovec
	ready   []*hub.Sub
}

func newLoop(s *Server, idx int) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: create: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll: eventfd: %w", err)
	}
	l := &loop{srv: s, hub: s.hub, hcfg: s.cfg.Handshake, epfd: epfd, evfd: evfd, lfd: -1,
		rbuf: make([]byte, readBufSize), iov: make([]unix.Iovec, 0, maxIov)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		l.closeFds()
		return nil, fmt.Errorf("epoll: add eventfd: %w", err)
	}
	l.owner = s.hub.NewOwner(l.wake)
	return l, nil
}

func (l *loop) closeFds() {
	if l.epfd >= 0 {
		unix.Close(l.epfd)
		l.epfd = -1
	}
	if l.evfd >= 0 {
		unix.Close(l.evfd)
		l.evfd = -1
	}
}

func (l *loop) addListener(lfd int) error {
	// Level-triggered: a loop that stops accepting early (fairness, or out
	// of fds) is told again. EPOLLEXCLUSIVE wakes one loop, not all.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(lfd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, lfd, &ev); err != nil {
		return fmt.Errorf("epoll: add listener: %w", err)
	}
	l.lfd = lfd
	return nil
}

// wake is called by the hub, from any goroutine, when this loop's streams
// have new events.
func (l *loop) wake() {
	if l.wakePending.CompareAndSwap(false, true) {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(l.evfd, one[:])
	}
}

// post runs fn on the loop's goroutine.
func (l *loop) post(fn func()) {
	l.cmdMu.Lock()
	l.cmds = append(l.cmds, fn)
	l.cmdMu.Unlock()
	l.wakePending.Store(true)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(l.evfd, one[:])
}

func (l *loop) run() {
	events := make([]unix.EpollEvent, 256)
	l.now = time.Now()
	lastSweep := l.now
	for !l.stopped {
		timeout := int(sweepEvery / time.Millisecond)
		if !l.flushDue.IsZero() {
			timeout = max(0, min(timeout, int(time.Until(l.flushDue)/time.Millisecond)+1))
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			l.srv.cfg.Logger.Error("epoll wait failed", "err", err)
			return
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			ev := events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.evfd:
				l.wakeup()
			case fd == l.lfd:
				l.accept()
			default:
				if fd < len(l.conns) && l.conns[fd] != nil {
					l.handle(l.conns[fd], ev.Events)
				}
			}
		}
		if !l.flushDue.IsZero() && !l.now.Before(l.flushDue) {
			l.flushDue = time.Time{}
			l.pass()
		}
		if l.now.Sub(lastSweep) >= sweepEvery {
			lastSweep = l.now
			l.sweep()
		}
		if l.draining && l.nconns == 0 {
			l.stopped = true
		}
	}
}

// wakeup runs posted commands and flushes the streams with new events.
func (l *loop) wakeup() {
	var buf [8]byte
	unix.Read(l.evfd, buf[:])
	l.wakePending.Store(false)
	l.cmdMu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.cmdMu.Unlock()
	for _, fn := range cmds {
		fn()
	}
	// The gap between passes is at least -coalesce and at least as long as
	// the last pass took (up to maxAdaptiveGap): an idle server flushes at
	// once, a loaded one spends at most about half its time in passes, and
	// what is published meanwhile shares the next write of each stream.
	gap := max(l.srv.cfg.Coalesce, min(l.passCost, maxAdaptiveGap))
	if due := l.lastPass.Add(gap); l.now.Before(due) {
		if l.flushDue.IsZero() {
			l.flushDue = due // the run loop waits for it
		}
		return
	}
	l.pass()
}

// maxAdaptiveGap bounds the latency the adaptive gap between passes adds.
const maxAdaptiveGap = 100 * time.Millisecond

// pass flushes every stream that has new events.
func (l *loop) pass() {
	start := time.Now()
	l.ready = l.hub.Collect(l.owner, l.ready[:0])
	for _, s := range l.ready {
		l.flush(s.Conn.(*conn))
	}
	clear(l.ready)
	l.srv.writes.Add(l.writes)
	l.writes = 0
	l.lastPass = time.Now()
	l.passCost = l.lastPass.Sub(start)
}

func (l *loop) accept() {
	if l.draining {
		return
	}
	for range 128 { // then give the streams a turn; the listener is level-triggered
		nfd, sa, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch err {
			case unix.EAGAIN, unix.EINTR:
			case unix.ECONNABORTED:
				continue
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				l.srv.shed(l.lfd, handshake.AppendError(nil, l.hcfg, 503, l.now))
			default:
				l.srv.cfg.Logger.Error("accept failed", "err", err)
			}
			return
		}
		ip := sockaddrIP(sa)
		if max := l.srv.cfg.MaxConns; max > 0 && l.srv.allConn.Load() >= int64(max) {
			l.srv.refused.Add(1) // before the answer, which a client may read at once
			l.srv.cfg.Refusals.Refused(refusal.ConnCap, 503, ip.String(), nil)
			send(nfd, handshake.AppendError(nil, l.hcfg, 503, l.now))
			unix.Close(nfd)
			continue
		}
		// A trusted proxy carries many clients: it is capped per client
		// once a request names one (conn.go, request).
		trusted := l.srv.cfg.TrustedProxies.Trusts(ip)
		if !trusted && !l.srv.perIP.Take(ip) {
			l.srv.refusedPerIP.Add(1)
			l.srv.cfg.Refusals.Refused(refusal.PerAddrCap, 429, ip.String(), nil)
			send(nfd, handshake.AppendError(nil, l.hcfg, 429, l.now))
			unix.Close(nfd)
			continue
		}
		unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if sb := l.srv.cfg.SendBuffer; sb > 0 {
			unix.SetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_SNDBUF, sb)
		}
		c := &conn{fd: nfd, peer: sa, trusted: trusted, opened: l.now, deadline: l.now.Add(l.srv.cfg.HandshakeTimeout)}
		if !trusted {
			c.capped = ip
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(nfd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, nfd, &ev); err != nil {
			unix.Close(nfd)
			continue
		}
		for nfd >= len(l.conns) {
			l.conns = append(l.conns, make([]*conn, max(64, len(l.conns)))...)
		}
		l.conns[nfd] = c
		l.nconns++
		l.srv.noteConn(1)
	}
}

func (l *loop) handle(c *conn, events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c)
	}
	if c.state != stateClosed && events&unix.EPOLLOUT != 0 && c.blocked {
		c.blocked = false
		l.flush(c)
	}
}

// sweep enforces deadlines and sends heartbeats; it runs once a second and
// does not depend on traffic (hasses only swept when some event arrived).
func (l *loop) sweep() {
	hb := l.srv.cfg.Heartbeat
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		switch c.state {
		case stateHead, stateLinger:
			if l.now.After(c.deadline) {
				l.close(c)
			}
		case stateStream:
			switch {
			case c.ending:
				if l.now.After(c.deadline) { // never drained its last bytes
					l.close(c)
				}
			case l.now.After(c.deadline):
				l.end(c, 0)
			case c.blocked:
				if l.hub.Lagging(c.sub) {
					l.lag(c)
				}
			case hb > 0 && l.now.Sub(c.lastWrite) >= hb && c.idle():
				c.out = append(c.out, heartbeat...)
				l.flush(c)
			}
		}
	}
}

var heartbeat = sse.AppendComment(nil, "")

// startDrain stops accepting and ends every stream with a short randomised
// retry hint, so that clients reconnect spread over a few seconds.
func (l *loop) startDrain() {
	l.draining = true
	if l.lfd >= 0 {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.lfd = -1
	}
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		if c.state == stateStream {
			l.end(c, time.Duration(500+rand.IntN(4500))*time.Millisecond)
		} else {
			l.close(c)
		}
	}
}

// closeAll closes every connection at once: the drain time is over.
func (l *loop) closeAll() {
	for _, c := range l.conns {
		if c != nil {
			l.close(c)
		}
	}
	l.stopped = true
}

func (l *loop) snapshot() []ClientInfo {
	out := make([]ClientInfo, 0, l.nconns)
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		ci := ClientInfo{FD: c.fd, Addr: c.addrString(), State: c.state.String(),
			UserAgent: c.userAgent, Age: l.now.Sub(c.opened)}
		if c.sub != nil {
			ci.ID = c.sub.ID
			ci.Tokens = c.sub.Tokens
		}
		out = append(out, ci)
	}
	return out
}
