package lograte

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a time the test moves; safe for the goroutines of a test.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Unix(1000, 0).UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// A burst: the first event at once, the rest of its second held back, and
// the first event a second later reports them.
func TestBurst(t *testing.T) {
	c := newClock()
	l := Limiter[string]{Now: c.now}
	if n, ok := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("first event: %d, %v", n, ok)
	}
	for range 99 {
		c.add(10 * time.Millisecond) // the last at 990 ms
		if _, ok := l.Allow("a"); ok {
			t.Fatalf("event within the second let through at %v", c.now())
		}
	}
	c.add(10 * time.Millisecond) // a second after the first line
	if n, ok := l.Allow("a"); !ok || n != 99 {
		t.Fatalf("after a second: %d, %v; want 99 held back", n, ok)
	}
	// The count starts again, and the interval runs from the new line.
	c.add(500 * time.Millisecond)
	if _, ok := l.Allow("a"); ok {
		t.Fatal("event half a second after a line let through")
	}
	c.add(time.Hour)
	if n, ok := l.Allow("a"); !ok || n != 1 {
		t.Fatalf("an hour later: %d, %v; want 1 held back", n, ok)
	}
	if n, ok := l.Allow("a"); ok || n != 0 {
		t.Fatalf("right after: %d, %v", n, ok)
	}
}

// Keys do not hold each other back, nor share their counts.
func TestKeysIndependent(t *testing.T) {
	c := newClock()
	l := Limiter[string]{Now: c.now}
	l.Allow("a")
	l.Allow("a")
	l.Allow("a")
	if n, ok := l.Allow("b"); !ok || n != 0 {
		t.Fatalf("another key: %d, %v", n, ok)
	}
	l.Allow("b")
	c.add(time.Second)
	if n, ok := l.Allow("a"); !ok || n != 2 {
		t.Fatalf("a: %d, %v; want 2 held back", n, ok)
	}
	if n, ok := l.Allow("b"); !ok || n != 1 {
		t.Fatalf("b: %d, %v; want 1 held back", n, ok)
	}
}

// Every sets the interval; the zero value is a second on the real clock.
func TestEveryAndZeroValue(t *testing.T) {
	c := newClock()
	l := Limiter[int]{Now: c.now, Every: time.Minute}
	l.Allow(1)
	c.add(59 * time.Second)
	if _, ok := l.Allow(1); ok {
		t.Fatal("let through before Every")
	}
	c.add(time.Second)
	if n, ok := l.Allow(1); !ok || n != 1 {
		t.Fatalf("after Every: %d, %v", n, ok)
	}
	var z Limiter[string]
	if _, ok := z.Allow("x"); !ok {
		t.Fatal("zero value held back the first event")
	}
}

// Log writes the lines let through, with suppressed=N only when N > 0.
func TestLog(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	l := Limiter[string]{Now: c.now}
	for range 50 {
		l.Log(log, slog.LevelWarn, "bad", "control: unit ignored", "unit", "x")
	}
	c.add(time.Second)
	l.Log(log, slog.LevelWarn, "bad", "control: unit ignored", "unit", "y")
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != 2 ||
		!strings.Contains(got[0], `level=WARN msg="control: unit ignored" unit=x`) || strings.Contains(got[0], "suppressed") ||
		!strings.HasSuffix(got[1], `msg="control: unit ignored" unit=y suppressed=49`) {
		t.Fatalf("lines:\n%s", out.String())
	}
}

// Many goroutines at once: exactly one line in the interval, and the next
// line counts every other event (run with -race).
func TestConcurrent(t *testing.T) {
	c := newClock()
	l := Limiter[string]{Now: c.now}
	const goroutines, each = 8, 500
	var lines atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				if _, ok := l.Allow("k"); ok {
					lines.Add(1)
				}
				l.Allow(fmt.Sprint("own", g)) // other keys alongside
			}
		})
	}
	wg.Wait()
	if n := lines.Load(); n != 1 {
		t.Fatalf("%d lines let through within one interval", n)
	}
	c.add(time.Second)
	if n, ok := l.Allow("k"); !ok || n != goroutines*each-1 {
		t.Fatalf("next line: %d, %v; want %d held back", n, ok, goroutines*each-1)
	}
}

// A caller passing ever new keys cannot grow the map without bound; quiet
// keys are forgotten first, so a key holding a count keeps it.
func TestBoundedKeys(t *testing.T) {
	c := newClock()
	l := Limiter[int]{Now: c.now}
	l.Allow(-1)
	l.Allow(-1) // holds one back
	c.add(time.Second)
	for i := range 10 * maxKeys {
		l.Allow(i)
		c.add(time.Second)
	}
	if len(l.keys) > maxKeys {
		t.Fatalf("%d keys kept", len(l.keys))
	}
	if n, ok := l.Allow(-1); !ok || n != 1 {
		t.Fatalf("the held-back count was lost: %d, %v", n, ok)
	}
}

// Report: a count held back is reported when its interval closes with no
// next event, once; a line let through calls report at once; Stop ends it.
func TestReportAtIntervalEnd(t *testing.T) {
	c := newClock()
	var timers []func()
	var waits []time.Duration
	l := Limiter[string]{Now: c.now, AfterFunc: func(d time.Duration, f func()) Timer {
		timers, waits = append(timers, f), append(waits, d)
		return stopper{}
	}}
	var got []string
	rep := func(s string) func(int) { return func(n int) { got = append(got, fmt.Sprint(s, n)) } }
	l.Report("a", rep("a"))
	c.add(100 * time.Millisecond)
	l.Report("b", rep("b"))
	c.add(100 * time.Millisecond)
	for i := range 5 {
		l.Report("a", rep(fmt.Sprint("a", i, "/")))
		l.Report("b", rep("b"))
	}
	if fmt.Sprint(got) != "[a1 b1]" || len(timers) != 1 || waits[0] != 800*time.Millisecond {
		t.Fatalf("lines %v, timers %v", got, waits)
	}
	c.add(800 * time.Millisecond) // a's interval closes, not b's
	timers[0]()
	if fmt.Sprint(got) != "[a1 b1 a4/5]" || len(timers) != 2 || waits[1] != 100*time.Millisecond {
		t.Fatalf("lines %v, timers %v", got, waits)
	}
	c.add(100 * time.Millisecond)
	timers[1]()
	if fmt.Sprint(got) != "[a1 b1 a4/5 b5]" || len(timers) != 2 {
		t.Fatalf("lines %v, timers %v", got, waits)
	}
	// The flushed line starts the interval: an event right after is held.
	l.Report("a", rep("a"))
	if len(got) != 4 || len(timers) != 3 {
		t.Fatalf("lines %v, timers %v", got, waits)
	}
	l.Stop()
	c.add(time.Second)
	timers[2]()
	if len(got) != 4 {
		t.Fatalf("report after Stop: %v", got)
	}
}

type stopper struct{}

func (stopper) Stop() bool { return true }
