package epoll

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
)

const (
	readBufSize = 16 << 10
	// sweepEvery is how often heartbeats are sent and blocked streams
	// checked; deadlines have their own heap.
	sweepEvery = time.Second
)

// loop is one epoll instance and the connections it owns. Everything but
// the command queue and the wake flag is touched only by its goroutine.
type loop struct {
	srv   *Server
	core  *stream.Core
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
	passCost time.Duration // how long it took, when its writes carried several events each (else 0)

	rbuf  []byte
	w     fdWriter
	sc    stream.Scratch
	ready []*hub.Sub
	extra []*hub.Sub // interleave's
	heap  []*conn    // deadlines; see deadline.go

	testFlushed    func(i, n int) // tests: a pass flushed the i-th of its n streams
	testInterleave func(n int)    // tests: a pass flushed n streams with new events midway
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
	l := &loop{srv: s, core: s.core, hub: s.core.Hub(), hcfg: s.core.Config().Handshake, epfd: epfd, evfd: evfd, lfd: -1,
		rbuf: make([]byte, readBufSize), w: fdWriter{fd: -1, iov: make([]unix.Iovec, 0, maxIov)}}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		l.closeFds()
		return nil, fmt.Errorf("epoll: add eventfd: %w", err)
	}
	l.owner = s.core.NewOwner(l.wake)
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

// run serves until the loop is stopped; an error means the loop cannot go
// on, and the server stops.
func (l *loop) run() error {
	events := make([]unix.EpollEvent, 256)
	l.now = time.Now()
	lastSweep := l.now
	for !l.stopped {
		wait := sweepEvery - l.now.Sub(lastSweep)
		if !l.flushDue.IsZero() {
			wait = min(wait, l.flushDue.Sub(l.now))
		}
		if c := l.due(); c != nil {
			wait = min(wait, c.Deadline().Sub(l.now))
		}
		// Round up, so that the loop never wakes a little early and spins.
		timeout := max(0, int((wait+time.Millisecond-1)/time.Millisecond))
		n, err := unix.EpollWait(l.epfd, events, timeout)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("epoll wait: %w", err)
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			ev := events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.evfd:
				l.wakeup()
			case fd == l.lfd:
				if err := l.accept(); err != nil {
					return err
				}
			default:
				if fd < len(l.conns) && l.conns[fd] != nil {
					l.handle(l.conns[fd], ev.Events)
				}
			}
			if i%fairEvery == fairEvery-1 {
				l.fair()
			}
		}
		if !l.flushDue.IsZero() && !l.now.Before(l.flushDue) {
			l.flushDue = time.Time{}
			l.pass()
		}
		for c := l.due(); c != nil && !l.now.Before(c.Deadline()); c = l.due() {
			l.unschedule(c)
			l.act(c, c.Tick(l.now))
		}
		if l.now.Sub(lastSweep) >= sweepEvery {
			lastSweep = l.now
			l.sweep()
		}
		if l.draining && l.nconns == 0 {
			l.stopped = true
		}
	}
	return nil
}

// wakeup runs posted commands and flushes the streams with new events.
func (l *loop) wakeup() {
	var buf [8]byte
	unix.Read(l.evfd, buf[:])
	l.cmdMu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.cmdMu.Unlock()
	for _, fn := range cmds {
		fn()
	}
	if due := l.lastPass.Add(l.gap()); l.now.Before(due) {
		if l.flushDue.IsZero() {
			l.flushDue = due // the run loop waits for it
		}
		// wakePending stays set until the pass: publishers meanwhile need
		// not write the eventfd, the pass is due anyway.
		return
	}
	l.pass()
}

// fairEvery is how many connections' events a loop handles before it
// checks whether the streams already open are due a pass: a connect storm
// (each request head a subscription of up to -max-tokens tokens) then
// cannot hold back the events of the others for a whole batch of 256.
const fairEvery = 16

// fair runs a flush pass in the middle of a batch of events when new
// events wait and the gap since the last pass is over, so that handling
// many new connections does not delay the streams already open.
func (l *loop) fair() {
	if !l.wakePending.Load() {
		return
	}
	l.now = time.Now()
	if l.now.Before(l.lastPass.Add(l.gap())) {
		return
	}
	l.flushDue = time.Time{}
	l.pass() // the eventfd stays readable: the next wait sees it, and the pass then finds little
}

// gap is the least time between two passes: -coalesce, at least
// minPassGap, and, while streams' writes carry several events each, as
// long as the last pass took (up to maxAdaptiveGap). An idle server
// flushes at once; one whose streams each get many events a second (a
// busy broadcast) spends at most about half its time in passes, and what
// is published meanwhile shares the next write of each stream. When each
// write carries one event (many streams, a few events each), waiting
// would save nothing and only add latency: the loop then passes as often
// as it needs to keep up.
func (l *loop) gap() time.Duration {
	return max(l.srv.cfg.Coalesce, minPassGap, min(l.passCost, maxAdaptiveGap))
}

// coalescingWrites is the least number of events a pass's writes carry on
// average for the next gap to grow with the pass's cost.
const coalescingWrites = 2

// maxAdaptiveGap bounds the latency the adaptive gap between passes adds.
const maxAdaptiveGap = 100 * time.Millisecond

