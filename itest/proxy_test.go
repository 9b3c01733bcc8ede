package itest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Behind a reverse proxy (issues 9 and 11). The recipes tested here are
// the ones docs/operations.md gives.

// proxyOnThisHost is the one option the proxy recipes of docs/operations.md
// name: the proxy on this host is trusted.
const proxyOnThisHost = "-trusted-proxies=127.0.0.1"

// TestManyStreamsThroughLoopbackProxy: with the proxy trusted, more than
// -max-conns-per-ip (1000) streams pass through a proxy on loopback that
// names no client (nginx with the seed recipe looks just like this to
// hasses). Before -trusted-proxies the 1,001st got 429.
func TestManyStreamsThroughLoopbackProxy(t *testing.T) {
	d := start(t, proxyOnThisHost)
	r := startRelay(t, d.sse)
	streams := openMany(t, r.addr(), "/sse?subscribe=many", 1001)
	waitFor(t, "1001 subscribers", func() bool {
		return strings.Contains(d.command("tcpsubscribedclients:many"), `"subscribedclients": 1001,`)
	})
	d.send("many=to all")
	expectAll(t, streams, "to all")
	if strings.Contains(d.log.String(), "refused") {
		t.Errorf("refusals logged:\n%s", d.log.String())
	}
}

// TestForwardedClientCap: a trusted proxy's streams count against the
// client its X-Forwarded-For names; the refusal is logged with that
// client; clientlist shows it; a closed stream frees its place; an IPv6
// /64 is one address.
func TestForwardedClientCap(t *testing.T) {
	d := start(t, "-max-conns-per-ip=2", proxyOnThisHost)
	xff := func(a string) string { return "X-Forwarded-For: 198.51.100.99, " + a } // the left part is the client's own claim
	a1 := d.subscribe("?subscribe=t", xff("203.0.113.7"))
	d.subscribe("?subscribe=t", xff("203.0.113.7"))
	if s := d.subscribe("?subscribe=t", xff("203.0.113.7")); s.Status != 429 {
		t.Errorf("3rd stream of 203.0.113.7 behind the proxy: %d, want 429", s.Status)
	}
	if s := d.subscribe("?subscribe=t", xff("203.0.113.8")); s.Status != 200 {
		t.Errorf("another client behind the proxy: %d", s.Status)
	}
	for range 3 { // the proxy's own requests (no header) are not capped
		if s := d.subscribe("?subscribe=t"); s.Status != 200 {
			t.Errorf("request naming no client: %d", s.Status)
		}
	}
	// IPv6: one /64 is one address.
	d.subscribe("?subscribe=t", "Forwarded: for=\"[2001:db8:1:2::1]:5000\"")
	d.subscribe("?subscribe=t", "X-Real-IP: 2001:db8:1:2:aaaa::2")
	if s := d.subscribe("?subscribe=t", xff("2001:db8:1:2:ffff::3")); s.Status != 429 {
		t.Errorf("3rd stream of one IPv6 /64: %d, want 429", s.Status)
	}
	if s := d.subscribe("?subscribe=t", xff("2001:db8:1:3::1")); s.Status != 200 {
		t.Errorf("the next /64: %d", s.Status)
	}

	waitFor(t, "the refusal log line", func() bool {
		return strings.Contains(d.log.String(), `msg="refused 1 stream: per-address cap (429), last from 203.0.113.7 via 127.0.0.1:`)
	})
	var seen bool
	for _, c := range d.clients() {
		seen = seen || (strings.HasPrefix(c.Addr, "203.0.113.7 via 127.0.0.1:") && c.State == "streaming")
	}
	if !seen {
		t.Errorf("clientlist does not name the forwarded client:\n%s", tail(d.log.String(), 3000))
	}
	// A closed stream frees its client's place.
	a1.c.Close()
	waitFor(t, "the place to be freed", func() bool {
		s, err := get(t, d.sse, "/sse?subscribe=t", xff("203.0.113.7"))
		if err != nil {
			t.Fatal(err)
		}
		defer t.Cleanup(s.close)
		return s.resp.StatusCode == 200
	})
}

