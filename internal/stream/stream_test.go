package stream

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/web"
)

// fakeWriter takes at most max bytes per call (all when max is 0), nothing
// while blocked, and fails with err when set.
type fakeWriter struct {
	buf     bytes.Buffer
	max     int
	blocked bool
	err     error
	calls   int
}

func (w *fakeWriter) Write(bufs [][]byte) (int, error) {
	w.calls++
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for _, b := range bufs {
		for _, c := range b {
			if w.blocked || (w.max > 0 && n == w.max) {
				return n, nil
			}
			w.buf.WriteByte(c)
			n++
		}
	}
	return n, nil
}

type fixture struct {
	t    *testing.T
	hub  *hub.Hub
	core *Core
	o    *hub.Owner
	now  time.Time
	sc   Scratch
}

func newFixture(t *testing.T, cfg Config) *fixture {
	h := hub.New(hub.Config{MaxLag: 64 << 10})
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{t: t, hub: h, core: New(h, cfg), now: time.Unix(1_700_000_000, 0)}
	// As a loop does when woken: the hub's marks then show Flush what to
	// take (hub.Collect).
	f.o = f.core.NewOwner(func() { h.Collect(f.o, nil) })
	return f
}

// conn accepts a connection and sends it a request head.
func (f *fixture) conn(head string) *Conn {
	f.t.Helper()
	c := &Conn{}
	if st := f.core.Accept(c, netipAddrPort("127.0.0.1:4000"), f.now); st != 0 {
		f.t.Fatalf("accept: %d", st)
	}
	if a := c.Received([]byte(head), f.o, c, f.now); a != Flush {
		f.t.Fatalf("request %q: action %v", head, a)
	}
	return c
}

func (f *fixture) publish(token, data string) {
	if _, err := f.hub.Publish(hub.Message{Targets: []string{token}, Data: []byte(data)}); err != nil {
		f.t.Fatal(err)
	}
}

// events decodes the chunked stream body after the response head.
func events(t *testing.T, raw []byte) []string {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("head: %v in %q", err, raw)
	}
	body, _ := io.ReadAll(httputil.NewChunkedReader(br))
	_ = resp
	// The comment right after the head (so that proxies pass the head on)
	// is not a heartbeat.
	body = bytes.TrimPrefix(body, heartbeatText)
	var out []string
	for _, block := range strings.Split(string(body), "\n\n") {
		for _, line := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				out = append(out, v)
			} else if strings.HasPrefix(line, ": ") || line == ":" {
				out = append(out, "(heartbeat)")
			}
		}
	}
	return out
}

func TestShortWritesDeliverEveryEventWhole(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{max: 7}
	for i := range 20 {
		f.publish("t", strings.Repeat(string(rune('a'+i)), 30))
	}
	for range 1000 {
		switch c.Flush(w, &f.sc, f.now) {
		case Blocked:
			c.Unblock()
			continue
		case Waiting:
		default:
			t.Fatal("stream failed")
		}
		break
	}
	got := events(t, w.buf.Bytes())
	if len(got) != 20 || got[19] != strings.Repeat("t", 30) {
		t.Fatalf("got %d events: %q", len(got), got)
	}
	if d := f.core.Stats().Delivered; d != 20 {
		t.Errorf("delivered %d", d)
	}
}

func TestBlockedWriterThenLagLimit(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	if c.Flush(w, &f.sc, f.now) != Waiting {
		t.Fatal("head not written")
	}
	w.blocked = true
	f.publish("t", "x")
	if c.Flush(w, &f.sc, f.now) != Blocked {
		t.Fatal("a writer taking nothing must block the stream")
	}
	// More than the lag limit arrives while blocked: the sweep closes it.
	for range 100 {
		f.publish("t", strings.Repeat("y", 1000))
	}
	if a := c.Tick(f.now.Add(time.Second)); a != Close {
		t.Fatalf("tick of a lagging blocked stream: %v", a)
	}
	if f.core.Stats().Lagged != 1 {
		t.Errorf("lagged %d", f.core.Stats().Lagged)
	}
}

func TestStalledWriterIsClosed(t *testing.T) {
	f := newFixture(t, Config{WriteTimeout: 5 * time.Second})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{blocked: true}
	if c.Flush(w, &f.sc, f.now) != Blocked {
		t.Fatal("not blocked")
	}
	if a := c.Tick(f.now.Add(4 * time.Second)); a != None {
		t.Fatalf("closed before the write timeout: %v", a)
	}
	if a := c.Tick(f.now.Add(5 * time.Second)); a != Close {
		t.Fatalf("not closed at the write timeout: %v", a)
	}
	if f.core.Stats().Stalled != 1 {
		t.Errorf("stalled %d", f.core.Stats().Stalled)
	}
}

