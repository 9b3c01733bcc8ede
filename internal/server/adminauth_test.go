package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/access"
)

func TestRedactArgs(t *testing.T) {
	in := []string{"hasses", "-ctl-secret=one", "--ctl-secret=two", "-ctl-secret", "three", "-ctl-secret-file=/etc/s", "-p=8080",
		"-cluster=redis://u:PASS@r:6379/0", "--cluster", "rediss://:PASS@r/1", "-cluster=redis://r/0"}
	want := []string{"hasses", "-ctl-secret=REDACTED", "--ctl-secret=REDACTED", "-ctl-secret", "REDACTED", "-ctl-secret-file=/etc/s", "-p=8080",
		"-cluster=redis://u:REDACTED@r:6379/0", "--cluster", "rediss://:REDACTED@r/1", "-cluster=redis://r/0"}
	if got := redactArgs(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("redactArgs = %q, want %q", got, want)
	}
}

func TestAdminLoginCookie(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	g := newAdminGuard(&access.Policy{Secret: testSecret}, nil, &access.Throttle{}, nil)
	g.now = func() time.Time { return now }
	ok := g.protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("in")) }))
	get := func(cookie *http.Cookie) int {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, r)
		return w.Code
	}
	login := func(secret string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"secret": {secret}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		g.login(w, r)
		return w
	}

	if w := login("wrong"); w.Code != 401 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("wrong secret: %d, cookies %v", w.Code, w.Result().Cookies())
	}
	w := login(testSecret)
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %v", w.Code, cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, testSecret) || c.Path != "/" {
		t.Fatalf("cookie %+v", c)
	}
	if code := get(c); code != 200 {
		t.Fatalf("with the cookie: %d", code)
	}
	if code := get(nil); code != 401 {
		t.Fatalf("without: %d", code)
	}
	forged := *c
	forged.Value = strings.Replace(c.Value, ".", "9.", 1) // a later expiry, same MAC
	if code := get(&forged); code != 401 {
		t.Fatalf("forged expiry: %d", code)
	}
	other := newAdminGuard(g.policy, nil, nil, nil) // another run of the server: another key
	if other.validCookie(requestWith(c)) {
		t.Fatal("a cookie from another run is accepted")
	}
	now = now.Add(adminSession + time.Second)
	if code := get(c); code != 401 {
		t.Fatalf("expired cookie: %d", code)
	}
}

// testSecret is a publisher secret long enough for the start-up check.
const testSecret = "test-secret-0123456789"

// Issue 16, item 13: the Bearer scheme in any letter case; logout revokes
// the session on the server, not only in the browser; the cookie is Secure
// behind a trusted proxy that says https. Item 7: wrong secrets are
// throttled per address.
func TestAdminGuard(t *testing.T) {
	proxies, _ := access.ParseProxies("127.0.0.1")
	g := newAdminGuard(&access.Policy{Secret: testSecret}, proxies, &access.Throttle{}, nil)
	h := g.protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("in")) }))
	get := func(remote string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		if w := get("10.0.0.1:1", "Authorization", scheme+" "+testSecret); w.Code != 200 {
			t.Errorf("%s: %d", scheme, w.Code)
		}
	}

	login := func(remote string, header ...string) *http.Cookie {
		r := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"secret": {testSecret}}.Encode()))
		r.RemoteAddr = remote
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		g.login(w, r)
		if len(w.Result().Cookies()) != 1 {
			t.Fatalf("login: %d", w.Code)
		}
		return w.Result().Cookies()[0]
	}
	if c := login("10.0.0.1:1", "X-Forwarded-Proto", "https"); c.Secure {
		t.Error("Secure from an untrusted peer's X-Forwarded-Proto")
	}
	if c := login("127.0.0.1:1", "X-Forwarded-Proto", "https"); !c.Secure {
		t.Error("not Secure behind a trusted proxy that says https")
	}
	c1, c2 := login("10.0.0.1:1"), login("10.0.0.1:1")
	cookie := func(c *http.Cookie) string { return c.Name + "=" + c.Value }
	r := httptest.NewRequest("POST", "/logout", nil)
	r.Header.Set("Cookie", cookie(c1))
	g.logout(httptest.NewRecorder(), r)
	if w := get("10.0.0.1:1", "Cookie", cookie(c1)); w.Code != 401 {
		t.Errorf("cookie after logout: %d, want 401", w.Code)
	}
	if w := get("10.0.0.1:1", "Cookie", cookie(c2)); w.Code != 200 {
		t.Errorf("another session after one logout: %d, want 200", w.Code)
	}

	for i := range access.SecretFailures {
		if w := get("10.0.0.2:1", "Authorization", "Bearer wrong"); w.Code != 401 {
			t.Fatalf("wrong secret %d: %d", i, w.Code)
		}
	}
	w := get("10.0.0.2:1", "Authorization", "Bearer "+testSecret)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Errorf("after %d wrong secrets: %d, Retry-After %q; want 429", access.SecretFailures, w.Code, w.Header().Get("Retry-After"))
	}
	if w := get("10.0.0.3:1", "Authorization", "Bearer "+testSecret); w.Code != 200 {
		t.Errorf("another address is throttled too: %d", w.Code)
	}
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	return r
}

// FuzzAdminCookie: a login cookie is accepted only if it is exactly what
// sign made for a future expiry.
func FuzzAdminCookie(f *testing.F) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	g := newAdminGuard(&access.Policy{Secret: testSecret}, nil, nil, nil)
	g.key = []byte("a fixed key for the fuzzer's seeds")
	g.now = func() time.Time { return now }
	f.Add(g.sign(now.Add(time.Hour)))
	f.Add(g.sign(now.Add(-time.Hour)))
	f.Add("1796100000.")
	f.Add(".")
	f.Add("-1.00." + g.mac("-1.00"))
	f.Add("+1796100000.00." + g.mac("+1796100000.00"))
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", adminCookie+"="+v)
		if !g.validCookie(r) {
			return
		}
		c, _ := r.Cookie(adminCookie)
		i := strings.LastIndexByte(c.Value, '.')
		e, _, _ := strings.Cut(c.Value, ".")
		exp, err := strconv.ParseInt(e, 10, 64)
		if err != nil || exp <= now.Unix() || i < 0 || c.Value != c.Value[:i]+"."+g.mac(c.Value[:i]) {
			t.Fatalf("accepted %q", c.Value)
		}
	})
}
