// Command floor measures the physical floor of a delivery on this machine:
// the CPU one process spends on one sendmsg per delivery to N reading
// loopback sockets, with no server logic at all. bench/core.sh runs it in
// the same run as hasses and reports hasses' CPU per delivery as a ratio
// of it.
//
// The sender (this process) accepts N connections from a reader child
// process, then for -duration writes -rate messages per second, each to the
// -group sockets of one "token" (as hasses writes an event to the streams
// of its token), one write each. It prints one JSON line: writes, CPU
// seconds of the sender over the writing window, and CPU seconds per
// million writes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	role := flag.String("role", "send", "send (this process) or read (the child it starts)")
	n := flag.Int("n", 18000, "sockets")
	rate := flag.Float64("rate", 2000, "messages per second")
	group := flag.Int("group", 10, "sockets per message (subscribers per token)")
	size := flag.Int("size", 100, "bytes per write (an encoded event)")
	dur := flag.Duration("duration", 10*time.Second, "writing time")
	addr := flag.String("addr", "127.0.0.1:0", "listen address (send); server address (read)")
	sndbuf := flag.Int("sndbuf", 64<<10, "send buffer per socket, as hasses' -sndbuf")
	flag.Parse()
	var err error
	if *role == "read" {
		err = read(*addr, *n)
	} else {
		err = send(*addr, *n, *rate, *group, *size, *dur, *sndbuf)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func send(addr string, n int, rate float64, group, size int, dur time.Duration, sndbuf int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	child := exec.Command(os.Args[0], "-role=read", "-n="+strconv.Itoa(n), "-addr="+ln.Addr().String())
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		return err
	}
	defer child.Process.Kill()
	fds := make([]int, 0, n)
	for len(fds) < n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			return err
		}
		fd, err := unix.Dup(int(f.Fd()))
		f.Close()
		if err != nil {
			return err
		}
		unix.SetNonblock(fd, true)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
		fds = append(fds, fd)
	}
	msg := []byte(strings.Repeat("x", size))
	groups := max(1, n/group)
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	start := time.Now()
	writes, short := 0, 0
	sent := 0
	for tok := 0; ; {
		el := time.Since(start)
		if el >= dur {
			break
		}
		for due := int(el.Seconds() * rate); sent < due; sent++ {
			g := tok % groups
			tok++
			for i := g; i < n; i += groups { // the sockets of this "token"
				w, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fds[i]), uintptr(unsafe.Pointer(&msg[0])),
					uintptr(len(msg)), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
				writes++
				if errno != 0 || int(w) < len(msg) {
					short++
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	cpu := tv(after.Utime) + tv(after.Stime) - tv(before.Utime) - tv(before.Stime)
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"scenario": "floor", "sockets": n, "writes": writes, "short_writes": short,
		"writes_per_s": float64(writes) / dur.Seconds(), "cpu_s": cpu, "cpu_s_per_1m": cpu / float64(writes) * 1e6,
	})
}

func tv(t unix.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// read connects n sockets and reads everything they receive until killed.
func read(addr string, n int) error {
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return err
	}
	epfd, err := unix.EpollCreate1(0)
	if err != nil {
		return err
	}
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return err
		}
		// Spread the client ports over several source addresses.
		src := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, byte(10 + i%8)}}
		if err := unix.Bind(fd, src); err != nil {
			return err
		}
		dst := &unix.SockaddrInet4{Port: ap.Port}
		copy(dst.Addr[:], ap.IP.To4())
		if err := unix.Connect(fd, dst); err != nil && err != unix.EINPROGRESS {
			return err
		}
		unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	}
	buf := make([]byte, 64<<10)
	events := make([]unix.EpollEvent, 256)
	for {
		k, err := unix.EpollWait(epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:k] {
			for {
				if m, _ := unix.Read(int(ev.Fd), buf); m <= 0 {
					break
				}
			}
		}
	}
}
