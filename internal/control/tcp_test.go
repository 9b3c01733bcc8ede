package control

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failingListener fails Accept n times with EMFILE, then waits for Close.
type failingListener struct {
	n      int
	mu     sync.Mutex
	closed chan struct{}
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
}

func (l *failingListener) Close() error   { close(l.closed); return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{} }

// Accept errors such as EMFILE repeat at once: logged at most once a
// second, with the count of the ones held back.
func TestAcceptErrorsRateLimited(t *testing.T) {
	var logs syncBuffer
	h := &Handler{Backend: &fakeBackend{}, Pipeline: &pipeline.Pipeline{Hub: &fakeBackend{}}, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	h.logs.Now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	ln := &failingListener{n: 6, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeTCP(ctx, ln) }()
	for {
		ln.mu.Lock()
		n := ln.n
		ln.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if n := strings.Count(logs.String(), "accept failed"); n != 1 {
		t.Fatalf("%d log lines for 6 accept errors within a second:\n%s", n, logs.String())
	}
}

func serveTCP(t *testing.T, h *Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeTCP(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// A connection that does not authenticate in time is closed with an error
// line; one that does is not.
func TestAuthTimeout(t *testing.T) {
	h := newHandler(&fakeBackend{})
	h.Policy = &access.Policy{Secret: "s"}
	h.AuthTimeout = 100 * time.Millisecond
	addr := serveTCP(t, h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	if string(out) != authTimedOut {
		t.Fatalf("silent connection got %q", out)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "auth s\n")
	time.Sleep(300 * time.Millisecond)
	io.WriteString(c2, "tcpnumberofclients\n")
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _ := io.ReadAtLeast(c2, buf, len(authOK)+len(`{"numberofclients": 4}`))
	if string(buf[:n]) != authOK+`{"numberofclients": 4}` {
		t.Fatalf("authenticated connection got %q", buf[:n])
	}
}

// An oversized JSON unit is answered with a JSON error, as every other
// JSON unit is.
func TestOversizedJSONReply(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	h.Pipeline.Limits.MaxData = 100
	addr := serveTCP(t, h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"token":"a","data":"`+strings.Repeat("x", 100<<10)+`;a=evil"}`+"\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bytesReadLine(c)
	if !strings.HasPrefix(line, `{"error":"JSON unit too large`) {
		t.Fatalf("reply %q", line)
	}
	if len(b.data()) != 0 {
		t.Fatalf("published %q", b.data())
	}
}

func bytesReadLine(c net.Conn) (string, error) {
	var out []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return string(out), err
		}
		if b[0] == '\n' {
			return string(out), nil
		}
		out = append(out, b[0])
	}
}

// Units of a connection closed before the next was opened come first,
// whatever the scheduler does (see ServeTCP).
func TestOrderAcrossConnections(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	h.IdleGap = time.Hour // only the end of file may end the unterminated ones
	addr := serveTCP(t, h)
	const n = 300
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "t="+strconv.Itoa(i)+[]string{"", "\n", ";"}[i%3])
		c.Close()
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && len(b.data()) < n; {
		time.Sleep(5 * time.Millisecond)
	}
	got := b.data()
	if len(got) != n {
		t.Fatalf("%d messages of %d", len(got), n)
	}
	for i, m := range got {
		if m != "t="+strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
}

// Shutting down while connections are being read must not hang (closing a
// connection under its lock deadlocked with its own read).
func TestShutdownWhileReading(t *testing.T) {
	for range 2 {
		h := newHandler(&discardBackend{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- h.ServeTCP(ctx, ln) }()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 20 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				defer c.Close()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := io.WriteString(c, "t=x;"); err != nil {
						return
					}
				}
			})
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ServeTCP did not return after its context ended")
		}
		close(stop)
		wg.Wait()
	}
}

// discardBackend publishes nowhere, keeping nothing.
type discardBackend struct{ fakeBackend }

func (*discardBackend) Publish(hub.Message) (hub.Result, error) { return hub.Result{}, nil }

// A new connection drains only the earlier connections that may hold
// bytes from before it, not every open one: with 300 idle connections,
// an open-publish-close drains none of them (it drained all 300, an ioctl
// and a read each). The order across connections still holds (see
// TestCrossConnectionOrder and the others here).
func TestIdleConnectionsNotDrained(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	addr := serveTCP(t, h)
	var idle []net.Conn
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	for _, c := range idle { // each one's goroutine has started and waits
		io.WriteString(c, "tcpnumberofclients\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// One of them has sent a unit without closing: it is drained.
	io.WriteString(idle[7], "a=1\n")
	waitUntil(t, "the unit of the open connection", func() bool { return len(b.data()) == 1 })
	before := h.drains.Load()
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "b="+strconv.Itoa(i)+"\n")
		c.Close()
		waitUntil(t, "the short connection's unit", func() bool { return len(b.data()) == 2+i })
	}
	// Each may drain the one before it (closed, its end of file not yet
	// handled) and one caught in the instant of a read; 1,500 before.
	if n := h.drains.Load() - before; n > 15 {
		t.Errorf("5 open-publish-close with 300 idle connections drained %d connections, want a few", n)
	}
	if got := strings.Join(b.data(), ","); got != "a=1,b=0,b=1,b=2,b=3,b=4" {
		t.Errorf("units %q", got)
	}
}

// Control connections are capped: one over the cap gets an error line and
// is closed; a place freed is taken again.
func TestControlConnectionCap(t *testing.T) {
	h := newHandler(&fakeBackend{})
	h.MaxConns = 3
	addr := serveTCP(t, h)
	var open []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "tcpnumberofclients\n") // answered: it was accepted and counted
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	c.Close()
	if string(out) != connsBusy {
		t.Fatalf("connection over the cap got %q", out)
	}
	open[0].Close()
	waitUntil(t, "a place freed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		io.WriteString(c, "tcpnumberofclients\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, _ := c.Read(buf)
		return strings.Contains(string(buf[:n]), "numberofclients")
	})
}

// A control connection that sends nothing for the idle timeout is closed,
// authenticated or not; one that keeps sending is not.
func TestControlIdleTimeout(t *testing.T) {
	for _, secret := range []string{"", "s"} {
		h := newHandler(&fakeBackend{})
		h.IdleTimeout = 200 * time.Millisecond
		if secret != "" {
			h.Policy = &access.Policy{Secret: secret}
			h.AuthTimeout = time.Minute
		}
		addr := serveTCP(t, h)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if secret != "" {
			io.WriteString(c, "auth s\n")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("secret %q: idle connection not closed: %v", secret, err)
		}
		if secret != "" && string(out) != authOK {
			t.Errorf("got %q", out)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
