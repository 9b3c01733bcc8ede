package itest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const browserPage = `<!doctype html>
<html><head><title>hasses replay</title>
<style>body{font:14px sans-serif} li{white-space:pre}</style></head>
<body><h1>EventSource</h1><p id="status">connecting</p><ol id="events"></ol>
<script>
window.got = []; window.opens = 0;
const es = new EventSource(%q);
const show = (kind, e) => {
  window.got.push({kind: kind, id: e.lastEventId, data: e.data});
  const li = document.createElement("li");
  li.textContent = kind + " " + e.lastEventId + " " + JSON.stringify(e.data);
  document.getElementById("events").appendChild(li);
};
es.onopen = () => { window.opens++; document.getElementById("status").textContent = "open #" + window.opens; };
es.onmessage = (e) => show("message", e);
es.addEventListener("update", (e) => show("update", e));
es.addEventListener("hasses-reset", (e) => show("reset", e));
</script></body></html>`

// TestBrowserEventSourceReplay runs a real EventSource in headless Chromium
// through stream ends (a 2-4 s lifetime): the browser reconnects by itself
// with Last-Event-ID, and the page must end up with every event exactly once,
// in order, multi-line and named events included.
func TestBrowserEventSourceReplay(t *testing.T) {
	d := start(t, "-lifetime=4s", "-retry=300ms")

	page := fmt.Sprintf(browserPage, "http://"+d.sse+"/sse?subscribe=t&id=browser")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	ps.Listener = ln
	ps.Start()
	defer ps.Close()

	ctx := newChromium(t, context.Background())
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	if err := chromedp.Do(ctx, chromedp.Navigate(ps.URL)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	waitFor(t, "the browser to subscribe", func() bool {
		return strings.Contains(d.command("tcpsubscribedclients:t"), `"subscribedclients": 1,`)
	})

	// 30 events over ~9 s, across at least two stream ends.
	var want []string
	for i := range 30 {
		switch i % 3 {
		case 0:
			d.send(fmt.Sprintf("t=plain %d", i))
			want = append(want, fmt.Sprintf("message|plain %d", i))
		case 1:
			d.send(fmt.Sprintf("t=line one %d\nline two %d\n", i, i))
			want = append(want, fmt.Sprintf("message|line one %d\nline two %d", i, i))
		case 2:
			d.send(fmt.Sprintf("t#update=named %d", i))
			want = append(want, fmt.Sprintf("update|named %d", i))
		}
		time.Sleep(300 * time.Millisecond)
	}

	type got struct{ Kind, ID, Data string }
	var events []got
	var opens int
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if events, err = chromedp.Run(ctx, chromedp.Evaluate[[]got](`window.got`)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		if opens, err = chromedp.Run(ctx, chromedp.Evaluate[int](`window.opens`)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		if len(events) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		dir := os.Getenv("HASSES_ARTIFACTS")
		if dir == "" {
			dir = "artifacts"
		}
		os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, "browser-replay.png")
		if err := os.WriteFile(path, shot, 0o644); err == nil {
			abs, _ := filepath.Abs(path)
			t.Logf("screenshot: %s", abs)
		}
	}

	var gotText []string
	lastID := ""
	for _, e := range events {
		gotText = append(gotText, e.Kind+"|"+e.Data)
		if e.ID == "" || e.ID == lastID {
			t.Errorf("event %+v: id not unique after %q", e, lastID)
		}
		lastID = e.ID
	}
	if strings.Join(gotText, "\n--\n") != strings.Join(want, "\n--\n") {
		t.Errorf("the page got %d events:\n%s\nwant %d:\n%s", len(gotText), strings.Join(gotText, "\n--\n"), len(want), strings.Join(want, "\n--\n"))
	}
	if opens < 2 {
		t.Errorf("the EventSource opened %d times; the stream ends should have made it reconnect", opens)
	}
	t.Logf("%d events, %d connections", len(events), opens)
}
