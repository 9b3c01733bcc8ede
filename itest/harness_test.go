package itest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hasses-itest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "hasses")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/hasses")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building hasses:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects the daemon's output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a running hasses.
type daemon struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  *logBuffer
	sse  string // host:port of the SSE port
	ctl  string // host:port of the control port
	pub  string // host:port of the publish API, if any
	adm  string // host:port of the admin listener, if any
	done chan struct{}
	err  error       // the exit status, once done is closed
	tls  *tls.Config // set when the SSE port speaks TLS: dial returns HTTP/1.1 over TLS
}

// wrappers holds, per test, a command that start runs hasses under (for
// example prlimit); see startWrapped.
var wrappers sync.Map

func wrapper(t *testing.T) []string {
	if w, ok := wrappers.Load(t); ok {
		return w.([]string)
	}
	return nil
}

// startWrapped starts hasses under the command w (with its arguments).
func startWrapped(t *testing.T, w []string, start startFunc, args ...string) *daemon {
	t.Helper()
	wrappers.Store(t, w)
	defer wrappers.Delete(t)
	return start(t, args...)
}

// startFunc starts a daemon; see start.
type startFunc func(t *testing.T, args ...string) *daemon

// eachFrontEnd runs fn once against the plain port (epoll) and once
// against the TLS port, where HTTP/1.1 runs the same state machine: every
// answer and stream must be byte for byte alike.
func eachFrontEnd(t *testing.T, fn func(t *testing.T, start startFunc)) {
	t.Run("plain", func(t *testing.T) { fn(t, start) })
	t.Run("tls", func(t *testing.T) { fn(t, startTLS) })
}

var testCert struct {
	once          sync.Once
	dir           string
	certFile, key string
	pool          *x509.CertPool
}

// startTLS starts a daemon with -ssl and a test certificate.
func startTLS(t *testing.T, args ...string) *daemon {
	t.Helper()
	testCert.once.Do(func() {
		testCert.dir, _ = os.MkdirTemp("", "hasses-cert")
		testCert.certFile, testCert.key, testCert.pool = writeCert(t, testCert.dir)
	})
	d := start(t, append([]string{"-ssl", "-cert-file=" + testCert.certFile, "-privatekey-file=" + testCert.key}, args...)...)
	d.tls = &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	return d
}

// dial opens a connection to the SSE port, through TLS on a TLS port.
func (d *daemon) dial() net.Conn {
	d.t.Helper()
	c, err := net.Dial("tcp", d.sse)
	if err != nil {
		d.t.Fatal(err)
	}
	if d.tls == nil {
		return c
	}
	tc := tls.Client(c, d.tls)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		d.t.Fatal(err)
	}
	tc.SetDeadline(time.Time{})
	return tc
}

// tcp returns the TCP connection under c.
func tcpOf(c net.Conn) *net.TCPConn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn().(*net.TCPConn)
	}
	return c.(*net.TCPConn)
}

var addrRE = regexp.MustCompile(`msg="hasses started".* sse=(\S+) .*control=(\S*) .*admin=(\S*) publish=(\S*)`)

