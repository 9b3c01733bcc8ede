package epoll

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/stream"
)

// conn is one connection of the SSE port: the shared HTTP/1.x state
// machine, its socket, and its place in the loop's deadline heap. It is kept
// small: tens of thousands of them live at once.
type conn struct {
	stream.Conn
	fd   int32
	hidx int32 // index in the loop's deadline heap, -1 when not in it
	hat  int64 // the deadline it is filed under, Unix nanoseconds
}

// fdWriter writes to one socket without blocking: a short count means the
// socket is full.
type fdWriter struct {
	fd  int
	iov []unix.Iovec
}

func (w *fdWriter) Write(bufs [][]byte) (int, error) {
	n, err := sendv(w.fd, bufs, w.iov)
	if err == unix.EAGAIN || err == unix.EINTR {
		return n, nil
	}
	return n, err
}

func (l *loop) read(c *conn) {
	for c.State() != stream.StateClosed {
		n, err := unix.Read(int(c.fd), l.rbuf)
		switch {
		case n > 0:
			l.act(c, c.Received(l.rbuf[:n], l.owner, c, l.now))
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

// act carries out what the connection asked for.
func (l *loop) act(c *conn, a stream.Action) {
	switch a {
	case stream.Flush:
		l.flush(c)
	case stream.Close:
		l.close(c)
	default:
		l.schedule(c)
	}
}

// flush writes what is queued for c until the socket is full or nothing is
// left.
func (l *loop) flush(c *conn) {
	if c.State() == stream.StateClosed {
		return
	}
	l.w.fd = int(c.fd)
	switch c.Flush(&l.w, &l.sc, l.now) {
	case stream.Failed:
		l.close(c)
		return
	case stream.Finished:
		// Half-close after a complete answer or a close-delimited stream,
		// and wait for the peer to close, so that the answer is not lost
		// to a reset caused by unread input.
		unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
	l.schedule(c)
}

func (l *loop) close(c *conn) {
	if c.State() == stream.StateClosed {
		return
	}
	c.Close()
	l.unschedule(c)
	unix.Close(int(c.fd)) // also removes it from the epoll set
	l.conns[c.fd] = nil
	l.nconns--
}

// refuse answers a connection that was not admitted and closes it.
func (l *loop) refuse(fd, status int) {
	send(fd, handshake.AppendError(nil, l.hcfg, status, l.now))
	unix.Close(fd)
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}
