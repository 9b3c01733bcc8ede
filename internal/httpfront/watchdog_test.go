package httpfront

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
	"golang.org/x/net/http2"
)

// Sizes for the lag tests: the first event is far more than the kernel's
// buffers (or the HTTP/2 window) hold, so its write blocks; with the two
// that follow, the stream is past the lag limit while it blocks.
const (
	lagLimit   = 512 << 10
	firstEvent = 384 << 10
	nextEvents = 100 << 10
)

// lagConfigs make the write timeout far longer than any test: only the
// watchdog can end a blocked write.
func lagConfigs() (hub.Config, stream.Config, Config) {
	return hub.Config{MaxLag: lagLimit}, stream.Config{WriteTimeout: time.Hour}, Config{SendBuffer: 16 << 10}
}

// publishLag publishes the events that take the stream past the lag limit
// while its first write blocks.
func (f *testFront) publishLag(t *testing.T) {
	f.publish(t, "t", strings.Repeat("b", nextEvents))
	f.publish(t, "t", strings.Repeat("c", nextEvents))
}

// An HTTP/1.1 client that stops reading blocks the stream's write; once
// the stream is past the lag limit the watchdog cuts the write (long
// before the write timeout), the stream counts as lagged, not stalled, and
// the connection closes.
func TestWatchdogCutsLaggingHTTP1Stream(t *testing.T) {
	t.Parallel()
	hcfg, scfg, cfg := lagConfigs()
	f := startFront(t, hcfg, scfg, cfg)
	c := f.dialH1(t, 32<<10)
	s := get(t, c, nil, "?subscribe=t")
	f.waitSubscribed(t, "t", 1)
	f.publish(t, "t", strings.Repeat("a", firstEvent))
	// The event's first bytes arrive: the write that cannot complete has
	// begun. From now on the client reads nothing.
	readStartOf(t, s.body, "data: a")
	f.publishLag(t)
	waitFor(t, "the lagging stream counted", func() bool { return f.srv.Stats().Lagged == 1 })
	if err := closedByServer(c); err != nil {
		t.Fatalf("the lagging stream's connection: %v", err)
	}
	waitFor(t, "the connection forgotten", func() bool { return f.srv.Stats().Conns == 0 })
	if st := f.srv.Stats(); st.Lagged != 1 || st.Stalled != 0 || st.Streams != 0 {
		t.Errorf("stats %+v, want 1 lagged and none stalled", st)
	}
}

// Over HTTP/2, a client that never opens its flow-control window blocks
// the stream's write; the watchdog resets the stream once it lags, and the
// connection stays.
func TestWatchdogCutsLaggingHTTP2Stream(t *testing.T) {
	t.Parallel()
	hcfg, scfg, cfg := lagConfigs()
	f := startFront(t, hcfg, scfg, cfg)
	h := f.dialH2Raw(t)
	h.get(t, 1, "?subscribe=t")
	published := false
	for {
		switch fr := h.next(t).(type) {
		case *http2.HeadersFrame:
			if st := h.status(t, fr); st != "200" {
				t.Fatalf("stream: %s", st)
			}
			f.waitSubscribed(t, "t", 1)
			f.publish(t, "t", strings.Repeat("a", firstEvent))
		case *http2.DataFrame:
			// Once the event's bytes arrive, its write has begun; 64 KiB
			// of window cannot take it.
			if !published && strings.Contains(string(fr.Data()), "data: a") {
				published = true
				f.publishLag(t)
			}
		case *http2.RSTStreamFrame:
			if !published {
				t.Fatalf("stream reset before it lagged: %v", fr.ErrCode)
			}
			waitFor(t, "the stream closed", func() bool { return f.srv.Stats().Streams == 0 })
			if st := f.srv.Stats(); st.Lagged != 1 || st.Stalled != 0 || st.Conns != 1 {
				t.Errorf("stats %+v, want 1 lagged, none stalled, the connection open", st)
			}
			return
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", fr.ErrCode)
		}
	}
}