func TestExpiryWhileBlockedDeliversNothingLater(t *testing.T) {
	f := newFixture(t, Config{Authorize: func(*handshake.Request, time.Time) (time.Time, int, error) {
		return time.Unix(1_700_000_010, 0), 0, nil // the grant ends 10 s after the fixture's now
	}})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	if !c.Deadline().Equal(time.Unix(1_700_000_010, 0)) {
		t.Fatalf("deadline %v, want the grant's expiry", c.Deadline())
	}
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	w.blocked = true
	f.publish("t", "before expiry")
	c.Flush(w, &f.sc, f.now.Add(time.Second))
	at := c.Deadline()
	if a := c.Tick(at); a != Flush {
		t.Fatalf("tick at the expiry: %v", a)
	}
	f.publish("t", "after expiry")
	w.blocked = false // the client reads again
	c.Unblock()
	if s := c.Flush(w, &f.sc, at.Add(time.Second)); s != Waiting || c.State() != StateHead {
		t.Fatalf("flush after expiry: %v in %v, want the stream ended and the connection kept", s, c.State())
	}
	got := events(t, w.buf.Bytes())
	if strings.Join(got, "|") != "before expiry" {
		t.Fatalf("events %q: want only the one published before expiry", got)
	}
	// A client that never reads again is closed at the end of the linger.
	c2 := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w2 := &fakeWriter{blocked: true}
	c2.Flush(w2, &f.sc, f.now)
	c2.Tick(c2.Deadline())
	if a := c2.Tick(c2.Deadline()); a != Close {
		t.Fatalf("blocked stream past its linger: %v", a)
	}
}

func TestHeartbeatOnlyWhenIdle(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: 10 * time.Second})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	// Busy: an event every 5 s, so no heartbeat is due.
	for i := 1; i <= 4; i++ {
		now := f.now.Add(time.Duration(i) * 5 * time.Second)
		if a := c.Tick(now); a != None {
			t.Fatalf("heartbeat on a busy stream at %v", now)
		}
		f.publish("t", "busy")
		c.Flush(w, &f.sc, now)
	}
	idle := f.now.Add(30 * time.Second)
	if a := c.Tick(idle); a != Flush {
		t.Fatalf("no heartbeat after 10 s idle: %v", a)
	}
	c.Flush(w, &f.sc, idle)
	got := events(t, w.buf.Bytes())
	if strings.Join(got, ",") != "busy,busy,busy,busy,(heartbeat)" {
		t.Fatalf("events %q", got)
	}
}

func TestDrainEndsWithRetryAndLastChunk(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	f.publish("t", "last")
	f.core.Drain()
	if a := c.Drain(f.now); a != Flush {
		t.Fatalf("drain: %v", a)
	}
	if s := c.Flush(w, &f.sc, f.now); s != Finished {
		t.Fatalf("flush after drain: %v", s)
	}
	raw := w.buf.String()
	if !strings.Contains(raw, "data: last") || !strings.Contains(raw, "retry: ") || !strings.HasSuffix(raw, "0\r\n\r\n") {
		t.Fatalf("stream ended with %q", raw)
	}
	if got := events(t, w.buf.Bytes()); strings.Join(got, ",") != "last" {
		t.Fatalf("events %q", got)
	}
	c.Close()
	if st := f.core.Stats(); st.Conns != 0 || st.Streams != 0 {
		t.Errorf("after close: %+v", st)
	}
}

