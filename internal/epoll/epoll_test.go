package epoll

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
)

type testServer struct {
	hub  *hub.Hub
	core *stream.Core
	srv  *Server
	addr string
	stop func()
}

func newTestServer(t *testing.T, hcfg hub.Config, scfg stream.Config, cfg Config) *testServer {
	t.Helper()
	h := hub.New(hcfg)
	scfg.Handshake = &handshake.Config{Path: "/sse"}
	scfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	core := stream.New(h, scfg)
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	srv, err := New(core, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx, ln); err != nil {
			t.Error(err)
		}
	})
	ts := &testServer{hub: h, core: core, srv: srv, addr: ln.Addr().String(), stop: func() { cancel(); wg.Wait() }}
	var once sync.Once
	stop := ts.stop
	ts.stop = func() { once.Do(stop) }
	t.Cleanup(ts.stop)
	return ts
}

// open subscribes and returns the connection and a reader of the chunked
// body (the standard library's decoder checks the framing).
func (ts *testServer) open(t *testing.T, query string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	fmt.Fprintf(c, "GET /sse%s HTTP/1.1\r\nHost: x\r\n\r\n", query)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("subscribe: %v %v", resp, err)
	}
	return c, bufio.NewReader(httputil.NewChunkedReader(br))
}

func readEvent(r *bufio.Reader) (string, error) {
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(data) > 0 {
				return strings.Join(data, "\n"), nil
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, v)
		}
	}
}

func waitSubscribed(t *testing.T, h *hub.Hub, token string, n int) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if h.SubscribedClients(token) == n {
			return
		}
	}
	t.Fatalf("%d subscribers on %s, want %d", h.SubscribedClients(token), token, n)
}

// A reader slower than the publisher, behind a small send buffer, forces
// partial writes: every event must still arrive whole, in order. (The
// client keeps its default receive buffer: a tiny one makes the kernel's
// silly-window avoidance wait for its timers, which takes seconds. The
// stream core's tests cover short writes byte by byte.)
func TestPartialWritesAreResumed(t *testing.T) {
	ts := newTestServer(t, hub.Config{MaxLag: 64 << 20}, stream.Config{}, Config{SendBuffer: 4096})
	c, r := ts.open(t, "?subscribe=t", 0)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	body := strings.Repeat("p", 3000)
	const n = 600
	go func() {
		for i := range n {
			ts.hub.Publish(hub.Message{Targets: []string{"t"}, Data: fmt.Appendf(nil, "%d %s", i, body)})
		}
	}()
	for i := range n {
		time.Sleep(100 * time.Microsecond) // read slower than the publisher
		got, err := readEvent(r)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if got != fmt.Sprintf("%d %s", i, body) {
			t.Fatalf("event %d corrupted: %.30q", i, got)
		}
	}
}

