package itest

import (
	"bufio"
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
	const files, perAddr = 1000, 64
	d := startWrapped(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", files, files)}, start,
		"-admin=127.0.0.1:0", "-pub=127.0.0.1:0")
	// Under a small file limit, each listener gets an eighth of it.
	m := regexp.MustCompile(`http_max_conns=(\d+) reserved_http=(\d+)`).FindStringSubmatch(d.log.String())
	if m == nil || m[1] != "125" || m[2] != "250" {
		t.Fatalf("connection limit log line: %v", m)
	}
	total := 125
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

// Issue 16, items 7 and 13: a short secret is refused at start; wrong
// secrets are throttled per address on the publish API and the admin
// listener alike (one count), and logged; the admin listener takes the
// Bearer scheme in any letter case.
func TestSecretGuessing(t *testing.T) {
	code, _, errOut := runHasses(t, nil, "-nodaemon", "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-ctl-secret=s3cret")
	if code == 0 || !strings.Contains(errOut, "at least 16") {
		t.Errorf("-ctl-secret=s3cret: exit %d, %q", code, errOut)
	}
	const secret = "test-secret-0123456789"
	d := start(t, "-admin=127.0.0.1:0", "-pub=127.0.0.1:0", "-ctl-secret="+secret)
	if code, _, _ := adminGet(t, d, "/metrics", "Authorization", "bearer "+secret); code != 200 {
		t.Errorf("admin with lower-case bearer: %d", code)
	}
	publish := func(auth string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+d.pub+"/publish", strings.NewReader(`{"token":"a","data":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 5 {
		if code, _ := publish("Bearer wrong"); code != 401 {
			t.Fatalf("wrong secret %d: %d", i, code)
		}
		if code, _, _ := adminGet(t, d, "/metrics", "Authorization", "Bearer wrong"); code != 401 {
			t.Fatalf("wrong admin secret %d: %d", i, code)
		}
	}
	if code, retry := publish("Bearer " + secret); code != 429 || retry == "" {
		t.Errorf("after 10 wrong secrets: %d, Retry-After %q", code, retry)
	}
	if code, _, _ := adminGet(t, d, "/metrics", "Authorization", "Bearer "+secret); code != 429 {
		t.Errorf("admin after 10 wrong secrets: %d", code)
	}
	if code, _, _ := adminGetFrom(t, d, "127.0.0.2", "/metrics", "Authorization", "Bearer "+secret); code != 200 {
		t.Errorf("another address: %d", code)
	}
	for _, want := range []string{"wrong publisher secret (401)", "too many wrong secrets (429)"} {
		if !strings.Contains(d.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// Issue 16, item 12: the profiler's command line and the log never show
// the Redis password of -cluster, not even for a malformed URL.
func TestClusterPasswordHidden(t *testing.T) {
	const pw = "Pa55word-in-url"
	for _, bad := range []string{"redis://u:" + pw + "@[::1/0", "redis://u:" + pw + "@h:port/0", "http://u:" + pw + "@h/0"} {
		code, out, errOut := runHasses(t, nil, "-nodaemon", "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-cluster="+bad)
		if code == 0 || strings.Contains(out+errOut, pw) || !strings.Contains(errOut, "REDACTED") {
			t.Errorf("-cluster=%s: exit %d, %q", bad, code, out+errOut)
		}
	}
	const secret = "test-secret-0123456789"
	d := start(t, "-admin=127.0.0.1:0", "-ctl-secret="+secret, "-pprof", "-cluster=redis://u:"+pw+"@127.0.0.1:1/0")
	code, body, _ := adminGet(t, d, "/debug/pprof/cmdline", "Authorization", "Bearer "+secret)
	if code != 200 || strings.Contains(body, pw) || !strings.Contains(body, "-cluster=redis://u:REDACTED@127.0.0.1:1/0") {
		t.Errorf("/debug/pprof/cmdline: %d %q", code, body)
	}
	if strings.Contains(d.log.String(), pw) {
		t.Error("the log shows the password")
	}
}