// Issue 16, item 3: by default nobody is trusted, loopback included: behind
// a same-host TCP relay (stunnel, haproxy mode tcp, ssh -L), which adds no
// header, a remote client cannot pick its own address with
// X-Forwarded-For, and the relay is capped like any address. The start-up
// log says whose headers are trusted.
func TestRelayNotTrustedByDefault(t *testing.T) {
	d := start(t, "-max-conns-per-ip=3")
	r := startRelay(t, d.sse)
	for i := range 3 {
		mustGet(t, r.addr(), "/sse?subscribe=t", 200, fmt.Sprintf("X-Forwarded-For: 203.0.113.%d", i))
	}
	mustGet(t, r.addr(), "/sse?subscribe=t", 429, "X-Forwarded-For: 203.0.113.9")
	if !strings.Contains(d.log.String(), "trusted proxies: none; X-Forwarded-For, Forwarded and X-Real-IP are ignored") {
		t.Error("the start-up log does not say that no proxy is trusted")
	}
	for _, c := range d.clients() {
		if strings.Contains(c.Addr, "203.0.113.") {
			t.Errorf("clientlist shows a forged address: %s", c.Addr)
		}
	}
}

// Issue 16, item 3: a trusted proxy's requests that name no client are
// capped by -max-conns-per-proxy, those that name one by the client's cap.
func TestPerProxyCap(t *testing.T) {
	d := start(t, proxyOnThisHost, "-max-conns-per-proxy=3", "-max-conns-per-ip=2")
	if !strings.Contains(d.log.String(), "trusted_proxies=127.0.0.1/32 max_conns_per_proxy=3") {
		t.Error("the start-up log does not name the trusted proxies and their cap")
	}
	first := d.subscribe("?subscribe=t")
	d.subscribe("?subscribe=t")
	d.subscribe("?subscribe=t", "X-Forwarded-For: 127.0.0.1") // names only a trusted proxy: no client
	if s := d.subscribe("?subscribe=t"); s.Status != 429 {
		t.Errorf("4th stream naming no client: %d, want 429", s.Status)
	}
	if s := d.subscribe("?subscribe=t", "X-Forwarded-For: 203.0.113.7"); s.Status != 200 {
		t.Errorf("a stream naming its client: %d, want 200", s.Status)
	}
	waitFor(t, "the refusal log line", func() bool {
		return strings.Contains(d.log.String(), `refused 1 stream: per-proxy cap (429), last from 127.0.0.1:`)
	})
	first.c.Close()
	waitFor(t, "the place to be freed", func() bool {
		s, err := get(t, d.sse, "/sse?subscribe=t")
		if err != nil {
			t.Fatal(err)
		}
		defer t.Cleanup(s.close)
		return s.resp.StatusCode == 200
	})
}

// TestForwardedIgnoredWithoutTrust: with -trusted-proxies=none the headers
// are ignored and loopback is capped like any address.
func TestForwardedIgnoredWithoutTrust(t *testing.T) {
	d := start(t, "-max-conns-per-ip=2", "-trusted-proxies=none")
	d.subscribe("?subscribe=t", "X-Forwarded-For: 203.0.113.1")
	d.subscribe("?subscribe=t", "X-Forwarded-For: 203.0.113.2")
	if s := d.subscribe("?subscribe=t", "X-Forwarded-For: 203.0.113.3"); s.Status != 429 {
		t.Errorf("3rd stream from 127.0.0.1 with forged headers: %d, want 429", s.Status)
	}
	waitFor(t, "the refusal log line", func() bool {
		return strings.Contains(d.log.String(), `msg="refused 1 stream: per-address cap (429), last from 127.0.0.1"`)
	})
}

