package itest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/internal/refusal"
)

// hassesPage loads /hasses.js from the SSE port and records what a page
// would see. getToken fetches a fresh token from the page's own server.
const hassesPage = `<!doctype html>
<script src="http://%[1]s/hasses.js"></script>
<script>
window.got = []; window.resets = []; window.states = []; window.expiring = [];
window.h = new Hasses("http://%[3]s/sse?subscribe=t", {
  retry: 300,
  onmessage: (e) => window.got.push(e.data),
  onreset: (reason) => window.resets.push(reason),
  onstatechange: (s) => window.states.push(s),
  %[2]s
});
window.h.addEventListener("update", (e) => window.got.push("update:" + e.data));
window.h.addEventListener("hasses-expiring", (e) => window.expiring.push(e.data));
</script>`

// TestHassesJS runs the page helper in headless Chromium: resume across a
// page reload, named events, a reset after a server restart, a cut in the
// middle of an event, and token renewal when the stream's token expires
// and when the server announces it (hasses-expiring).
func TestHassesJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bctx := newChromium(t, ctx)
	var tokens atomic.Int64
	var tokenLife atomic.Int64 // of the tokens handed out, in nanoseconds
	tokenLife.Store(int64(3 * time.Second))
	// onToken runs before a token is handed out; false answers 503.
	var onToken atomic.Pointer[func() bool]
	pages := ""
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, pages)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		if fn := onToken.Load(); fn != nil && !(*fn)() {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			http.Error(w, "token service down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		fmt.Fprint(w, token(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{
			"subscribe": []string{"t"}, "exp": time.Now().Add(time.Duration(tokenLife.Load())).Unix(),
		}))
	})
	ps := httptest.NewServer(mux)
	defer ps.Close()

	eval := func(expr string) []string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	waitGot := func(what string, want ...string) {
		t.Helper()
		var got []string
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if got = eval("window.got"); len(got) >= len(want) {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: the page got %q, want %q", what, got, want)
		}
	}
	subscribed := func(d *daemon) {
		t.Helper()
		// After a restart the browser waits the drain's retry (up to 5 s).
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(d.command("tcpsubscribedclients:t"), `"subscribedclients": 1,`) {
				return
			}
		}
		t.Fatal("the page did not subscribe")
	}

	t.Run("reload, named events, restart", func(t *testing.T) {
		d := start(t, "-retry=300ms")
		pages = fmt.Sprintf(hassesPage, d.sse, "", d.sse)
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		subscribed(d)
		d.send("t=a1\n")
		d.send("t#update=a2\n")
		waitGot("live", "a1", "update:a2")

		// Away from the page (sessionStorage stays with the tab) while
		// events are published; back, the helper resumes after a2.
		if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the page to leave", func() bool {
			return strings.Contains(d.command("tcpsubscribedclients:t"), `"subscribedclients": 0,`)
		})
		d.send("t=a3\n")
		d.send("t=a4\n")
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		waitGot("after a reload", "a3", "a4")
		if r := eval("window.resets"); len(r) != 0 {
			t.Errorf("resets %q after a reload with a complete replay", r)
		}
		if s := eval("[window.h.state, window.h.lastEventId]"); s[0] != "open" || !strings.HasSuffix(s[1], "-4") {
			t.Errorf("state, lastEventId = %q, want open and the id of a4", s)
		}

		// A server restart: the id is from the previous run, so the page
		// gets one reset, then the new run's events.
		port := d.sse[strings.LastIndex(d.sse, ":")+1:]
		d.stop()
		d2 := start(t, "-retry=300ms", "-p=127.0.0.1:"+port)
		subscribed(d2)
		d2.send("t=b1\n")
		waitGot("after a restart", "a3", "a4", "b1")
		if r := eval("window.resets"); !slices.Equal(r, []string{"unknown"}) {
			t.Errorf("resets %q after a restart, want one unknown", r)
		}
	})

	t.Run("cut mid-event", func(t *testing.T) {
		d := start(t, "-retry=300ms")
		p := newCutProxy(t, d.sse)
		pages = fmt.Sprintf(hassesPage, d.sse, "", p.addr())
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		subscribed(d)
		d.send("t=x1\n")
		waitGot("live", "x1")
		p.arm(cutMidEvent, "data: x2", func() { d.send("t=x3\n") })
		d.send("t=x2\n")
		waitGot("after a cut in the middle of x2", "x1", "x2", "x3")
		if !p.resumed(1) {
			t.Errorf("reconnected without the last id:\n%s", p.describe())
		}
	})

	t.Run("token renewal", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "jwt.key")
		os.WriteFile(keyFile, []byte(jwtSecret), 0o600)
		// Without hasses-expiring: the stream runs until its token expires.
		d := start(t, "-jwt-secret-file="+keyFile, "-retry=300ms", "-jwt-renew-before=0")
		before := tokens.Load()
		pages = fmt.Sprintf(hassesPage, d.sse, `getToken: () => fetch("/token").then((r) => r.text()),`, d.sse)
		// A fresh tab: no id stored from the other subtest's origin port.
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		subscribed(d)
		d.send("t=c1\n")
		waitGot("live", "c1")
		// The token expires after 3 s: the stream ends, the reconnection is
		// refused (401) and the helper reopens with a new token and the last
		// id; what was published meanwhile arrives.
		time.Sleep(3200 * time.Millisecond)
		d.send("t=c2\n")
		waitGot("after the token expired", "c1", "c2")
		if n := tokens.Load() - before; n < 2 {
			t.Errorf("%d tokens fetched, want a renewal", n)
		}
		if r := eval("window.resets"); len(r) != 0 {
			t.Errorf("resets %q across a token renewal", r)
		}
	})

	t.Run("renewal on hasses-expiring", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "jwt.key")
		os.WriteFile(keyFile, []byte(jwtSecret), 0o600)
		d := start(t, "-jwt-secret-file="+keyFile, "-retry=300ms", "-jwt-renew-before=2s")
		tokenLife.Store(int64(4 * time.Second))
		before := tokens.Load()
		pages = fmt.Sprintf(hassesPage, d.sse, `getToken: () => fetch("/token").then((r) => r.text()),`, d.sse)
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		subscribed(d)
		d.send("t=e1\n")
		waitGot("live", "e1")
		// At the first renewal (2-3 s later, on hasses-expiring), e2 is
		// published while the page waits for its new token.
		var once sync.Once
		renewing := func() bool { once.Do(func() { d.send("t=e2\n") }); return true }
		onToken.Store(&renewing)
		defer onToken.Store(nil)
		waitGot("after the first renewal", "e1", "e2")
		waitFor(t, "a second renewal", func() bool { return tokens.Load()-before >= 3 })
		d.send("t=e3\n")
		waitGot("after the second renewal", "e1", "e2", "e3")
		if x := eval("window.expiring"); len(x) < 2 || !strings.HasPrefix(x[0], `{"exp":`) {
			t.Errorf("hasses-expiring events seen %q, want one per token", x)
		}
		if r := eval("window.resets"); len(r) != 0 {
			t.Errorf("resets %q across a token renewal", r)
		}
		// Renewed ahead of time: no stream outlived its token.
		if strings.Contains(d.log.String(), string(refusal.Unauthorized)) {
			t.Errorf("a stream was refused for its token: the renewal came too late")
		}
	})

	t.Run("renewal fails on hasses-expiring", func(t *testing.T) {
		keyFile := filepath.Join(t.TempDir(), "jwt.key")
		os.WriteFile(keyFile, []byte(jwtSecret), 0o600)
		d := start(t, "-jwt-secret-file="+keyFile, "-retry=300ms", "-jwt-renew-before=2s")
		tokenLife.Store(int64(4 * time.Second))
		before := tokens.Load()
		pages = fmt.Sprintf(hassesPage, d.sse, `getToken: () => fetch("/token").then((r) => r.ok ? r.text() : Promise.reject(r.status)),`, d.sse)
		if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
			t.Fatal(err)
		}
		subscribed(d)
		d.send("t=f1\n")
		waitGot("live", "f1")
		// The renewal ahead of the expiry fails: the stream runs on until
		// its token expires (a refusal follows), then the helper renews.
		var once sync.Once
		failFirst := func() bool {
			first := false
			once.Do(func() { first = true })
			return !first
		}
		onToken.Store(&failFirst)
		defer onToken.Store(nil)
		waitFor(t, "the failed renewal", func() bool { return tokens.Load()-before >= 2 })
		d.send("t=f2\n")
		waitGot("on the stream whose renewal failed", "f1", "f2")
		for end := time.Now().Add(10 * time.Second); !strings.Contains(d.log.String(), string(refusal.Unauthorized)); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("the stream was not left to run until its token expired")
			}
		}
		d.send("t=f3\n")
		waitGot("after the renewal that followed the refusal", "f1", "f2", "f3")
		if r := eval("window.resets"); len(r) != 0 {
			t.Errorf("resets %q across a token renewal", r)
		}
	})
}
