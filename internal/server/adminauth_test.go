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
	in := []string{"hasses", "-ctl-secret=s3cret", "--ctl-secret=two", "-ctl-secret", "three", "-ctl-secret-file=/etc/s", "-p=8080"}
	want := []string{"hasses", "-ctl-secret=REDACTED", "--ctl-secret=REDACTED", "-ctl-secret", "REDACTED", "-ctl-secret-file=/etc/s", "-p=8080"}
	if got := redactArgs(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("redactArgs = %q, want %q", got, want)
	}
}

func TestAdminLoginCookie(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	g := newAdminGuard(&access.Policy{Secret: "s3cret"})
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
	w := login("s3cret")
	cookies := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cookies) != 1 {
		t.Fatalf("login: %d, cookies %v", w.Code, cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, "s3cret") || c.Path != "/" {
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
	other := newAdminGuard(g.policy) // another run of the server: another key
	if other.validCookie(requestWith(c)) {
		t.Fatal("a cookie from another run is accepted")
	}
	now = now.Add(adminSession + time.Second)
	if code := get(c); code != 401 {
		t.Fatalf("expired cookie: %d", code)
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
	g := newAdminGuard(&access.Policy{Secret: "s3cret"})
	g.key = []byte("a fixed key for the fuzzer's seeds")
	g.now = func() time.Time { return now }
	f.Add(g.sign(now.Add(time.Hour)))
	f.Add(g.sign(now.Add(-time.Hour)))
	f.Add("1796100000.")
	f.Add(".")
	f.Add("-1." + g.mac("-1"))
	f.Add("+1796100000." + g.mac("+1796100000"))
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", adminCookie+"="+v)
		if !g.validCookie(r) {
			return
		}
		c, _ := r.Cookie(adminCookie)
		e, _, _ := strings.Cut(c.Value, ".")
		exp, err := strconv.ParseInt(e, 10, 64)
		if err != nil || exp <= now.Unix() || c.Value != e+"."+g.mac(e) {
			t.Fatalf("accepted %q", c.Value)
		}
	})
}
