package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource hands out the counters and tokens a test sets.
type fakeSource struct {
	mu      sync.Mutex
	walk    func() // called by TopTokens
	c       Counters
	subs    []Token
	events  []Token
	topCall int
}

func (f *fakeSource) DashboardCounters() Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.c
	c.Refused = append([]Count(nil), f.c.Refused...)
	return c
}

func (f *fakeSource) TopTokens(n int) ([]Token, []Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.topCall++
	if f.walk != nil {
		f.walk()
	}
	return f.subs, f.events
}

var t0 = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

func counters(pub, del, lagged, refusedA, refusedB int64) Counters {
	return Counters{Connections: 5, Streams: 4, Topics: 3, Subscribers: 4, Published: pub, Delivered: del, Lagged: lagged,
		Refused: []Count{{"a", refusedA}, {"b", refusedB}}, HistoryEvents: 7, HistoryBytes: 700}
}

func TestRecordRates(t *testing.T) {
	d := New(&fakeSource{}, Config{Interval: time.Second, Window: 10 * time.Second})
	d.record(t0, counters(100, 1000, 1, 5, 0), false, false, nil, nil)
	d.record(t0.Add(time.Second), counters(110, 1040, 3, 5, 2), false, false, nil, nil)
	d.record(t0.Add(3*time.Second), counters(113, 1040, 3, 6, 2), false, false, nil, nil)
	// A counter that goes back (it cannot, but a sampler must not draw
	// negative rates) counts as zero.
	d.record(t0.Add(4*time.Second), counters(50, 1000, 0, 0, 0), false, false, nil, nil)
	got := d.Samples()
	want := []Sample{
		{T: t0.UnixMilli(), Refused: []int64{0, 0}},
		{T: t0.Add(time.Second).UnixMilli(), In: 10, Out: 40, Lagged: 2, Refused: []int64{0, 2}},
		{T: t0.Add(3 * time.Second).UnixMilli(), In: 1.5, Out: 0, Lagged: 0, Refused: []int64{1, 0}},
		{T: t0.Add(4 * time.Second).UnixMilli(), Refused: []int64{0, 0}},
	}
	for i := range want {
		want[i].Conns, want[i].Streams, want[i].Topics, want[i].Subscribers = 5, 4, 3, 4
		want[i].HistEvents, want[i].HistBytes = 7, 700
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("samples\n got %+v\nwant %+v", got, want)
	}
	if d.reasons[0] != "a" || d.reasons[1] != "b" || len(d.reasons) != 2 {
		t.Fatalf("reasons %v", d.reasons)
	}
}

// The ring holds the window and no more: memory does not grow with time.
func TestRingIsBounded(t *testing.T) {
	d := New(&fakeSource{}, Config{Interval: time.Second, Window: 5 * time.Second})
	if len(d.ring) != 5 {
		t.Fatalf("ring of %d samples for a 5 s window at 1 s", len(d.ring))
	}
	for i := range 23 {
		d.record(t0.Add(time.Duration(i)*time.Second), counters(int64(i), 0, 0, 0, 0), false, false, nil, nil)
	}
	got := d.Samples()
	if len(got) != 5 || len(d.ring) != 5 {
		t.Fatalf("%d samples held, ring %d", len(got), len(d.ring))
	}
	for i, s := range got {
		if want := t0.Add(time.Duration(18+i) * time.Second).UnixMilli(); s.T != want || s.In != 1 {
			t.Errorf("sample %d: %+v, want t=%d in=1", i, s, want)
		}
	}
}