// start runs hasses -nodaemon on loopback ports chosen by the kernel.
// Arguments given replace the defaults of the same name.
func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	defaults := map[string]string{"-p": "127.0.0.1:0", "-cp": "127.0.0.1:0", "-murl": "/sse"}
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		delete(defaults, name)
	}
	full := []string{"-nodaemon"}
	for k, v := range defaults {
		if v != "" {
			full = append(full, k+"="+v)
		}
	}
	full = append(full, args...)
	d := &daemon{t: t, log: &logBuffer{}, done: make(chan struct{})}
	if w := wrapper(t); len(w) > 0 {
		d.cmd = exec.Command(w[0], append(append(w[1:], binPath), full...)...)
	} else {
		d.cmd = exec.Command(binPath, full...)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.stop(); t.Logf("hasses log:\n%s", tail(d.log.String(), 3000)) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := addrRE.FindStringSubmatch(d.log.String()); m != nil {
			d.sse = loopback(m[1])
			d.ctl = loopback(m[2])
			d.adm = loopback(m[3])
			d.pub = loopback(m[4])
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("hasses exited at start (%v):\n%s", d.err, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hasses did not start:\n%s", d.log.String())
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func loopback(addr string) string {
	if addr == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// stop sends SIGTERM and waits for the exit; it kills after 10 s.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("hasses did not exit within 10 s of SIGTERM")
	}
	return d.err
}

// send writes raw bytes to the control port on a new connection, half-closes
// it and returns everything the server answered.
func (d *daemon) send(payload string) string {
	d.t.Helper()
	c, err := net.Dial("tcp", d.ctl)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, payload); err != nil {
		d.t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	return string(out)
}

// command runs one control command on a held-open connection and returns
// the reply, read until the server has been quiet for a moment.
func (d *daemon) command(cmd string) string {
	d.t.Helper()
	c, err := net.Dial("tcp", d.ctl)
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, cmd)
	return readQuiet(c, 3*time.Second)
}

// readQuiet reads until a brace-balanced JSON reply arrived or the limit.
func readQuiet(c net.Conn, limit time.Duration) string {
	var out []byte
	buf := make([]byte, 4096)
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if len(out) > 0 && bytes.Count(out, []byte("{")) == bytes.Count(out, []byte("}")) && n == 0 {
			break
		}
		if err != nil && !isTimeout(err) {
			break
		}
	}
	return string(out)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stream is a raw SSE client connection.
type stream struct {
	t      *testing.T
	c      net.Conn
	br     *bufio.Reader
	Status int
	Header http.Header
}

// event is one parsed SSE event.
type event struct {
	ID, Event, Data string
	Retry           string
	Comment         bool
	// HasData: the block has a data field, so EventSource dispatches it.
	// The stream's own blocks (the opening id, a retry hint, a heartbeat)
	// have none.
	HasData bool
}

// subscribe sends GET <path><query> and reads the response head.
func (d *daemon) subscribe(query string, headers ...string) *stream {
	d.t.Helper()
	req := "GET /sse" + query + " HTTP/1.1\r\nHost: localhost\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	return d.raw(req + "\r\n")
}

// raw sends a request verbatim and reads the response head.
func (d *daemon) raw(req string) *stream {
	d.t.Helper()
	c := d.dial()
	d.t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		d.t.Fatal(err)
	}
	s := &stream{t: d.t, c: c, br: bufio.NewReader(c)}
	s.readHead()
	return s
}

func (s *stream) readHead() {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(s.br, nil)
	if err != nil {
		s.t.Fatalf("reading response head: %v", err)
	}
	s.Status = resp.StatusCode
	s.Header = resp.Header
	if resp.StatusCode != 200 || resp.Request == nil {
		// Error answers have a body; the stream's body is read event by event.
	}
}

// next returns the next event, skipping the stream's own data-less chunks
// (opening id, retry hint, heartbeat), or an error after timeout.
func (s *stream) next(timeout time.Duration) (event, error) {
	s.c.SetReadDeadline(time.Now().Add(timeout))
	var ev event
	for {
		payload, err := s.chunk()
		if err != nil {
			return ev, err
		}
		ev = parseEvent(payload)
		if !ev.HasData {
			continue
		}
		return ev, nil
	}
}

// chunk reads one HTTP chunk and returns its payload; io.EOF after the last
// chunk.
func (s *stream) chunk() (string, error) {
	line, err := s.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	size, err := strconv.ParseUint(strings.TrimSpace(line), 16, 32)
	if err != nil {
		return "", fmt.Errorf("bad chunk size line %q", line)
	}
	if size == 0 {
		s.br.ReadString('\n')
		return "", io.EOF
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(s.br, buf); err != nil {
		return "", err
	}
	if string(buf[size:]) != "\r\n" {
		return "", fmt.Errorf("chunk not followed by CRLF: %q", buf)
	}
	return string(buf[:size]), nil
}

func parseEvent(payload string) event {
	var ev event
	var data []string
	for _, line := range strings.Split(strings.TrimSuffix(payload, "\n\n"), "\n") {
		if strings.HasPrefix(line, ":") {
			ev.Comment = true
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "id":
			ev.ID = v
		case "event":
			ev.Event = v
		case "data":
			data = append(data, v)
			ev.HasData = true
		case "retry":
			ev.Retry = v
		}
	}
	ev.Data = strings.Join(data, "\n")
	return ev
}

// expect reads events until it has len(want) of them and compares data.
func (s *stream) expect(want ...string) []event {
	s.t.Helper()
	var got []event
	for range want {
		ev, err := s.next(5 * time.Second)
		if err != nil {
			s.t.Fatalf("after %d events %+v: %v", len(got), got, err)
		}
		got = append(got, ev)
	}
	for i := range want {
		if got[i].Data != want[i] {
			s.t.Fatalf("event %d = %q, want %q (all: %+v)", i, got[i].Data, want[i], got)
		}
	}
	return got
}

// expectNone asserts that no event arrives within d.
func (s *stream) expectNone(d time.Duration) {
	s.t.Helper()
	if ev, err := s.next(d); err == nil {
		s.t.Fatalf("unexpected event %+v", ev)
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// readHeadRest skips header lines up to the blank line.
func (s *stream) readHeadRest() {
	s.t.Helper()
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatal(err)
		}
		if line == "\r\n" {
			return
		}
	}
}
