package epoll

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxIov is the kernel's IOV_MAX: the most buffers one sendmsg takes.
const maxIov = 1024

// sendv writes bufs with one sendmsg. MSG_NOSIGNAL turns a write to a peer
// that has gone into EPIPE instead of a process-killing SIGPIPE (hasses'
// crash 8.3). iov is caller-owned scratch space, reused across calls so that
// a write allocates nothing.
func sendv(fd int, bufs [][]byte, iov []unix.Iovec) (int, error) {
	if len(bufs) == 1 {
		return send(fd, bufs[0])
	}
	iov = iov[:0]
	for _, b := range bufs {
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.SetIovlen(len(iov))
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	clear(iov) // drop the references to event frames
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// send writes one buffer; see sendv.
func send(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