func TestTopTokens(t *testing.T) {
	src := &fakeSource{
		subs:   []Token{{Token: "news", Subscribers: 3}},
		events: []Token{{Token: "news", Subscribers: 3, Events: 20}, {Token: "x", Events: 5}},
	}
	d := New(src, Config{Interval: time.Second})
	d.sample() // nobody watches: the tokens are not walked
	if src.topCall != 0 || d.top.Watched {
		t.Fatalf("TopTokens called %d times with nobody watching", src.topCall)
	}
	d.viewers.Add(1)
	// The first walk only starts the event counts: no rate yet.
	d.record(t0, counters(0, 0, 0, 0, 0), true, true, src.subs, src.events)
	if len(d.top.ByRate) != 0 || !reflect.DeepEqual(d.top.BySubs, []TopRow{{Token: "news", Subscribers: 3}}) {
		t.Fatalf("first walk: %+v", d.top)
	}
	d.record(t0.Add(2*time.Second), counters(0, 0, 0, 0, 0), true, true, src.subs, src.events)
	want := []TopRow{{Token: "news", Subscribers: 3, Rate: 10}, {Token: "x", Rate: 2.5}}
	if !reflect.DeepEqual(d.top.ByRate, want) || !d.top.Watched {
		t.Fatalf("by rate %+v, want %+v", d.top.ByRate, want)
	}
	// Between walks the tables stay.
	d.record(t0.Add(3*time.Second), counters(0, 0, 0, 0, 0), true, false, nil, nil)
	if !reflect.DeepEqual(d.top.ByRate, want) {
		t.Fatalf("between walks: %+v", d.top.ByRate)
	}
	// After a pause (nobody watching) the counts are not a rate.
	d.record(t0.Add(4*time.Second), counters(0, 0, 0, 0, 0), false, false, nil, nil)
	d.record(t0.Add(time.Minute), counters(0, 0, 0, 0, 0), true, true, src.subs, src.events)
	if len(d.top.ByRate) != 0 {
		t.Fatalf("after a pause: %+v", d.top.ByRate)
	}
	d.sample()
	if src.topCall != 1 {
		t.Fatalf("TopTokens called %d times while watched, want 1", src.topCall)
	}
}

// A walk that takes long is made less often: at most 1% of the time.
func TestSlowWalksAreSpaced(t *testing.T) {
	now := t0
	src := &fakeSource{}
	src.walk = func() { now = now.Add(30 * time.Millisecond) }
	d := New(src, Config{Interval: time.Second, Now: func() time.Time { return now }})
	d.viewers.Add(1)
	var walks []int
	for i := range 10 {
		before := src.topCall
		d.sample()
		if src.topCall > before {
			walks = append(walks, i)
		}
		now = now.Add(time.Second)
	}
	// 30 ms a walk: the next one no sooner than 3 s later.
	if !reflect.DeepEqual(walks, []int{0, 3, 6, 9}) {
		t.Fatalf("walks at samples %v", walks)
	}
}

// A page that fell behind gets the samples it missed, from the ring, or a
// new snapshot if the ring no longer has them.
func TestSince(t *testing.T) {
	d := New(&fakeSource{}, Config{Interval: time.Second, Window: 4 * time.Second})
	for i := range 6 {
		d.record(t0.Add(time.Duration(i)*time.Second), counters(int64(i*10), 0, 0, 0, 0), false, false, nil, nil)
	}
	events, init, newest, _ := d.since(3)
	if init != nil || newest != 6 || len(events) != 3 {
		t.Fatalf("since 3: %d events, init %v, newest %d", len(events), init != nil, newest)
	}
	for i, ev := range events {
		var m sampleEvent
		if err := json.Unmarshal(ev, &m); err != nil {
			t.Fatal(err)
		}
		if want := uint64(4 + i); m.Seq != want || m.Sample.T != t0.Add(time.Duration(want-1)*time.Second).UnixMilli() ||
			(m.Top != nil) != (i == 2) {
			t.Errorf("event %d: %s", i, ev)
		}
	}
	if events, init, _, _ := d.since(6); len(events) != 0 || init != nil {
		t.Errorf("up to date: %d events, init %v", len(events), init != nil)
	}
	if events, init, _, _ := d.since(1); len(events) != 0 || init == nil {
		t.Errorf("behind by more than the ring: %d events, init %v", len(events), init != nil)
	}
}

// sseReader reads named events from a live feed.
type sseReader struct {
	t  *testing.T
	br *bufio.Reader
}

