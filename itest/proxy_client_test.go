package itest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpStream is an SSE stream read as a browser does: through whatever
// HTTP framing the server (here, a proxy) chose, event by event.
type httpStream struct {
	t    testing.TB
	c    net.Conn // nil over HTTP/2
	resp *http.Response
	r    *bufio.Reader
	// deadline sets the read deadline (the conn's, or the request's
	// context's over HTTP/2).
	deadline func(time.Time)
}

// get sends a GET for target (path and query) on a new connection to addr
// with the extra header lines, and reads the response head.
func get(t testing.TB, addr, target string, headers ...string) (*httpStream, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	s := &httpStream{t: t, c: c, resp: resp, r: bufio.NewReader(resp.Body), deadline: func(d time.Time) { c.SetReadDeadline(d) }}
	return s, nil
}

// mustGet is get for one stream that must open with want.
func mustGet(t testing.TB, addr, target string, want int, headers ...string) *httpStream {
	t.Helper()
	s, err := get(t, addr, target, headers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	if s.resp.StatusCode != want {
		body, _ := io.ReadAll(io.LimitReader(s.resp.Body, 512))
		t.Fatalf("GET %s: %s %q, want %d", target, s.resp.Status, body, want)
	}
	return s
}

// getH2 opens a stream over HTTP/2 with TLS (what a browser does with a
// proxy that terminates TLS).
func getH2(t testing.TB, url string, pool *x509.CertPool) *httpStream {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	// The head must come at once, not with the first heartbeat (20 s).
	slow := time.AfterFunc(5*time.Second, cancel)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if !slow.Stop() || err != nil {
		t.Fatalf("no response head within 5 s: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	var mu sync.Mutex
	var timer *time.Timer
	s := &httpStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), deadline: func(d time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
		timer = time.AfterFunc(time.Until(d), cancel)
	}}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	})
	return s
}

func (s *httpStream) close() {
	if s.c != nil {
		s.c.Close()
	} else {
		s.resp.Body.Close()
	}
}

// next returns the next event (a block with data), skipping the stream's
// own blocks (opening id; comments and retry hints join an event's block);
// io.EOF when the body ended cleanly.
func (s *httpStream) next(timeout time.Duration) (event, error) {
	s.deadline(time.Now().Add(timeout))
	var block strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && block.Len() == 0 && line == "" {
				return event{}, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return event{}, err
		}
		if line != "\n" {
			block.WriteString(line)
			continue
		}
		if block.Len() == 0 {
			continue
		}
		ev := parseEvent(block.String() + "\n")
		block.Reset()
		if !ev.HasData {
			continue // the opening id
		}
		return ev, nil
	}
}

// expect reads one event and checks its data.
func (s *httpStream) expect(data string) event {
	s.t.Helper()
	ev, err := s.next(5 * time.Second)
	if err != nil {
		s.t.Fatalf("waiting for %q: %v", data, err)
	}
	if ev.Data != data {
		s.t.Fatalf("event %+v, want data %q", ev, data)
	}
	return ev
}

// clientLine is one connection as the clientlist command logs it.
type clientLine struct {
	Addr, State, Tokens string
}

var clientRE = regexp.MustCompile(`msg=client fd=\d+ addr="?([^"]*?)"? state=(\S+) .*tokens=(\S*)`)

// clients runs clientlist and returns the connections it logged.
func (d *daemon) clients() []clientLine {
	d.t.Helper()
	mark := fmt.Sprintf("mark-%d", time.Now().UnixNano())
	before := len(d.log.String())
	d.send("clientlist")
	d.send("subscribedclients:" + mark) // logs a line after the list: its end
	var out []clientLine
	waitFor(d.t, "the client list", func() bool { return strings.Contains(d.log.String()[before:], mark) })
	for _, line := range strings.Split(d.log.String()[before:], "\n") {
		if m := clientRE.FindStringSubmatch(line); m != nil {
			out = append(out, clientLine{Addr: m[1], State: m[2], Tokens: m[3]})
		}
	}
	return out
}

// openMany opens n streams to addr+target in parallel and returns them
// once all have answered 200.
func openMany(t *testing.T, addr, target string, n int, headers ...string) []*httpStream {
	t.Helper()
	streams := make([]*httpStream, n)
	errs := make(chan error, n)
	idx := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range idx {
				s, err := get(t, addr, target, headers...)
				if err == nil && s.resp.StatusCode != 200 {
					err = fmt.Errorf("stream %d: %s", i, s.resp.Status)
					s.close()
					s = nil
				}
				if err != nil {
					errs <- err
					continue
				}
				streams[i] = s
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, s := range streams {
			if s != nil {
				s.close()
			}
		}
	})
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		t.Fatalf("%d of %d streams failed to open; first: %v", len(all), n, errors.Join(all[:min(3, len(all))]...))
	}
	return streams
}

// expectAll checks that every stream receives data, reading them in
// parallel.
func expectAll(t *testing.T, streams []*httpStream, data string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(streams))
	for i, s := range streams {
		wg.Go(func() {
			ev, err := s.next(15 * time.Second)
			if err == nil && ev.Data != data {
				err = fmt.Errorf("got %+v", ev)
			}
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d streams missed %q; first: %v", n, len(streams), data, first)
	}
}

// relay is a plain TCP proxy on loopback, like nginx with the seed recipe
// as far as hasses can tell: every connection comes from 127.0.0.1 and
// names no client.
type relay struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func startRelay(t *testing.T, upstream string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, open: map[net.Conn]struct{}{}}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			r.track(c, u)
			r.wg.Go(func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() })
			r.wg.Go(func() { io.Copy(c, u); c.(*net.TCPConn).CloseWrite() })
		}
	})
	t.Cleanup(r.stop)
	return r
}

func (r *relay) track(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		r.open[c] = struct{}{}
	}
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) stop() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.open {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
