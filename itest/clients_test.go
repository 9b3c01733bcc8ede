package itest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	ldes "github.com/launchdarkly/eventsource"
	r3sse "github.com/r3labs/sse/v2"
	gosse "github.com/tmaxmax/go-sse"
)

// The SSE client libraries people use, run against the real server: every
// published event exactly once and in order, no event that was not
// published, heartbeats through an idle period, retry: honoured,
// reconnection with Last-Event-ID after a server-ended stream and after a cut
// mid-event, and resumption from the moment the stream opened (a cut before
// the first event). docs/clients.md has the table this test checks.

// Scenarios, in the order of the table.
const (
	scOnce      = "every event once, in order"
	scNone      = "no unpublished event"
	scIdle      = "heartbeats through idle"
	scRetry     = "retry: honoured"
	scEnd       = "resume after server end"
	scCut       = "resume after cut mid-event"
	scFromStart = "resume from the open (cut before the first event)"
)

var scenarios = []string{scOnce, scNone, scIdle, scRetry, scEnd, scCut, scFromStart}

// clientLib runs one library's subscription to url until ctx is done,
// calling got for every event the application sees.
type clientLib struct {
	name  string
	query string // initid= setting the library needs (docs/clients.md)
	run   func(ctx context.Context, t *testing.T, url string, got func(clientEvent))
	// fails are the scenarios this library is known to fail, with the
	// library bug behind each; the test fails if the outcome changes.
	fails map[string]string
	// na are the scenarios that do not apply (a feature the library does
	// not have), with the reason.
	na map[string]string
}

type clientEvent struct {
	ID, Event, Data string
}

var clientLibs = []clientLib{
	{name: "Chromium EventSource", run: runBrowser},
	{name: "npm eventsource", run: runNode("eventsource"), fails: map[string]string{
		scFromStart: "takes the last event id only from events with data",
	}},
	{name: "npm @microsoft/fetch-event-source", query: "&initid=0", run: runNode("fetch-event-source"), fails: map[string]string{
		scCut: "takes the id of the event cut in the middle",
	}},
	{name: "npm eventsource-parser", run: runNode("eventsource-parser"), fails: map[string]string{
		scFromStart: "reports no id without data",
	}},
	{name: "Go r3labs/sse", query: "&initid=0", run: runR3labs, fails: map[string]string{
		scNone: "hands the unfinished block at a connection's end to the application",
		scCut:  "takes the id of the event cut in the middle",
	}, na: map[string]string{
		scRetry: "ignores retry: (its own backoff: 0.5 s ± 50 %, growing)",
	}},
	{name: "Go tmaxmax/go-sse", query: "&initid=0", run: runGoSSE, fails: map[string]string{
		scFromStart: "takes the last event id only from a dispatched block",
	}},
	{name: "Go launchdarkly/eventsource", query: "&initid=0", run: runLaunchDarkly, fails: map[string]string{
		scFromStart: "takes the last event id only from a dispatched block",
	}},
}

func TestClientLibraries(t *testing.T) {
	needNodeClients(t)
	results := make([]map[string]string, len(clientLibs))
	t.Run("lib", func(t *testing.T) {
		for i, lib := range clientLibs {
			t.Run(lib.name, func(t *testing.T) {
				t.Parallel()
				res := runClientScenarios(t, lib)
				results[i] = res
				for _, sc := range scenarios {
					if why, ok := lib.na[sc]; ok {
						res[sc] = "n/a: " + why
						continue
					}
					want, known := lib.fails[sc]
					switch got := res[sc]; {
					case got == "" && known:
						t.Errorf("%s: passes now; it was known to fail (%s): update clients_test.go and docs/clients.md", sc, want)
					case got != "" && !known:
						t.Errorf("%s: %s", sc, got)
					}
				}
			})
		}
	})
	// The table for docs/clients.md.
	var b strings.Builder
	b.WriteString("| library | " + strings.Join(scenarios, " | ") + " |\n|---" + strings.Repeat("|---", len(scenarios)) + "|\n")
	for i, lib := range clientLibs {
		b.WriteString("| " + lib.name)
		for _, sc := range scenarios {
			switch {
			case results[i] == nil:
				b.WriteString(" | not run")
			case results[i][sc] == "":
				b.WriteString(" | yes")
			case strings.HasPrefix(results[i][sc], "n/a"):
				b.WriteString(" | " + results[i][sc])
			default:
				b.WriteString(" | no: " + results[i][sc])
			}
		}
		b.WriteString(" |\n")
	}
	t.Logf("results:\n%s", b.String())
}

