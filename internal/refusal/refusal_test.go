package refusal

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type buf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines returns what was written since the last call.
func (b *buf) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.TrimSpace(b.b.String())
	b.b.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// newTest returns a Log with a clock the test moves; its interval is an
// hour of real time, so that its own timer never fires during a test.
func newTest() (*Log, *buf, *time.Time) {
	out := &buf{}
	l := New(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})), time.Hour)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	return l, out, &now
}

func TestFirstAtOnceThenCounted(t *testing.T) {
	l, out, now := newTest()
	l.Refused(PerAddrCap, 429, "203.0.113.1", nil)
	got := out.lines()
	if len(got) != 1 || !strings.Contains(got[0], "level=WARN") ||
		!strings.Contains(got[0], `msg="refused 1 stream: per-address cap (429), last from 203.0.113.1"`) ||
		!strings.Contains(got[0], "count=1") {
		t.Fatalf("first refusal: %q", got)
	}
	for i := range 411 {
		*now = now.Add(time.Second)
		l.Refused(PerAddrCap, 429, "203.0.113.2", nil)
		if i == 0 {
			l.Refused(Unauthorized, 401, "198.51.100.1", errors.New("token expired"))
		}
	}
	got = out.lines()
	if len(got) != 1 || !strings.Contains(got[0], "level=INFO") || !strings.Contains(got[0], "(401)") || !strings.Contains(got[0], `err="token expired"`) {
		t.Fatalf("another reason is not held back by the first: %q", got)
	}
	// An hour later the 411 held back are written at the next refusal.
	*now = now.Add(time.Hour)
	l.Refused(PerAddrCap, 429, "203.0.113.7", nil)
	got = out.lines()
	if len(got) != 1 || !strings.Contains(got[0], `msg="refused 412 streams: per-address cap (429), last from 203.0.113.7"`) {
		t.Fatalf("summary: %q", got)
	}
}

func TestFlushWritesHeldBackCounts(t *testing.T) {
	l, out, now := newTest()
	l.Refused(ConnCap, 503, "a", nil)
	l.Refused(ConnCap, 503, "b", nil)
	l.Refused(ConnCap, 503, "c", nil)
	out.lines()
	l.flushDue() // too early: nothing
	if got := out.lines(); got != nil {
		t.Fatalf("flush before the interval: %q", got)
	}
	*now = now.Add(time.Hour)
	l.flushDue()
	got := out.lines()
	if len(got) != 1 || !strings.Contains(got[0], "refused 2 streams: connection cap (503), last from c") {
		t.Fatalf("flush: %q", got)
	}
	*now = now.Add(time.Hour)
	l.flushDue() // nothing held back: quiet, and the reason is forgotten
	if got := out.lines(); got != nil || len(l.reasons) != 0 {
		t.Fatalf("quiet flush: %q, %d reasons kept", got, len(l.reasons))
	}
}

func TestCloseWritesTheRest(t *testing.T) {
	l, out, _ := newTest()
	l.Refused(Origin, 403, "x", nil)
	l.Refused(Origin, 403, "y", nil)
	out.lines()
	l.Close()
	if got := out.lines(); len(got) != 1 || !strings.Contains(got[0], "refused 1 stream: origin not allowed (403), last from y") {
		t.Fatalf("close: %q", got)
	}
	l.Refused(Origin, 403, "z", nil)
	l.Close()
	if got := out.lines(); got != nil {
		t.Fatalf("after close: %q", got)
	}
	var nilLog *Log
	nilLog.Refused(Origin, 403, "z", nil) // a nil Log discards
	nilLog.Close()
}

// TestTimerFlushes: with a real clock and a short interval, the held-back
// count is written without another refusal. It waits for the line rather
// than for a time, so it does not depend on the machine's speed.
func TestTimerFlushes(t *testing.T) {
	out := &buf{}
	l := New(slog.New(slog.NewTextHandler(out, nil)), 10*time.Millisecond)
	defer l.Close()
	l.Refused(PerAddrCap, 429, "a", nil)
	l.Refused(PerAddrCap, 429, "b", nil)
	var all []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		all = append(all, out.lines()...)
		if len(all) == 2 {
			break
		}
	}
	if len(all) != 2 || !strings.Contains(all[1], "refused 1 stream: per-address cap (429), last from b") {
		t.Fatalf("lines: %q", all)
	}
}