func TestKeepAliveAfterCleanEnd(t *testing.T) {
	f := newFixture(t, Config{Lifetime: time.Minute})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	end := c.Deadline()
	c.Tick(end)
	if s := c.Flush(w, &f.sc, end); s != Waiting || c.State() != StateHead {
		t.Fatalf("after a clean end: %v in %v, want waiting for the next request", s, c.State())
	}
	if a := c.Received([]byte("GET /sse?subscribe=u HTTP/1.1\r\n\r\n"), f.o, c, end); a != Flush || c.State() != StateStream {
		t.Fatalf("second request on the connection: %v %v", a, c.State())
	}
	// HTTP/1.0 and "Connection: close" streams are close-delimited or end
	// the connection.
	c10 := f.conn("GET /sse?subscribe=t HTTP/1.0\r\n\r\n")
	w10 := &fakeWriter{}
	c10.Flush(w10, &f.sc, f.now)
	f.publish("t", "plain")
	c10.Flush(w10, &f.sc, f.now)
	c10.Tick(c10.Deadline())
	if s := c10.Flush(w10, &f.sc, c10.Deadline()); s != Finished {
		t.Fatalf("HTTP/1.0 stream end: %v", s)
	}
	raw := w10.buf.String()
	if strings.Contains(raw, "chunked") || !strings.Contains(raw, "\r\n\r\nid: ") || !strings.Contains(raw, "-0\n\nid: ") || !strings.HasSuffix(raw, "\ndata: plain\n\n") {
		t.Fatalf("HTTP/1.0 stream %q: want a close-delimited body of SSE text", raw)
	}
}

func TestWriteErrorFails(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	if s := c.Flush(&fakeWriter{err: errors.New("reset")}, &f.sc, f.now); s != Failed {
		t.Fatalf("flush with a failing writer: %v", s)
	}
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// body returns the decoded body of a chunked stream.
func body(t *testing.T, raw []byte) string {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatalf("head: %v in %q", err, raw)
	}
	b, _ := io.ReadAll(httputil.NewChunkedReader(br))
	return string(b)
}

// The preamble: the opening id of a stream without Last-Event-ID is the
// only data-less block that ends with a blank line, and only with initid=1;
// the retry hint and the opening byte join the next block.
func TestPreamble(t *testing.T) {
	for _, c := range []struct {
		name    string
		retry   time.Duration
		request string
		before  int // events published before the stream opens
		want    string
	}{
		{"default", 0, "subscribe=t", 0, "id: E-0\n\n"},
		{"after events", 0, "subscribe=t", 2, "id: E-2\n\n"},
		{"initid=0", 0, "subscribe=t&initid=0", 2, "id: E-2\n"},
		{"initid=1", 0, "subscribe=t&initid=1", 0, "id: E-0\n\n"},
		{"retry", 3 * time.Second, "subscribe=t", 0, "retry: 3000\nid: E-0\n\n"},
		{"retry initid=0", 3 * time.Second, "subscribe=t&initid=0", 0, "retry: 3000\nid: E-0\n"},
		{"complete replay", 0, "subscribe=t&lastEventId=E-1", 2, ":\nid: E-2\ndata: x\n\n"},
		{"complete replay with retry", time.Second, "subscribe=t&lastEventId=E-2", 2, "retry: 1000\n"},
		{"unknown id", time.Second, "subscribe=t&lastEventId=zz-1", 1, "retry: 1000\nid: E-1\nevent: hasses-reset\ndata: unknown\n\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, Config{Retry: c.retry})
			for range c.before {
				f.publish("t", "x")
			}
			epoch := strings.TrimSuffix(f.hub.CursorID(&hub.Sub{}), "-0")
			conn := f.conn("GET /sse?" + strings.ReplaceAll(c.request, "E-", epoch+"-") + " HTTP/1.1\r\n\r\n")
			w := &fakeWriter{}
			conn.Flush(w, &f.sc, f.now)
			if got, want := body(t, w.buf.Bytes()), strings.ReplaceAll(c.want, "E-", epoch+"-"); got != want {
				t.Errorf("body %q, want %q", got, want)
			}
		})
	}
}