// runClientScenarios runs every scenario in one session of the library
// behind a proxy that can cut the connection, and returns what went wrong
// per scenario ("" when it passed).
func runClientScenarios(t *testing.T, lib clientLib) map[string]string {
	d := start(t, "-heartbeat=200ms", "-retry=400ms", "-lifetime=6s")
	p := newCutProxy(t, d.sse)
	var mu sync.Mutex
	var got []clientEvent
	gotData := func(data string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range got {
			if e.Data == data {
				n++
			}
		}
		return n
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The first connection is cut right after the stream opened, and an
	// event is published before the client is back.
	p.arm(cutAfterOpen, "", func() { d.send("t=gap") })
	go func() {
		defer close(done)
		lib.run(ctx, t, "http://"+p.addr()+"/sse?subscribe=t"+lib.query, func(e clientEvent) {
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()

	res := map[string]string{}
	if !p.waitStreams(2, 15*time.Second) {
		t.Fatalf("the client did not reconnect after its first connection was cut")
	}
	var published []string
	pub := func(data string) {
		published = append(published, data)
		d.send("t=" + data)
	}
	published = append(published, "gap")
	for i := 1; i <= 5; i++ {
		pub(fmt.Sprintf("e%d", i))
	}

	// Idle: heartbeats keep the stream, and the client sees no event.
	for end := time.Now().Add(10 * time.Second); gotData("e5") == 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond) // e1-e5 arrive
	}
	mu.Lock()
	before := len(got)
	mu.Unlock()
	streams, beats := p.count()
	time.Sleep(3 * time.Second) // the server sweeps its streams every second
	streams2, beats2 := p.count()
	var during []clientEvent // events not published, seen while idle
	mu.Lock()
	for _, e := range got[before:] {
		if !slices.Contains(published, e.Data) {
			during = append(during, e)
		}
	}
	mu.Unlock()
	if beats2-beats < 2 || streams2 != streams || len(during) > 0 {
		res[scIdle] = fmt.Sprintf("%d heartbeats, %d reconnections, events %+v", beats2-beats, streams2-streams, during)
	}
	for i := 6; i <= 10; i++ {
		pub(fmt.Sprintf("e%d", i))
	}

	// The server ends the stream at its lifetime; an event is published
	// before the client is back.
	p.onEnd(func() { d.send("t=end") })
	published = append(published, "end")
	if !p.waitStreams(3, 15*time.Second) {
		res[scEnd] = "no reconnection after the server ended the stream"
	} else if !p.resumed(2) {
		res[scEnd] = "reconnected without Last-Event-ID"
	}

	// A cut in the middle of an event, and an event published before the
	// client is back.
	p.arm(cutMidEvent, "data: cut", func() { d.send("t=after-cut") })
	pub("cut")
	published = append(published, "after-cut")
	if !p.waitStreams(4, 15*time.Second) {
		res[scCut] = "no reconnection after the cut"
	} else {
		if !p.resumed(3) {
			res[scCut] = "reconnected without Last-Event-ID"
		}
		// retry: 400 ms; go-sse adds ±50 % jitter. Without it the libraries
		// wait 1 s (fetch-event-source) or 3 s.
		if gap := p.gap(3); gap < 150*time.Millisecond || gap >= 950*time.Millisecond {
			res[scRetry] = fmt.Sprintf("reconnected %v after the cut, want 400 ms", gap.Round(10*time.Millisecond))
		}
	}
	pub("final")
	for end := time.Now().Add(10 * time.Second); gotData("final") == 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything after it

	mu.Lock()
	events := slices.Clone(got)
	mu.Unlock()
	var seen, extra []string
	for _, e := range events {
		if slices.Contains(published, e.Data) {
			seen = append(seen, e.Data)
		} else {
			extra = append(extra, fmt.Sprintf("%+v", e))
		}
	}
	if len(extra) > 0 {
		res[scNone] = fmt.Sprintf("%d: %s", len(extra), strings.Join(extra, ", "))
	}
	count := func(data string) int { return strings.Count(" "+strings.Join(seen, " ")+" ", " "+data+" ") }
	if n := count("gap"); n != 1 {
		res[scFromStart] = fmt.Sprintf("the event published while reconnecting arrived %d times", n)
	}
	for _, sc := range []struct{ name, data string }{{scEnd, "end"}, {scCut, "cut"}, {scCut, "after-cut"}} {
		if n := count(sc.data); n != 1 && res[sc.name] == "" {
			res[sc.name] = fmt.Sprintf("%q arrived %d times", sc.data, n)
		}
	}
	// Exactly once and in order: the events no other scenario is about,
	// and no event twice.
	var want, have []string
	special := []string{"gap", "end", "cut", "after-cut"}
	for _, s := range published {
		if !slices.Contains(special, s) {
			want = append(want, s)
		}
	}
	for _, s := range seen {
		if !slices.Contains(special, s) {
			have = append(have, s)
		}
	}
	for _, s := range published {
		if n := count(s); n > 1 {
			res[scOnce] = fmt.Sprintf("%q arrived %d times", s, n)
		}
	}
	if !slices.Equal(have, want) {
		res[scOnce] = fmt.Sprintf("got %q", have)
	}
	if t.Failed() || len(res) > len(lib.fails) {
		t.Logf("%s: events %+v\nconnections:\n%s", lib.name, events, p.describe())
	}
	return res
}

// cutProxy relays the SSE port and cuts a connection on demand.
type cutProxy struct {
	t        *testing.T
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	conns  []*proxied
	beats  int
	mode   cutMode
	marker string
	onCut  func()
	endFn  func()
	cutAt  time.Time
}

type cutMode int

const (
	noCut cutMode = iota
	cutAfterOpen
	cutMidEvent
)

// proxied is one stream request: a client reuses its connection after a
// clean end (keep-alive), so a connection may carry several.
type proxied struct {
	at   time.Time // the request began
	head string    // the request head
	down int       // bytes relayed to the client
	cut  bool      // cut by the proxy, not ended by the server
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, upstream: upstream}
	go p.accept()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// arm makes the next matching moment cut the connection: right after the
// stream's first bytes, or in the middle of marker. fn runs while the
// client is disconnected.
func (p *cutProxy) arm(mode cutMode, marker string, fn func()) {
	p.mu.Lock()
	p.mode, p.marker, p.onCut = mode, marker, fn
	p.mu.Unlock()
}

// onEnd runs fn once, when the server next ends a stream.
func (p *cutProxy) onEnd(fn func()) {
	p.mu.Lock()
	p.endFn = fn
	p.mu.Unlock()
}

func (p *cutProxy) count() (streams, beats int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams(), p.beats
}

// streams counts the connections that got their stream's head.
func (p *cutProxy) streams() int {
	n := 0
	for _, c := range p.conns {
		if c.down > 0 {
			n++
		}
	}
	return n
}

func (p *cutProxy) waitStreams(n int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s, _ := p.count(); s >= n {
			return true
		}
	}
	return false
}

// nth returns the i-th connection that got a stream (0-based).
func (p *cutProxy) nth(i int) *proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c.down > 0 {
			if i == 0 {
				cp := *c
				return &cp
			}
			i--
		}
	}
	return &proxied{}
}