// clientlist answers while a stream's write is blocked on a client that
// stopped reading (it waited for the write to end: up to the write
// timeout).
func TestClientsWhileAWriteBlocks(t *testing.T) {
	t.Parallel()
	hcfg, scfg, cfg := lagConfigs()
	hcfg.MaxLag = 64 << 20 // not lagging: the write stays blocked
	f := startFront(t, hcfg, scfg, cfg)
	c := f.dialH1(t, 32<<10)
	s := get(t, c, nil, "?subscribe=t&id=stuck")
	f.waitSubscribed(t, "t", 1)
	f.publish(t, "t", strings.Repeat("a", firstEvent))
	readStartOf(t, s.body, "data: a")
	// The write is blocked now; it stays blocked for the rest of the test.
	got := make(chan []string, 1)
	go func() {
		var out []string
		for _, ci := range f.srv.Clients() {
			out = append(out, fmt.Sprintf("%s %s %v", ci.State, ci.ID, ci.Tokens))
		}
		got <- out
	}()
	select {
	case cl := <-got:
		if len(cl) != 1 || cl[0] != "streaming stuck [t]" {
			t.Errorf("clients %q", cl)
		}
	case <-time.After(wait):
		t.Fatal("Clients blocked on a connection whose write blocks")
	}
	c.Close() // ends the write, and the test
}

// readStartOf reads r up to the first bytes of what starts with prefix,
// and no further: the rest stays unread.
func readStartOf(t *testing.T, r *bufio.Reader, prefix string) {
	t.Helper()
	var seen []byte
	for !strings.HasSuffix(string(seen), prefix) {
		b, err := r.ReadByte()
		if err != nil {
			t.Fatalf("waiting for %q: %v after %q", prefix, err, seen)
		}
		seen = append(seen, b)
	}
}

// The watchdog cuts a write of a lagging stream once, while the write is
// in progress, and never a write that has ended: the stream may be gone,
// and net/http's response writer panics once its handler has returned.
// (The watchdog once decided on a write, then cut it without looking
// again; the race is too narrow to provoke through a real connection.)
func TestCutOnlyDuringWrite(t *testing.T) {
	h := hub.New(hub.Config{MaxLag: 1024})
	core := stream.New(h, stream.Config{Logger: slog.New(slog.DiscardHandler)})
	sub, _ := h.Subscribe(h.NewOwner(func() {}), []string{"t"}, "", "", nil)
	defer h.Unsubscribe(sub)
	if _, err := h.Publish(hub.Message{Targets: []string{"t"}, Data: []byte(strings.Repeat("x", 4096))}); err != nil { // past the lag limit
		t.Fatal(err)
	}
	newWriter := func(write func([][]byte) (int, error)) (*blockingWriter, *atomic.Int32) {
		var cuts atomic.Int32
		w := &blockingWriter{core: core, st: &stream.Stream{}, write: write, set: func(dl time.Time) error {
			if !dl.IsZero() && !dl.After(time.Now()) { // zero: no deadline, as after every write
				cuts.Add(1)
			}
			return nil
		}}
		w.sub.Store(sub)
		return w, &cuts
	}

	ended, cuts := newWriter(func([][]byte) (int, error) { return 1, nil })
	ended.Write([][]byte{{'x'}})
	if ended.cut() || cuts.Load() != 0 {
		t.Fatal("cut a write that had ended")
	}

	release := make(chan struct{})
	blocked, cuts := newWriter(func([][]byte) (int, error) { <-release; return 0, os.ErrDeadlineExceeded })
	done := make(chan struct{})
	go func() { blocked.Write([][]byte{{'x'}}); close(done) }()
	waitFor(t, "the write in progress", func() bool { return blocked.since.Load() != 0 })
	if !blocked.cut() || blocked.cut() || cuts.Load() != 1 {
		t.Fatalf("%d cuts of a lagging stream's blocked write, want 1", cuts.Load())
	}
	close(release)
	<-done
	if blocked.cut() || cuts.Load() != 1 {
		t.Fatal("cut a write that had ended")
	}
	if st := core.Stats(); st.Lagged != 1 || st.Stalled != 0 {
		t.Errorf("stats %+v, want 1 lagged and none stalled", st)
	}
}