// Heartbeats and the retry hint at the end are lines that end no block.
func TestOwnBytesEndNoBlock(t *testing.T) {
	f := newFixture(t, Config{Heartbeat: 10 * time.Second, Retry: time.Second})
	c := f.conn("GET /sse?subscribe=t&initid=0 HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	idle := f.now.Add(11 * time.Second)
	if a := c.Tick(idle); a != Flush {
		t.Fatalf("no heartbeat after 11 s idle: %v", a)
	}
	c.Flush(w, &f.sc, idle)
	f.publish("t", "one")
	c.Flush(w, &f.sc, idle)
	f.core.Drain()
	c.Drain(idle)
	if s := c.Flush(w, &f.sc, idle); s != Finished {
		t.Fatalf("flush after drain: %v", s)
	}
	epoch := strings.TrimSuffix(f.hub.CursorID(&hub.Sub{}), "-0")
	got := body(t, w.buf.Bytes())
	if !strings.HasPrefix(got, "retry: 1000\nid: "+epoch+"-0\n:\nid: "+epoch+"-1\ndata: one\n\nretry: ") || strings.HasSuffix(got, "\n\n") {
		t.Fatalf("body %q: want the retry, opening id and heartbeat lines in the event's block, and the end's retry line ending no block", got)
	}
}

func TestServesScript(t *testing.T) {
	f := newFixture(t, Config{})
	c := f.conn("GET /hasses.js HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	if s := c.Flush(w, &f.sc, f.now); s != Finished {
		t.Fatalf("flush: %v", s)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&w.buf), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !bytes.Equal(body, web.Script) {
		t.Fatalf("%d %v, %d bytes: want the page helper", resp.StatusCode, resp.Header, len(body))
	}
}

// expiringFixture serves streams whose grant expires exp after the
// fixture's now (none when exp is zero), with RenewBefore renew.
func expiringFixture(t *testing.T, exp, renew time.Duration) *fixture {
	var f *fixture
	f = newFixture(t, Config{RenewBefore: renew, Authorize: func(*handshake.Request, time.Time) (time.Time, int, error) {
		if exp == 0 {
			return time.Time{}, 0, nil
		}
		return f.now.Add(exp), 0, nil
	}})
	return f
}

// sseBody returns the SSE text of a stream: chunked (HTTP/1.1) or
// close-delimited (HTTP/1.0).
func sseBody(t *testing.T, raw []byte, chunked bool) string {
	t.Helper()
	if chunked {
		return body(t, raw)
	}
	_, b, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no head in %q", raw)
	}
	return string(b)
}

const expiringBlock = "event: hasses-expiring\ndata: {\"exp\":1700000100}\n\n" // the fixture's now + 100 s

func TestExpiringEventBeforeTheGrantEnds(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			f := expiringFixture(t, 100*time.Second, 30*time.Second)
			c := f.conn("GET /sse?subscribe=t " + proto + "\r\n\r\n")
			w := &fakeWriter{}
			c.Flush(w, &f.sc, f.now)
			warn := f.now.Add(70 * time.Second)
			if !c.Deadline().Equal(warn) {
				t.Fatalf("deadline %v, want the warning's time %v", c.Deadline(), warn)
			}
			f.publish("t", "one")
			c.Flush(w, &f.sc, f.now.Add(time.Second))
			if a := c.Tick(warn.Add(-time.Second)); a != None {
				t.Fatalf("tick before the warning's time: %v", a)
			}
			if a := c.Tick(warn); a != Flush {
				t.Fatalf("tick at the warning's time: %v", a)
			}
			c.Flush(w, &f.sc, warn)
			if !c.Deadline().Equal(f.now.Add(100 * time.Second)) {
				t.Fatalf("deadline after the warning %v, want the grant's expiry", c.Deadline())
			}
			for _, at := range []time.Duration{71 * time.Second, 80 * time.Second, 99 * time.Second} {
				if a := c.Tick(f.now.Add(at)); a != None {
					t.Fatalf("tick at %v after the warning: %v", at, a)
				}
			}
			f.publish("t", "two")
			c.Flush(w, &f.sc, warn)
			end := c.Deadline()
			c.Tick(end)
			c.Flush(w, &f.sc, end)
			got := sseBody(t, w.buf.Bytes(), proto == "HTTP/1.1")
			epoch := strings.TrimSuffix(f.hub.CursorID(&hub.Sub{}), "-0")
			want := "id: " + epoch + "-0\n\nid: " + epoch + "-1\ndata: one\n\n" + expiringBlock + "id: " + epoch + "-2\ndata: two\n\n"
			if got != want {
				t.Fatalf("body %q, want %q", got, want)
			}
		})
	}
}