// resumed reports whether the i-th stream was asked for with a last id.
func (p *cutProxy) resumed(i int) bool {
	h := strings.ToLower(p.nth(i).head)
	return strings.Contains(h, "\r\nlast-event-id: ") || strings.Contains(h, "lasteventid=")
}

// gap is how long after the cut the i-th stream was asked for.
func (p *cutProxy) gap(i int) time.Duration {
	at := p.nth(i).at
	p.mu.Lock()
	defer p.mu.Unlock()
	return at.Sub(p.cutAt)
}

func (p *cutProxy) describe() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, c := range p.conns {
		line, _, _ := strings.Cut(c.head, "\r\n")
		fmt.Fprintf(&b, "  %s %q last-event-id=%v down=%d cut=%v\n", c.at.Format("15:04:05.000"), line,
			strings.Contains(strings.ToLower(c.head), "last-event-id:"), c.down, c.cut)
	}
	return b.String()
}

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		var cur *proxied // the connection's current request (p.mu)
		go p.relayUp(c, up, &cur)
		go p.relayDown(c, up, &cur)
	}
}

func (p *cutProxy) relayUp(c, up net.Conn, cur **proxied) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if *cur == nil || strings.Contains((*cur).head, "\r\n\r\n") {
				*cur = &proxied{at: time.Now()}
				p.conns = append(p.conns, *cur)
			}
			(*cur).head += string(buf[:n])
			p.mu.Unlock()
			up.Write(buf[:n])
		}
		if err != nil {
			up.Close()
			return
		}
	}
}

