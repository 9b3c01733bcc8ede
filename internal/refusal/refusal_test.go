package refusal

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/lograte"
)

// newTest returns a Log with a clock the test moves.
func newTest() (*Log, *bytes.Buffer, *time.Time) {
	out := &bytes.Buffer{}
	l := New(slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Unix(1000, 0)
	l.limit.Now = func() time.Time { return now }
	return l, out, &now
}

// lines returns what was written since the last call.
func lines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	b.Reset()
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestFirstAtOnceThenCounted(t *testing.T) {
	l, out, now := newTest()
	l.Refused(PerAddrCap, 429, "203.0.113.1", nil)
	got := lines(out)
	if len(got) != 1 || !strings.Contains(got[0], "level=WARN") ||
		!strings.Contains(got[0], `msg="refused 1 stream: per-address cap (429), last from 203.0.113.1"`) ||
		!strings.Contains(got[0], "count=1") {
		t.Fatalf("first refusal: %q", got)
	}
	for i := range 411 {
		*now = now.Add(time.Millisecond)
		l.Refused(PerAddrCap, 429, "203.0.113.2", nil)
		if i == 0 {
			l.Refused(Unauthorized, 401, "198.51.100.1", errors.New("token expired"))
		}
	}
	got = lines(out)
	if len(got) != 1 || !strings.Contains(got[0], "level=INFO") || !strings.Contains(got[0], "(401)") || !strings.Contains(got[0], `err="token expired"`) {
		t.Fatalf("another reason is not held back by the first: %q", got)
	}
	// A second after the first line, the next refusal's line stands for
	// the 411 held back and itself.
	*now = time.Unix(1001, 0)
	l.Refused(PerAddrCap, 429, "203.0.113.7", nil)
	got = lines(out)
	if len(got) != 1 || !strings.Contains(got[0], `msg="refused 412 streams: per-address cap (429), last from 203.0.113.7"`) ||
		!strings.Contains(got[0], "count=412") {
		t.Fatalf("summary: %q", got)
	}
}

func TestNilDiscards(t *testing.T) {
	var l *Log
	l.Refused(Origin, 403, "z", nil)
}

// 3,000 refusals followed by silence are reported whole when the second
// closes, not as "refused 1 stream" and nothing more.
func TestBurstThenSilence(t *testing.T) {
	l, out, now := newTest()
	var fire []func()
	var waits []time.Duration
	l.limit.AfterFunc = func(d time.Duration, f func()) lograte.Timer {
		waits, fire = append(waits, d), append(fire, f)
		return fakeTimer{}
	}
	start := *now
	for i := range 3000 {
		*now = start.Add(time.Duration(i) * 300 * time.Microsecond) // 0.9 s in all
		l.Refused(ConnCap, 503, "192.0.2.9", nil)
	}
	if got := lines(out); len(got) != 1 || !strings.Contains(got[0], "refused 1 stream") {
		t.Fatalf("first line: %q", got)
	}
	if len(fire) != 1 || waits[0] != time.Second-300*time.Microsecond {
		t.Fatalf("timers %v, want one for the end of the second", waits)
	}
	*now = start.Add(time.Second)
	fire[0]()
	got := lines(out)
	if len(got) != 1 || !strings.Contains(got[0], `msg="refused 2999 streams: connection cap (503), last from 192.0.2.9"`) {
		t.Fatalf("end of the second: %q", got)
	}
	if len(fire) != 1 {
		t.Fatalf("timer set again with nothing held back: %v", waits)
	}
	// Once closed, nothing more is written.
	*now = now.Add(10 * time.Millisecond)
	l.Refused(ConnCap, 503, "192.0.2.9", nil)
	l.Close()
	if len(fire) != 2 {
		t.Fatalf("timers %v", waits)
	}
	*now = now.Add(time.Second)
	fire[1]()
	if got := lines(out); len(got) != 0 {
		t.Fatalf("after Close: %q", got)
	}
}

type fakeTimer struct{}

func (fakeTimer) Stop() bool { return true }