// In the middle of an event the warning waits for its end, and the
// deadline moves on to the expiry so that an epoll loop does not spin.
func TestExpiringEventNotMidEvent(t *testing.T) {
	f := expiringFixture(t, 100*time.Second, 30*time.Second)
	f.core.cfg.WriteTimeout = time.Hour // blocked until the warning is due, not stalled
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{}
	c.Flush(w, &f.sc, f.now)
	big := strings.Repeat("x", 1000)
	f.publish("t", big)
	w.max = 100
	if s := c.Flush(w, &f.sc, f.now); s != Blocked {
		t.Fatalf("flush with a short writer: %v", s)
	}
	warn := c.Deadline()
	if a := c.Tick(warn); a != None {
		t.Fatalf("tick at the warning's time in the middle of an event: %v", a)
	}
	if !c.Deadline().Equal(f.now.Add(100 * time.Second)) {
		t.Fatalf("deadline %v while the warning waits, want the grant's expiry", c.Deadline())
	}
	// Writable again at the next sweep: the rest of the event, then the
	// warning.
	w.max = 0
	c.Unblock()
	if s := c.Flush(w, &f.sc, warn.Add(time.Second)); s != Waiting {
		t.Fatalf("flush: %v", s)
	}
	if a := c.Tick(warn.Add(2 * time.Second)); a != None {
		t.Fatalf("tick after the warning: %v", a)
	}
	epoch := strings.TrimSuffix(f.hub.CursorID(&hub.Sub{}), "-0")
	want := "id: " + epoch + "-0\n\nid: " + epoch + "-1\ndata: " + big + "\n\n" + expiringBlock
	if got := body(t, w.buf.Bytes()); got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
}

// Waiting for an event's end, the warning also goes at a sweep's Tick
// once the stream is idle (the Flush that finished the event ran before
// the warning was due).
func TestExpiringEventAtSweepWhenIdle(t *testing.T) {
	f := expiringFixture(t, 100*time.Second, 30*time.Second)
	f.core.cfg.WriteTimeout = time.Hour // blocked until the warning is due, not stalled
	c := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
	w := &fakeWriter{blocked: true}
	c.Flush(w, &f.sc, f.now)
	warn := c.Deadline()
	if a := c.Tick(warn); a != None {
		t.Fatalf("tick at the warning's time with the head unwritten: %v", a)
	}
	w.blocked = false
	c.Unblock()
	c.Flush(w, &f.sc, warn)
	if got := body(t, w.buf.Bytes()); !strings.HasSuffix(got, "-0\n\n"+expiringBlock) {
		t.Fatalf("body %q: want the warning after the preamble", got)
	}
	if a := c.Tick(warn.Add(time.Second)); a != None {
		t.Fatalf("a second warning: %v", a)
	}
}

// A grant that expires within RenewBefore gets the warning at once, after
// the preamble.
func TestExpiringEventAtOpen(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			f := expiringFixture(t, 100*time.Second, 5*time.Minute)
			c := f.conn("GET /sse?subscribe=t " + proto + "\r\n\r\n")
			w := &fakeWriter{}
			c.Flush(w, &f.sc, f.now)
			epoch := strings.TrimSuffix(f.hub.CursorID(&hub.Sub{}), "-0")
			if got, want := sseBody(t, w.buf.Bytes(), proto == "HTTP/1.1"), "id: "+epoch+"-0\n\n"+expiringBlock; got != want {
				t.Fatalf("body %q, want %q", got, want)
			}
			if !c.Deadline().Equal(f.now.Add(100 * time.Second)) {
				t.Fatalf("deadline %v, want the grant's expiry", c.Deadline())
			}
			if a := c.Tick(f.now.Add(time.Second)); a != None {
				t.Fatalf("a second warning: %v", a)
			}
		})
	}
}

// No warning without an expiry, with RenewBefore zero, or when the
// stream's lifetime ends before the warning's time.
func TestNoExpiringEvent(t *testing.T) {
	for _, c := range []struct {
		name       string
		exp, renew time.Duration
		lifetime   time.Duration
	}{
		{"no exp", 0, 30 * time.Second, 0},
		{"renew-before 0", 100 * time.Second, 0, 0},
		{"renew-before 0 near the expiry", time.Second, 0, 0},
		{"lifetime first", 100 * time.Second, 30 * time.Second, time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := expiringFixture(t, c.exp, c.renew)
			f.core.cfg.Lifetime = cmp.Or(c.lifetime, time.Hour)
			conn := f.conn("GET /sse?subscribe=t HTTP/1.1\r\n\r\n")
			w := &fakeWriter{}
			conn.Flush(w, &f.sc, f.now)
			for now := f.now; conn.State() == StateStream; now = now.Add(time.Second) {
				conn.Tick(now)
				conn.Flush(w, &f.sc, now)
				if now.Sub(f.now) > 2*time.Hour {
					t.Fatal("the stream never ended")
				}
			}
			if got := body(t, w.buf.Bytes()); strings.Contains(got, "hasses-expiring") {
				t.Fatalf("body %q: want no hasses-expiring", got)
			}
		})
	}
}