// lastChunk ends a chunked stream; the connection may stay open. (No
// event's chunk ends so: its payload ends with a blank line.)
var lastChunk = []byte("\r\n0\r\n\r\n")

func (p *cutProxy) relayDown(c, up net.Conn, cur **proxied) {
	defer c.Close()
	defer up.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			data := buf[:n]
			p.mu.Lock()
			pc := *cur
			if pc == nil {
				pc = &proxied{} // not a request of ours
			}
			mode, fn := p.mode, p.onCut
			cutAt := -1
			switch mode {
			case cutAfterOpen:
				if pc.down == 0 {
					cutAt = n
				}
			case cutMidEvent:
				if i := bytes.Index(data, []byte(p.marker)); i >= 0 {
					cutAt = i + len(p.marker)/2
				}
			}
			if cutAt >= 0 {
				p.mode = noCut
				pc.cut = true
				data = data[:cutAt]
			}
			p.beats += bytes.Count(data, []byte("\r\n:\n\r\n"))
			pc.down += len(data)
			var endFn func()
			if bytes.HasSuffix(data, lastChunk[2:]) {
				endFn, p.endFn = p.endFn, nil
			}
			p.mu.Unlock()
			if _, werr := c.Write(data); werr != nil {
				return
			}
			if cutAt >= 0 {
				if mode == cutAfterOpen {
					time.Sleep(300 * time.Millisecond) // the client takes the opening bytes
				}
				fn()
				time.Sleep(100 * time.Millisecond) // published before the client is back
				p.mu.Lock()
				p.cutAt = time.Now()
				p.mu.Unlock()
				return
			}
			if endFn != nil {
				// The client reconnects after retry: (400 ms).
				endFn()
			}
		}
		if err != nil {
			return
		}
	}
}

// runNode runs itest/clients/client.mjs with one of the npm libraries.
func runNode(lib string) func(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
	return func(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
		cmd := exec.CommandContext(ctx, "node", "client.mjs", lib, url)
		cmd.Dir = "clients"
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Error(err)
			return
		}
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e struct{ ID, Event, Data string }
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("node %s: %q: %v", lib, sc.Text(), err)
				continue
			}
			got(clientEvent(e))
		}
		cmd.Wait()
		if ctx.Err() == nil || strings.Contains(stderr.String(), "Error") {
			t.Logf("node %s: %s", lib, stderr.String())
		}
	}
}

func runR3labs(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
	c := r3sse.NewClient(url)
	// SubscribeRaw returns when the server ends the stream (a nil error
	// ends its retry loop); the client keeps LastEventID across calls.
	for ctx.Err() == nil {
		c.SubscribeRawWithContext(ctx, func(m *r3sse.Event) {
			got(clientEvent{string(m.ID), string(m.Event), string(m.Data)})
		})
	}
}

func runGoSSE(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	conn := gosse.DefaultClient.NewConnection(req) // retries without limit
	conn.SubscribeToAll(func(e gosse.Event) {
		got(clientEvent{e.LastEventID, e.Type, e.Data})
	})
	// Connect returns nil when the server ends the stream; the connection
	// keeps the last event id for the next Connect.
	for ctx.Err() == nil {
		conn.Connect()
	}
}

func runLaunchDarkly(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
	s, err := ldes.SubscribeWithURL(url, ldes.StreamOptionErrorHandler(func(error) ldes.StreamErrorHandlerResult {
		return ldes.StreamErrorHandlerResult{}
	}))
	if err != nil {
		t.Error(err)
		return
	}
	defer s.Close()
	for {
		select {
		case e := <-s.Events:
			got(clientEvent{e.Id(), e.Event(), e.Data()})
		case <-ctx.Done():
			return
		}
	}
}

const clientsPage = `<!doctype html><script>
window.got = [];
const es = new EventSource(%q);
es.onmessage = (e) => window.got.push({ID: e.lastEventId, Event: e.type, Data: e.data});
</script>`

// runBrowser opens a page with an EventSource in headless Chromium and
// relays what it sees.
func runBrowser(ctx context.Context, t *testing.T, url string, got func(clientEvent)) {
	bctx := newChromium(t, ctx)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, clientsPage, url)
	}))
	defer ps.Close()
	if err := chromedp.Do(bctx, chromedp.Navigate(ps.URL)); err != nil {
		t.Errorf("navigate: %v", err)
		return
	}
	seen := 0
	for ctx.Err() == nil {
		evs, err := chromedp.Run(bctx, chromedp.Evaluate[[]clientEvent](fmt.Sprintf("window.got.slice(%d)", seen)))
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("reading the page: %v", err)
			}
			return
		}
		for _, e := range evs {
			got(e)
		}
		seen += len(evs)
		time.Sleep(50 * time.Millisecond)
	}
}