func (r sseReader) next() (event, data string) {
	r.t.Helper()
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("reading the feed: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && event != "":
			return event, data
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

func TestFeed(t *testing.T) {
	src := &fakeSource{c: counters(0, 0, 0, 0, 0), subs: []Token{{Token: "news", Subscribers: 2}}}
	d := New(src, Config{Interval: time.Second, Version: "9.9", Login: true, Viewers: 1,
		Now: func() time.Time { return t0.Add(time.Second) }})
	d.record(t0, counters(0, 0, 0, 0, 0), false, false, nil, nil)
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/dashboard/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("feed: %d %q", resp.StatusCode, ct)
	}
	r := sseReader{t, bufio.NewReader(resp.Body)}
	ev, data := r.next()
	var snap snapshot
	if err := json.Unmarshal([]byte(data), &snap); ev != "init" || err != nil {
		t.Fatalf("first event %q %q: %v", ev, data, err)
	}
	if snap.Version != "9.9" || !snap.Login || snap.Interval != 1000 || snap.Window != 300000 ||
		len(snap.Samples) != 1 || !reflect.DeepEqual(snap.Reasons, []string{"a", "b"}) {
		t.Fatalf("snapshot %+v", snap)
	}

	// A second page is over the limit of one.
	if resp2, err := http.Get(srv.URL + "/dashboard/events"); err != nil || resp2.StatusCode != 503 {
		t.Fatalf("second viewer: %v %v", resp2.StatusCode, err)
	} else {
		resp2.Body.Close()
	}

	// While a page is open, a sample walks the tokens and reaches the page.
	src.mu.Lock()
	src.c = counters(5, 9, 0, 0, 0)
	src.mu.Unlock()
	d.sample()
	ev, data = r.next()
	var msg struct {
		Seq    uint64
		Sample Sample
		Top    Top
	}
	if err := json.Unmarshal([]byte(data), &msg); ev != "sample" || err != nil {
		t.Fatalf("second event %q %q: %v", ev, data, err)
	}
	if msg.Seq != snap.Seq+1 || msg.Sample.In <= 0 || !msg.Top.Watched || len(msg.Top.BySubs) != 1 || msg.Top.BySubs[0].Token != "news" {
		t.Fatalf("sample %+v", msg)
	}
}

// The feed ends when the dashboard stops, so the admin listener can shut
// down.
func TestFeedEndsWithRun(t *testing.T) {
	d := New(&fakeSource{}, Config{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { d.Run(ctx); close(ran) }()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/dashboard/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := sseReader{t, bufio.NewReader(resp.Body)}
	if ev, _ := r.next(); ev != "init" {
		t.Fatalf("first event %q", ev)
	}
	cancel()
	<-ran
	// The body ends (a sample may come first, the one Run takes at start).
	if rest, err := io.ReadAll(resp.Body); err != nil || strings.Contains(string(rest), "event: init") {
		t.Fatalf("after stop: %q %v", rest, err)
	}
}

// The page is self-contained: nothing is loaded from elsewhere, and the
// browser is told so.
func TestPageHasNoExternalAssets(t *testing.T) {
	srv := httptest.NewServer(New(&fakeSource{}, Config{}).Handler())
	defer srv.Close()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	for _, path := range []string{"/", "/dashboard/app.js", "/dashboard/app.css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("%s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
		if m := external.Find(body); m != nil {
			t.Errorf("%s loads something from elsewhere: %q", path, m)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if resp, _ := http.Get(srv.URL + "/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope: %d", resp.StatusCode)
	}
}

func TestLoginPage(t *testing.T) {
	for _, failed := range []bool{false, true} {
		w := httptest.NewRecorder()
		Login(w, http.StatusUnauthorized, failed)
		body := w.Body.String()
		if w.Code != 401 || !strings.Contains(body, `action="login"`) || !strings.Contains(body, `type="password"`) {
			t.Fatalf("login page %d:\n%s", w.Code, body)
		}
		if strings.Contains(body, "Wrong secret") != failed {
			t.Errorf("failed=%v, page:\n%s", failed, body)
		}
	}
}