func TestBehindNginx(t *testing.T)  { testBehindProxy(t, "nginx", startNginx) }
func TestBehindApache(t *testing.T) { testBehindProxy(t, "apache2", startApache) }

func testBehindProxy(t *testing.T, bin string, run func(*testing.T, string, proxyVars) *proxyProc) {
	path, err := exec.LookPath(bin)
	if err != nil {
		if path, err = exec.LookPath("/usr/sbin/" + bin); err != nil { // root's PATH may lack it
			t.Skipf("%s is not installed (.ci/run installs it)", bin)
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the proxy's workers run as nobody when started by root
	cert, key, pool := writeCert(t, dir)
	os.Chmod(key, 0o644)              // read by the workers only where the master does not
	main := start(t, proxyOnThisHost) // default options but the one the recipes name
	hb := start(t, "-heartbeat=1s", "-max-conns-per-ip=2", proxyOnThisHost)
	ka := start(t, "-ra", "-lifetime=2s", proxyOnThisHost)
	p := run(t, path, proxyVars{Dir: dir, Port: freePort(t), TLSPort: freePort(t), ShortPort: freePort(t), Cert: cert, Key: key,
		Main: main.sse, HB: hb.sse, KA: ka.sse, Root: os.Geteuid() == 0})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s error log:\n%s\n%s", bin, p.errors(), p.output())
		}
	})

	t.Run("unbuffered", func(t *testing.T) {
		s := mustGet(t, p.addr, "/sse?subscribe=fast", 200)
		if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		main.send("fast=now")
		if ev, err := s.next(time.Second); err != nil || ev.Data != "now" {
			t.Fatalf("event not through within 1 s: %+v %v", ev, err)
		}
	})

	t.Run("1100 subscribers", func(t *testing.T) {
		streams := openMany(t, p.addr, "/sse?subscribe=many", 1100)
		if got := main.command("tcpsubscribedclients:many"); !strings.Contains(got, `"subscribedclients": 1100,`) {
			t.Fatalf("hasses counts %s", got)
		}
		main.send("many=to all 1100")
		expectAll(t, streams, "to all 1100")
		if strings.Contains(main.log.String(), "refused") {
			t.Errorf("refusals logged:\n%s", tail(main.log.String(), 2000))
		}
	})

	t.Run("heartbeat outlives the read timeout", func(t *testing.T) {
		// Both proxy locations time out after 3 s without upstream data;
		// only the stream from hasses -heartbeat=1s survives.
		kept := mustGet(t, p.shortAddr, "/hb/sse?subscribe=idle", 200)
		cut := mustGet(t, p.shortAddr, "/nohb/sse?subscribe=idle", 200)
		begin := time.Now()
		ev, err := cut.next(15 * time.Second)
		if err == nil || isTimeout(err) || time.Since(begin) < 2*time.Second {
			t.Fatalf("without heartbeats the proxy should cut the idle stream after 3 s: %+v %v after %v", ev, err, time.Since(begin))
		}
		time.Sleep(time.Until(begin.Add(4 * time.Second))) // well past the timeout
		hb.send("idle=still here")
		if ev, err := kept.next(2 * time.Second); err != nil || ev.Data != "still here" {
			t.Fatalf("stream with heartbeats after %v idle: %+v %v", time.Since(begin), ev, err)
		}
	})

	t.Run("Last-Event-ID", func(t *testing.T) {
		s := mustGet(t, p.addr, "/sse?subscribe=replay", 200)
		main.send("replay=1;replay=2;replay=3")
		first := s.expect("1")
		s.expect("2")
		s.expect("3")
		s.close()
		again := mustGet(t, p.addr, "/sse?subscribe=replay", 200, "Last-Event-ID: "+first.ID)
		if got := again.resp.Header.Get("X-Hasses-Replay"); got == "" {
			t.Errorf("no X-Hasses-Replay header: %v", again.resp.Header)
		}
		again.expect("2")
		again.expect("3")
	})

	t.Run("X-Forwarded-For", func(t *testing.T) {
		// The proxy appends the address it received from (127.0.0.1, a
		// trusted proxy), so the client is the address before it.
		client := map[string]string{"nginx": "203.0.113.7", "apache2": "203.0.113.8"}[bin]
		h := "X-Forwarded-For: " + client
		mustGet(t, p.shortAddr, "/hb/sse?subscribe=xff", 200, h)
		mustGet(t, p.shortAddr, "/hb/sse?subscribe=xff", 200, h)
		mustGet(t, p.shortAddr, "/hb/sse?subscribe=xff", 429, h) // the 429 passes through too
		mustGet(t, p.shortAddr, "/hb/sse?subscribe=xff", 200, "X-Forwarded-For: 203.0.113.99")
		waitFor(t, "the refusal log line", func() bool {
			return strings.Contains(hb.log.String(), `msg="refused 1 stream: per-address cap (429), last from `+client+` via 127.0.0.1:`)
		})
		n := 0
		for _, c := range hb.clients() {
			if strings.HasPrefix(c.Addr, client+" via 127.0.0.1:") && c.Tokens == "xff" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("clientlist shows %d streams of %s, want 2:\n%s", n, client, tail(hb.log.String(), 2000))
		}
	})

	t.Run("errors pass through", func(t *testing.T) {
		mustGet(t, p.addr, "/sse", 400)
		mustGet(t, p.addr, "/sse/nope?subscribe=a", 404)
	})

	t.Run("keep-alive reuse", func(t *testing.T) {
		// A stream that ends at its lifetime leaves a connection the proxy
		// keeps and sends the next request on.
		s := mustGet(t, p.addr, "/ka/sse?subscribe=k1", 200)
		first := streamingAddr(t, ka, "k1")
		if _, err := s.next(5 * time.Second); err != io.EOF {
			t.Fatalf("stream did not end cleanly at its lifetime: %v", err)
		}
		s2 := mustGet(t, p.addr, "/ka/sse?subscribe=k2", 200)
		second := streamingAddr(t, ka, "k2")
		ka.send("k2=on a reused connection")
		s2.expect("on a reused connection")
		switch {
		case first == second:
		case bin == "nginx":
			t.Errorf("nginx opened a new upstream connection (%s, then %s): not reused", first, second)
		default:
			// Apache pools upstream connections per child process, and the
			// second request may be served by another child.
			t.Logf("%s used another upstream connection (%s, then %s)", bin, first, second)
		}
	})

	t.Run("HTTP/2 to the browser", func(t *testing.T) {
		s := getH2(t, "https://"+p.tlsAddr+"/sse?subscribe=h2", pool)
		if s.resp.StatusCode != 200 || s.resp.ProtoMajor != 2 {
			t.Fatalf("%s %s", s.resp.Proto, s.resp.Status)
		}
		main.send("h2=over HTTP/2")
		if ev, err := s.next(time.Second); err != nil || ev.Data != "over HTTP/2" {
			t.Fatalf("event not through within 1 s: %+v %v", ev, err)
		}
	})

	if bin == "nginx" {
		t.Run("HTTP/1.0 upstream", func(t *testing.T) {
			// Without proxy_http_version nginx sends HTTP/1.0 requests.
			s := mustGet(t, p.addr, "/h10/sse?subscribe=h10", 200)
			main.send("h10=over HTTP/1.0")
			if ev, err := s.next(time.Second); err != nil || ev.Data != "over HTTP/1.0" {
				t.Fatalf("event not through within 1 s: %+v %v", ev, err)
			}
		})
	}
}

// streamingAddr returns the upstream address of the one stream of token.
func streamingAddr(t *testing.T, d *daemon, token string) string {
	t.Helper()
	var found []string
	for _, c := range d.clients() {
		if c.Tokens == token && c.State == "streaming" {
			found = append(found, c.Addr)
		}
	}
	if len(found) != 1 {
		t.Fatalf("streams of %s: %v", token, found)
	}
	return found[0]
}