// minPassGap is the least gap between passes under sustained traffic: at
// thousands of messages a second, a loop then wakes a few hundred times a
// second instead of once per message (a wake-up costs several system calls
// and a thread hand-off, as much as a few deliveries), for at most 2 ms of
// latency. An idle loop still flushes at once.
const minPassGap = 2 * time.Millisecond

// pass flushes every stream that has new events.
func (l *loop) pass() {
	start := time.Now()
	// Cleared before Collect: an event published from now on wakes the
	// loop again, one published before is collected now.
	l.wakePending.Store(false)
	delivered := l.owner.Delivered()
	gap, collected := l.gap(), start
	l.ready = l.hub.Collect(l.owner, l.ready[:0])
	for i, s := range l.ready {
		l.flush(s.Conn.(*conn))
		if l.testFlushed != nil {
			l.testFlushed(i, len(l.ready))
		}
		if i%interleaveEvery == interleaveEvery-1 && l.wakePending.Load() {
			if now := time.Now(); now.Sub(collected) >= gap && l.hub.Waiting(l.owner, interleaveMax) <= interleaveMax {
				collected = now
				l.interleave()
			}
		}
	}
	clear(l.ready)
	writes := l.sc.Writes
	l.core.AddWrites(writes)
	l.sc.Writes = 0
	l.lastPass = time.Now()
	l.passCost = 0
	if writes > 0 && l.owner.Delivered()-delivered >= coalescingWrites*writes {
		l.passCost = l.lastPass.Sub(start)
	}
}

// interleaveEvery is how many streams a pass flushes before it looks
// for events published since it began.
const interleaveEvery = 64

// interleaveMax is the most streams a pass flushes in its middle: more
// (another broadcast) wait for the next pass, as a second pass over them
// in the middle of this one would hold back the rest of this one.
const interleaveMax = 256

// interleave flushes, in the middle of a long pass, the streams that got
// events since the pass began: a broadcast to the loop's 18,000 streams
// (18,000 writes, a few hundred ms) then does not hold back a message to
// one of them for the rest of the pass. A stream flushed here and again
// later in the pass finds nothing more to write the second time.
func (l *loop) interleave() {
	l.wakePending.Store(false)
	l.extra = l.hub.Collect(l.owner, l.extra[:0])
	if l.testInterleave != nil {
		l.testInterleave(len(l.extra))
	}
	for _, s := range l.extra {
		l.flush(s.Conn.(*conn))
	}
	clear(l.extra)
}

// accept takes new connections; an error is one the loop cannot go on
// after.
func (l *loop) accept() error {
	if l.draining {
		return nil
	}
	for range 128 { // then give the streams a turn; the listener is level-triggered
		nfd, sa, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			switch err {
			case unix.EAGAIN, unix.EINTR:
			case unix.ECONNABORTED:
				continue
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				l.srv.acceptErr.Log(l.core.Logger(), slog.LevelWarn, "out of files", "out of file descriptors: refusing connections", "err", err)
				l.srv.shed(l.lfd, handshake.AppendError(nil, l.hcfg, 503, l.now))
			default:
				l.srv.acceptErr.Log(l.core.Logger(), slog.LevelWarn, "accept", "accept failed", "err", err)
			}
			return nil
		}
		c := &conn{fd: int32(nfd), hidx: -1}
		if status := l.core.Accept(&c.Conn, sockaddrAddrPort(sa), l.now); status != 0 {
			l.refuse(nfd, status)
			continue
		}
		unix.SetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if sb := l.srv.cfg.SendBuffer; sb > 0 {
			unix.SetsockoptInt(nfd, unix.SOL_SOCKET, unix.SO_SNDBUF, sb)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(nfd)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, nfd, &ev); err != nil {
			c.Close()
			unix.Close(nfd)
			continue
		}
		for nfd >= len(l.conns) {
			l.conns = append(l.conns, make([]*conn, max(64, len(l.conns)))...)
		}
		l.conns[nfd] = c
		l.nconns++
		l.schedule(c)
	}
	return nil
}

func (l *loop) handle(c *conn, events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.read(c)
	}
	if c.State() != stream.StateClosed && events&unix.EPOLLOUT != 0 && c.Blocked() {
		c.Unblock()
		l.flush(c)
	}
}

// sweep sends heartbeats and applies the slow-consumer policy to blocked
// streams; it runs once a second, whatever the traffic (hasses only swept
// when some event arrived).
func (l *loop) sweep() {
	for _, c := range l.conns {
		if c != nil {
			l.act(c, c.Tick(l.now))
		}
	}
	l.core.AddWrites(l.sc.Writes)
	l.sc.Writes = 0
}

// startDrain stops accepting and ends every stream with a short randomised
// retry hint, so that clients reconnect spread over a few seconds.
func (l *loop) startDrain() {
	l.draining = true
	if l.lfd >= 0 {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
		l.lfd = -1
	}
	for _, c := range l.conns {
		if c != nil {
			l.act(c, c.Drain(l.now))
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

func (l *loop) snapshot() []stream.ClientInfo {
	out := make([]stream.ClientInfo, 0, l.nconns)
	for _, c := range l.conns {
		if c != nil {
			ci := c.Info(l.now)
			ci.FD = int(c.fd)
			out = append(out, ci)
		}
	}
	return out
}
