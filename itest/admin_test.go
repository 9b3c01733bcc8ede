package itest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestAdminMetricsAndHealth(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-pub=127.0.0.1:0")
	s := d.subscribe("?subscribe=m")
	d.send("m=one;m=two")
	s.expect("one", "two")
	http.Post("http://"+d.pub+"/publish", "application/json", strings.NewReader(`{"token":"m","data":"`+strings.Repeat("x", 70000)+`"}`))

	get := func(path string) string {
		resp, err := http.Get("http://" + d.adm + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("healthz %q", got)
	}
	// Without a secret, loopback (a private network) gets in without logging in.
	if got := get("/"); !strings.Contains(got, "live dashboard") || !strings.Contains(got, `src="dashboard/app.js"`) {
		t.Errorf("/ without a secret: %q", tail(got, 300))
	}
	m := get("/metrics")
	for _, want := range []string{
		"hasses_streams 1", "hasses_deliveries_total 2", "hasses_published_total 2",
		`hasses_publish_refused_total{reason="too_large",source="http"} 1`, `hasses_publications_total{source="control"} 2`, "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// adminGet requests path on the admin listener with the given headers and
// returns the status and body.
func adminGet(t *testing.T, d *daemon, path string, headers ...string) (int, string, http.Header) {
	t.Helper()
	return adminGetFrom(t, d, "", path, headers...)
}

// adminGetFrom is adminGet from the loopback address src (127.0.0.N): wrong
// secrets are throttled per address.
func adminGetFrom(t *testing.T, d *daemon, src, path string, headers ...string) (int, string, http.Header) {
	t.Helper()
	client := http.DefaultClient
	if src != "" {
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		client = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
		defer client.CloseIdleConnections()
	}
	req, err := http.NewRequest("GET", "http://"+d.adm+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// adminBound is the admin address as the server logged it (the harness
// rewrites it to loopback to connect).
func adminBound(t *testing.T, d *daemon) string {
	t.Helper()
	m := regexp.MustCompile(`msg="hasses started".* admin=(\S*)`).FindStringSubmatch(d.log.String())
	if m == nil {
		t.Fatalf("no admin address in the log:\n%s", d.log.String())
	}
	return m[1]
}

// Issue 9: a bare -admin=PORT binds loopback; all interfaces must be asked
// for with :PORT or 0.0.0.0:PORT.
func TestAdminBarePortBindsLoopback(t *testing.T) {
	d := start(t, "-admin=0")
	if host, _, _ := net.SplitHostPort(adminBound(t, d)); host != "127.0.0.1" {
		t.Errorf("-admin=PORT bound %s, want 127.0.0.1", adminBound(t, d))
	}
	d = start(t, "-admin=:0")
	if host, _, _ := net.SplitHostPort(adminBound(t, d)); host != "::" && host != "0.0.0.0" {
		t.Errorf("-admin=:PORT bound %s, want all interfaces", adminBound(t, d))
	}
}

// Issue 9: with a secret, everything on the admin listener but /healthz
// needs it; the profiler is off unless asked for.
func TestAdminNeedsTheSecret(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-ctl-secret=test-secret-0123456789")
	if code, body, _ := adminGet(t, d, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz without the secret: %d %q, want 200 \"ok\\n\"", code, body)
	}
	for i, path := range []string{"/metrics", "/", "/dashboard/events", "/dashboard/app.js", "/debug/pprof/cmdline"} {
		src := fmt.Sprintf("127.0.0.%d", i+2) // wrong secrets are throttled per address
		for _, auth := range []string{"", "Bearer wrong", "Basic dGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==", "test-secret-0123456789"} {
			code, body, h := adminGetFrom(t, d, src, path, "Authorization", auth)
			if code != 401 {
				t.Errorf("%s with Authorization %q: %d, want 401", path, auth, code)
			}
			if strings.Contains(body, "test-secret-0123456789") || strings.Contains(body, "hasses_") {
				t.Errorf("%s with Authorization %q reveals: %q", path, auth, tail(body, 300))
			}
			if path != "/" && h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", path)
			}
		}
	}
	// A browser at / gets the login form.
	if code, body, _ := adminGet(t, d, "/"); code != 401 || !strings.Contains(body, `action="login"`) {
		t.Errorf("/ without the secret: %d, no login form:\n%s", code, body)
	}
	bearer := []string{"Authorization", "Bearer test-secret-0123456789"}
	if code, body, _ := adminGet(t, d, "/metrics", bearer...); code != 200 || !strings.Contains(body, "hasses_streams 0") {
		t.Errorf("/metrics with the secret: %d %q", code, tail(body, 200))
	}
	if code, body, _ := adminGet(t, d, "/", bearer...); code != 200 || !strings.Contains(body, "dashboard") {
		t.Errorf("/ with the secret: %d %q", code, tail(body, 200))
	}
	// Without -pprof there is no profiler, not even for the secret's holder:
	// its command line would show the secret.
	if code, body, _ := adminGet(t, d, "/debug/pprof/cmdline", bearer...); code != 404 {
		t.Errorf("/debug/pprof/cmdline without -pprof: %d %q, want 404", code, tail(body, 200))
	}
}

// Issue 9: -pprof turns the profiler on, behind the secret, and its command
// line does not show the secret.
func TestAdminPprofOptIn(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-ctl-secret=test-secret-0123456789", "-pprof")
	if code, _, _ := adminGet(t, d, "/debug/pprof/cmdline"); code != 401 {
		t.Errorf("/debug/pprof/cmdline without the secret: %d, want 401", code)
	}
	code, body, _ := adminGet(t, d, "/debug/pprof/cmdline", "Authorization", "Bearer test-secret-0123456789")
	if code != 200 || strings.Contains(body, "test-secret-0123456789") || !strings.Contains(body, "-ctl-secret=REDACTED") {
		t.Errorf("/debug/pprof/cmdline: %d %q", code, body)
	}
	if code, body, _ := adminGet(t, d, "/debug/pprof/", "Authorization", "Bearer test-secret-0123456789"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", code)
	}
}

// Issue 9: the publisher allow-list guards the admin listener too (here it
// leaves loopback out); /healthz stays open to load balancers.
func TestAdminAllowList(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-ctl-allow=10.0.0.0/8", "-pprof")
	if code, body, _ := adminGet(t, d, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz from outside the allow-list: %d %q", code, body)
	}
	for _, path := range []string{"/metrics", "/", "/dashboard/events", "/debug/pprof/cmdline"} {
		if code, _, _ := adminGet(t, d, path); code != 403 {
			t.Errorf("%s from outside the allow-list: %d, want 403", path, code)
		}
	}
}

// The login form turns the secret into an HttpOnly, SameSite=Strict cookie
// that lets EventSource (which cannot send headers) into the live feed.
func TestAdminLogin(t *testing.T) {
	d := start(t, "-admin=127.0.0.1:0", "-ctl-secret=test-secret-0123456789")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(secret string) *http.Response {
		resp, err := noRedirect.PostForm("http://"+d.adm+"/login", url.Values{"secret": {secret}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post("nope"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong secret: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := post("test-secret-0123456789")
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Header.Get("Location") != "./" {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	set := resp.Header.Get("Set-Cookie")
	if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || strings.Contains(set, "test-secret-0123456789") {
		t.Fatalf("Set-Cookie: %s", set)
	}
	cookie := resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	if code, _, _ := adminGet(t, d, "/metrics", "Cookie", cookie); code != 200 {
		t.Errorf("/metrics with the login cookie: %d", code)
	}
	req, _ := http.NewRequest("GET", "http://"+d.adm+"/dashboard/events", nil)
	req.Header.Set("Cookie", cookie)
	ev, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Body.Close()
	line, _ := bufio.NewReader(ev.Body).ReadString('\n')
	if ev.StatusCode != 200 || ev.Header.Get("Content-Type") != "text/event-stream" || line != "retry: 2000\n" {
		t.Fatalf("/dashboard/events with the login cookie: %d %q %q", ev.StatusCode, ev.Header.Get("Content-Type"), line)
	}
}
