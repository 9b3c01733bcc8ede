package itest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// stalledRequest is a request that declares a body and never sends it.
const stalledRequest = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"

// dialFrom connects to addr from the loopback address src (127.0.0.N).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refusedAtOnce reports whether the server answered c with status (or
// just closed it) without waiting for a request.
func refusedAtOnce(c net.Conn, status string) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return !isTimeout(err)
	}
	return strings.HasPrefix(line, "HTTP/1.1 "+status)
}

// Issue 16, item 1: a request on the admin or publish-API listener that
// declares a body and never sends it is cut after the read deadline,
// before any authentication.
func TestHTTPListenersCutAnUnfinishedBody(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-pub=127.0.0.1:0", "-ctl-secret=a-long-enough-secret-0123456789")
	var wg sync.WaitGroup
	for _, addr := range []string{d.adm, d.pub} {
		wg.Go(func() {
			c := dialFrom(t, "127.0.0.1", addr)
			defer c.Close()
			c.Write([]byte(stalledRequest))
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			began := time.Now()
			_, err := io.Copy(io.Discard, c)
			if isTimeout(err) {
				t.Errorf("%s: a request without its declared body was held for 20 s", addr)
			}
			t.Logf("%s: cut after %v (%v)", addr, time.Since(began).Round(time.Second), err)
		})
	}
	wg.Wait()
}

// Issue 16, item 1: the admin listener caps its connections per address and
// in total, and cannot take the descriptors the SSE and control ports keep:
// with more stalled connections than the file limit, a new stream and the
// control port still work.
func TestHTTPListenersCapped(t *testing.T) {
	const files, perAddr, total = 1000, 64, 256
	d := startWrapped(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", files, files)}, start,
		"-admin=127.0.0.1:0", "-pub=127.0.0.1:0")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	open := func(src string) net.Conn {
		c := dialFrom(t, src, d.adm)
		conns = append(conns, c)
		c.Write([]byte(stalledRequest))
		return c
	}
	// One address: its share, then 429.
	for range perAddr {
		open("127.0.0.1")
	}
	if c := open("127.0.0.1"); !refusedAtOnce(c, "429") {
		t.Errorf("connection %d from one address not refused", perAddr+1)
	}
	// Many addresses: more than the file limit in all.
	refused := 0
	for i := 2; len(conns) < files+50; i++ {
		src := fmt.Sprintf("127.0.0.%d", i)
		for range perAddr {
			open(src)
		}
	}
	for _, c := range conns[perAddr+1:] {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		line, err := bufio.NewReader(c).ReadString('\n')
		if strings.HasPrefix(line, "HTTP/1.1 503") || (err != nil && !isTimeout(err)) {
			refused++
		}
	}
	if want := len(conns) - total - 1; refused < want {
		t.Errorf("%d of %d connections refused, want at least %d (cap %d)", refused, len(conns), want, total)
	}
	// The SSE port and the control port still work.
	s := d.subscribe("?subscribe=a")
	if s.Status != 200 {
		t.Fatalf("new stream while the admin listener is flooded: %d", s.Status)
	}
	d.send("a=still here")
	s.expect("still here")
	if !strings.Contains(d.log.String(), "admin/publish listener connection cap") {
		t.Error("refusals not logged")
	}
}