func TestLaggingStreamIsClosedOthersServed(t *testing.T) {
	// The reader must never fall 1 MiB behind, even on a busy machine; the
	// stalled client holds about 20 KB in the kernel, then falls behind.
	ts := newTestServer(t, hub.Config{MaxLag: 1 << 20}, stream.Config{}, Config{SendBuffer: 8192})
	stalled, _ := ts.open(t, "?subscribe=t", 4096)
	_, reader := ts.open(t, "?subscribe=t", 0)
	waitSubscribed(t, ts.hub, "t", 2)
	body := strings.Repeat("s", 1000)
	done := make(chan error, 1)
	var read atomic.Int64 // events the reader has, or -1 once it failed
	go func() {
		for i := range 2000 {
			got, err := readEvent(reader)
			if err != nil || got != fmt.Sprintf("%d %s", i, body) {
				read.Store(-1)
				done <- fmt.Errorf("event %d: %.20q %v", i, got, err)
				return
			}
			read.Add(1)
		}
		done <- nil
	}()
	for i := range 2000 { // 2 MB
		ts.hub.Publish(hub.Message{Targets: []string{"t"}, Data: fmt.Appendf(nil, "%d %s", i, body)})
		// A publisher the reader keeps up with however busy the machine:
		// at most 256 KB ahead of it, a quarter of the lag limit.
		for n := read.Load(); n >= 0 && n < int64(i)-256; n = read.Load() {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && ts.core.Stats().Lagged == 0; {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ts.core.Stats().Lagged; n != 1 {
		t.Fatalf("lagged = %d, want 1", n)
	}
	// The stalled client sees its stream closed once it reads.
	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, stalled); err != nil {
		t.Fatalf("stalled stream not closed: %v", err)
	}
}

func TestMaxConnsAnswers503(t *testing.T) {
	ts := newTestServer(t, hub.Config{}, stream.Config{MaxConns: 1}, Config{})
	ts.open(t, "?subscribe=a", 0)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("over the limit: %v %v", resp, err)
	}
	if n := ts.core.Stats().Refused; n != 1 {
		t.Errorf("refused = %d", n)
	}
}

func TestDrainEndsStreamsWithLastChunk(t *testing.T) {
	ts := newTestServer(t, hub.Config{}, stream.Config{Drain: 3 * time.Second}, Config{})
	var readers []*bufio.Reader
	var conns []net.Conn
	for range 5 {
		c, r := ts.open(t, "?subscribe=t", 0)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		readers = append(readers, r)
		conns = append(conns, c)
	}
	waitSubscribed(t, ts.hub, "t", 5)
	ts.hub.Publish(hub.Message{Targets: []string{"t"}, Data: []byte("bye")})
	stopped := make(chan struct{})
	go func() { ts.stop(); close(stopped) }()
	for i, r := range readers {
		rest, err := io.ReadAll(r) // the chunked reader ends cleanly only at the last chunk
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if !strings.Contains(string(rest), "data: bye") || !strings.Contains(string(rest), "retry: ") {
			t.Errorf("stream %d ended with %q", i, rest)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	<-stopped
	st := ts.core.Stats()
	if st.Conns != 0 || st.Streams != 0 || st.Delivered != 5 {
		t.Errorf("after drain: %+v", st)
	}
}

// More loops than the 64 the hub once allowed (the default on a host with
// 65+ CPUs) start and serve.
func TestMoreThan64Loops(t *testing.T) {
	ts := newTestServer(t, hub.Config{}, stream.Config{}, Config{Loops: 70})
	var readers []*bufio.Reader
	for range 10 {
		_, r := ts.open(t, "?subscribe=t", 0)
		readers = append(readers, r)
	}
	waitSubscribed(t, ts.hub, "t", 10)
	ts.hub.Publish(hub.Message{Targets: []string{"t"}, Data: []byte("hello")})
	for i, r := range readers {
		if got, err := readEvent(r); err != nil || got != "hello" {
			t.Fatalf("stream %d: %q %v", i, got, err)
		}
	}
	if n := len(ts.srv.Clients()); n != 10 {
		t.Errorf("Clients over 70 loops: %d, want 10", n)
	}
}

// A long pass (an event to many streams) looks for events published since
// it began every interleaveEvery streams: a message to another stream is
// written then, not after the pass.
func TestLongPassServesNewEventsMidway(t *testing.T) {
	ts := newTestServer(t, hub.Config{}, stream.Config{}, Config{Loops: 1})
	_, x := ts.open(t, "?subscribe=b", 0)
	const n = 3 * interleaveEvery
	readers := make([]*bufio.Reader, n)
	for i := range readers {
		_, readers[i] = ts.open(t, "?subscribe=a", 0)
	}
	waitSubscribed(t, ts.hub, "a", n)

	var mu sync.Mutex
	var log []string
	published := false
	l := ts.srv.loops[0]
	ready := make(chan struct{})
	l.post(func() {
		l.testFlushed = func(i, total int) {
			mu.Lock()
			defer mu.Unlock()
			if total < n {
				return
			}
			log = append(log, fmt.Sprintf("flush %d", i))
			if i == interleaveEvery/2 && !published {
				published = true
				ts.hub.Publish(hub.Message{Targets: []string{"b"}, Data: []byte("to b")})
				time.Sleep(2 * minPassGap) // the least gap between two looks
			}
		}
		l.testInterleave = func(k int) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, fmt.Sprintf("interleave %d", k))
		}
		close(ready)
	})
	<-ready
	ts.hub.Publish(hub.Message{Targets: []string{"a"}, Data: []byte("to a")})
	if got, err := readEvent(x); err != nil || got != "to b" {
		t.Fatalf("stream on b got %q, %v", got, err)
	}
	for i, r := range readers {
		if got, err := readEvent(r); err != nil || got != "to a" {
			t.Fatalf("stream %d on a got %q, %v", i, got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprintf("flush %d|interleave 1|flush %d", interleaveEvery-1, interleaveEvery)
	if !strings.Contains(strings.Join(log, "|"), want) {
		t.Fatalf("the pass did not write the event to b after its first %d streams: %q", interleaveEvery, log)
	}
}

// Another broadcast published during a long pass waits for the next pass:
// a second pass over every stream in the middle of this one would hold
// back the rest of this one.
func TestLongPassLeavesABroadcastForLater(t *testing.T) {
	ts := newTestServer(t, hub.Config{}, stream.Config{}, Config{Loops: 1})
	const n = interleaveMax + interleaveEvery
	readers := make([]*bufio.Reader, n)
	for i := range readers {
		_, readers[i] = ts.open(t, "?subscribe=a", 0)
	}
	waitSubscribed(t, ts.hub, "a", n)

	var mu sync.Mutex
	interleaved, published := 0, false
	l := ts.srv.loops[0]
	ready := make(chan struct{})
	l.post(func() {
		l.testFlushed = func(i, total int) {
			if i == interleaveEvery/2 && !published {
				published = true
				ts.hub.Publish(hub.Message{Targets: []string{"a"}, Data: []byte("second")})
				time.Sleep(2 * minPassGap)
			}
		}
		l.testInterleave = func(int) {
			mu.Lock()
			defer mu.Unlock()
			interleaved++
		}
		close(ready)
	})
	<-ready
	ts.hub.Publish(hub.Message{Targets: []string{"a"}, Data: []byte("first")})
	for i, r := range readers {
		for _, want := range []string{"first", "second"} {
			if got, err := readEvent(r); err != nil || got != want {
				t.Fatalf("stream %d got %q, %v, want %q", i, got, err, want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if interleaved != 0 {
		t.Fatalf("a broadcast to %d streams was flushed in the middle of a pass", n)
	}
}
