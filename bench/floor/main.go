// Command floor is the physical floor of a delivery on this machine: a
// stand-in for hasses with no server logic at all. It accepts the load
// tool's subscribers on its SSE port (reads the request head, answers a
// minimal 200 head, notes the token) and its publisher on its control
// port; for every "token=data" unit it encodes one event and writes it with
// one sendto to each socket of the token. No hub, no history, no loops,
// no wake-ups: hasses' CPU per delivery, measured by the same load tool
// with the same readers and publisher, is compared with this one's
// (bench/core.sh).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	sse := flag.String("p", "127.0.0.1:18180", "SSE listen address")
	ctl := flag.String("cp", "127.0.0.1:18185", "control listen address")
	sndbuf := flag.Int("sndbuf", 64<<10, "send buffer per stream, as hasses' -sndbuf")
	flag.Parse()
	f := &floor{groups: map[string][]int{}, sndbuf: *sndbuf}
	sl, err := net.Listen("tcp", *sse)
	if err != nil {
		fail(err)
	}
	cl, err := net.Listen("tcp", *ctl)
	if err != nil {
		fail(err)
	}
	go f.acceptStreams(sl)
	for {
		c, err := cl.Accept()
		if err != nil {
			fail(err)
		}
		go f.publish(c)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

type floor struct {
	mu     sync.RWMutex
	groups map[string][]int // token -> sockets
	sndbuf int
	seq    int
}

var head = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")

func (f *floor) acceptStreams(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(err)
		}
		go f.stream(c.(*net.TCPConn))
	}
}

// stream reads a request head, answers it and files the socket under its
// token.
func (f *floor) stream(c *net.TCPConn) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadSlice('\n')
	if err != nil {
		c.Close()
		return
	}
	_, q, _ := bytes.Cut(line, []byte("subscribe="))
	tok := q[:bytes.IndexAny(q, "& ")]
	c.Write(head)
	c.SetNoDelay(true)
	c.SetWriteBuffer(f.sndbuf)
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return
	}
	rc.Control(func(fd uintptr) { // the socket stays non-blocking, c keeps it open
		f.mu.Lock()
		f.groups[string(tok)] = append(f.groups[string(tok)], int(fd))
		f.mu.Unlock()
	})
	go func() { // keep both alive, and notice the client going
		c.SetReadDeadline(time.Time{})
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}()
}

// publish reads "token=data;" units and writes each as one event chunk,
// one sendto per subscriber of the token.
func (f *floor) publish(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	var ev []byte
	for {
		unit, err := r.ReadSlice(';')
		if err != nil {
			return
		}
		tok, data, ok := bytes.Cut(unit[:len(unit)-1], []byte("="))
		if !ok {
			continue
		}
		f.seq++
		payload := fmt.Appendf(nil, "id: 1-%d\ndata: %s\n\n", f.seq, data)
		ev = strconv.AppendInt(ev[:0], int64(len(payload)), 16)
		ev = append(append(append(ev, "\r\n"...), payload...), "\r\n"...)
		f.mu.RLock()
		fds := f.groups[string(tok)]
		f.mu.RUnlock()
		for _, fd := range fds {
			unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)),
				unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
		}
	}
}