// newChromium starts headless Chromium for the life of ctx (and of the
// test), with the options every browser test uses and extra ones.
func newChromium(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) context.Context {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed: %v", err)
		}
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A page navigated away from closes its streams (TestHassesJS).
		chromedp.Flag("disable-features", "BackForwardCache"),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(opts, extra...)...)
	t.Cleanup(cancelAlloc)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	return bctx
}

// TestClientLibrariesNeedInitID0 checks why the libraries given initid=0 in
// clientLibs need it: with the default, the opening id block reaches the
// application as an empty message.
func TestClientLibrariesNeedInitID0(t *testing.T) {
	needNodeClients(t)
	for _, lib := range clientLibs {
		if lib.query != "&initid=0" {
			continue
		}
		t.Run(lib.name, func(t *testing.T) {
			t.Parallel()
			d := start(t)
			var mu sync.Mutex
			var got []clientEvent
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				lib.run(ctx, t, "http://"+d.sse+"/sse?subscribe=t", func(e clientEvent) {
					mu.Lock()
					got = append(got, e)
					mu.Unlock()
				})
			}()
			defer func() { cancel(); <-done }()
			waitFor(t, "the client to subscribe", func() bool {
				return strings.Contains(d.command("tcpsubscribedclients:t"), `"subscribedclients": 1,`)
			})
			d.send("t=first")
			waitFor(t, "the event", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return slices.ContainsFunc(got, func(e clientEvent) bool { return e.Data == "first" })
			})
			mu.Lock()
			defer mu.Unlock()
			if got[0].Data != "" {
				t.Errorf("with initid=1 the library saw %+v: no empty message, so it does not need initid=0", got)
			}
		})
	}
}

// needNodeClients skips without node or the npm packages, except in CI,
// which installs them (.ci/run).
func needNodeClients(t *testing.T) {
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat("clients/node_modules")
	if err := errors.Join(errNode, errMods); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node and the npm clients (npm ci in itest/clients) are needed: %v", err)
		}
		t.Skipf("node and the npm clients are not installed (npm ci in itest/clients): %v", err)
	}
}

// TestBrowserResumesFromStreamOpen: a tab whose connection is cut before
// its first event reconnects with the opening id and receives every event
// published in between, with no code in the page.
func TestBrowserResumesFromStreamOpen(t *testing.T) {
	d := start(t, "-retry=500ms")
	p := newCutProxy(t, d.sse)
	p.arm(cutAfterOpen, "", func() {
		for i := 1; i <= 3; i++ {
			d.send(fmt.Sprintf("t=while away %d\n", i))
		}
	})
	tab, closeTab := openTab(t, "http://"+p.addr()+"/sse?subscribe=t")
	defer closeTab()
	if !p.waitStreams(2, 15*time.Second) {
		t.Fatalf("the tab did not reconnect after the cut:\n%s", p.describe())
	}
	if !p.resumed(1) {
		t.Errorf("the tab reconnected without Last-Event-ID:\n%s", p.describe())
	}
	d.send("t=back\n")
	tab.expect("while away 1", "while away 2", "while away 3", "back")
}

// tab is a headless Chromium tab following a stream with EventSource.
type tab struct {
	t   *testing.T
	mu  sync.Mutex
	got []string
}

// openTab opens url in a new tab; close it with the function it returns
// (deferred: before the test's cleanups stop the browser).
func openTab(t *testing.T, url string) (*tab, func()) {
	tb := &tab{t: t}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runBrowser(ctx, t, url, func(e clientEvent) {
			tb.mu.Lock()
			tb.got = append(tb.got, e.Data)
			tb.mu.Unlock()
		})
	}()
	return tb, func() { cancel(); <-done }
}

// expect waits until the tab has as many events as want, then checks that
// it has exactly those.
func (tb *tab) expect(want ...string) {
	tb.t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		tb.mu.Lock()
		n := len(tb.got)
		tb.mu.Unlock()
		if n >= len(want) {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // anything more
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if !slices.Equal(tb.got, want) {
		tb.t.Fatalf("the tab got %q, want %q", tb.got, want)
	}
}
