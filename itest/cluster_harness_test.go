package itest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisServer is a real redis-server on a loopback port, without
// persistence, stopped when the test ends.
type redisServer struct {
	t      *testing.T
	path   string
	dir    string // working directory: an RDB written by SAVE goes here
	port   int
	cmd    *exec.Cmd
	done   chan struct{}
	log    *logBuffer
	paused bool
	args   []string // extra arguments, such as --replicaof
}

func startRedis(t *testing.T, args ...string) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
	}
	r := &redisServer{t: t, path: path, dir: t.TempDir(), args: args}
	for range 20 {
		// Below the ephemeral range, so that no client socket takes it
		// between the check and redis-server's bind.
		r.port = 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)))
		if err != nil {
			continue
		}
		ln.Close()
		if r.launch() {
			t.Cleanup(r.kill)
			return r
		}
	}
	t.Fatal("could not start redis-server")
	return nil
}

// launch starts redis-server on r.port and waits until it answers PING.
func (r *redisServer) launch() bool {
	r.log = &logBuffer{}
	r.cmd = exec.Command(r.path, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", r.dir)
	r.cmd.Args = append(r.cmd.Args, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.done)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		select {
		case <-r.done:
			return false
		default:
		}
		if out, err := r.try("PING"); err == nil && out == "+PONG" {
			return true
		}
	}
	r.kill()
	return false
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// kill stops redis-server at once (SIGKILL), as a crash would.
func (r *redisServer) kill() {
	select {
	case <-r.done:
		return
	default:
	}
	if r.paused {
		r.resume()
	}
	r.cmd.Process.Kill()
	<-r.done
}

// restart kills redis-server and starts it again on the same port: empty,
// or from the RDB of the last SAVE.
func (r *redisServer) restart() {
	r.t.Helper()
	r.kill()
	if !r.launch() {
		r.t.Fatalf("redis-server did not restart on port %d:\n%s", r.port, r.log.String())
	}
}

func (r *redisServer) pause() {
	r.cmd.Process.Signal(syscall.SIGSTOP)
	r.paused = true
}

func (r *redisServer) resume() {
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.paused = false
}

// try sends one inline command and returns the first line of the reply
// (for a bulk string, its content).
func (r *redisServer) try(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if err == nil && strings.HasPrefix(line, "$") {
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		_, err = io.ReadFull(br, buf)
		return string(buf[:n]), err
	}
	return line, err
}

func (r *redisServer) do(cmd string) string {
	r.t.Helper()
	out, err := r.try(cmd)
	if err != nil {
		r.t.Fatalf("redis %q: %v", cmd, err)
	}
	return out
}

// startNode starts a hasses node of the cluster on r, with the publish API
// and the admin listener, and waits until it has joined.
func startNode(t *testing.T, r *redisServer, args ...string) *daemon {
	t.Helper()
	d := start(t, append([]string{"-cluster=" + r.url(), "-pub=127.0.0.1:0", "-admin=127.0.0.1:0"}, args...)...)
	waitFor(t, "the node to join the cluster", func() bool { return d.ready() })
	return d
}

// ready reports whether the node's /readyz answers 200.
func (d *daemon) ready() bool {
	resp, err := http.Get("http://" + d.adm + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// metric returns the value of a metric line (name with labels, exactly as
// exposed), or -1.
func (d *daemon) metric(name string) float64 {
	resp, err := http.Get("http://" + d.adm + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// kill9 kills the node with SIGKILL.
func (d *daemon) kill9() {
	d.cmd.Process.Kill()
	<-d.done
}

// publishHTTP publishes through the node's HTTP API and returns the status
// and the event id.
func (d *daemon) publishHTTP(body string) (int, string, http.Header) {
	resp, err := http.Post("http://"+d.pub+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", nil
	}
	defer resp.Body.Close()
	var out struct {
		IDs []string `json:"ids"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	id := ""
	if len(out.IDs) == 1 {
		id = out.IDs[0]
	}
	return resp.StatusCode, id, resp.Header
}

func jsonMsg(token, data string) string {
	b, _ := json.Marshal(map[string]string{"token": token, "data": data})
	return string(b)
}

// sub is an EventSource-like client: it keeps every event it received
// over all its connections, and reconnects with Last-Event-ID.
type sub struct {
	t     *testing.T
	query string

	mu       sync.Mutex
	events   []event
	lastID   string
	comments int
	replays  []string // X-Hasses-Replay of each reconnection
	conn     net.Conn
	closed   chan struct{}
}

func newSub(t *testing.T, d *daemon, query string) *sub {
	s := &sub{t: t, query: query}
	s.connect(d)
	return s
}

// connect opens a stream on d, with the last id received if any.
func (s *sub) connect(d *daemon) {
	s.t.Helper()
	s.mu.Lock()
	last := s.lastID
	s.mu.Unlock()
	var st *stream
	if last != "" {
		st = d.subscribe(s.query, "Last-Event-ID: "+last)
	} else {
		st = d.subscribe(s.query)
	}
	if st.Status != 200 {
		s.t.Fatalf("stream %s on %s: status %d", s.query, d.sse, st.Status)
	}
	closed := make(chan struct{})
	s.mu.Lock()
	if last != "" {
		s.replays = append(s.replays, st.Header.Get("X-Hasses-Replay"))
	}
	s.conn, s.closed = st.c, closed
	s.mu.Unlock()
	go func() {
		defer close(closed)
		for {
			st.c.SetReadDeadline(time.Now().Add(time.Minute))
			payload, err := st.chunk()
			if err != nil {
				return
			}
			ev := parseEvent(payload)
			s.mu.Lock()
			if ev.Comment {
				s.comments++
			} else if ev.HasData {
				s.events = append(s.events, ev)
			}
			if ev.ID != "" {
				s.lastID = ev.ID // the opening id block too, as EventSource
			}
			s.mu.Unlock()
		}
	}()
}

// close ends the current connection and waits for its reader.
func (s *sub) close() {
	s.mu.Lock()
	c, closed := s.conn, s.closed
	s.mu.Unlock()
	c.Close()
	<-closed
}

// dropped reports whether the current connection has ended.
func (s *sub) dropped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// got returns the events received so far.
func (s *sub) got() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}

// data returns the data of the events that are not hasses-reset.
func (s *sub) data() []string {
	var out []string
	for _, ev := range s.got() {
		if ev.Event != "hasses-reset" {
			out = append(out, ev.Data)
		}
	}
	return out
}

func (s *sub) heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.comments
}

func (s *sub) resets() int {
	n := 0
	for _, ev := range s.got() {
		if ev.Event == "hasses-reset" {
			n++
		}
	}
	return n
}

// waitCount waits until s has n events that are not resets.
func (s *sub) waitCount(n int, within time.Duration) {
	s.t.Helper()
	end := time.Now().Add(within)
	for len(s.data()) < n {
		if time.Now().After(end) {
			s.t.Fatalf("stream %s: %d events after %v, want %d", s.query, len(s.data()), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seqOf returns the sequence part of an event id.
func seqOf(t *testing.T, id string) uint64 {
	t.Helper()
	_, q, ok := strings.Cut(id, "-")
	n, err := strconv.ParseUint(q, 10, 64)
	if !ok || err != nil {
		t.Fatalf("bad id %q", id)
	}
	return n
}
