// Package lograte bounds the log lines of events that come in floods
// (refused streams, bad control units, accept errors): per key, at most one
// line per interval, and the next line says how many were held back.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is the least time between two lines of one key.
const DefaultEvery = time.Second

// maxKeys bounds the keys remembered; callers use a fixed set, this only
// guards against one passing something unbounded.
const maxKeys = 256

// Limiter decides which events of a key get a log line. The first event of
// a key is let through at once; the events of that key within Every after
// it are held back and counted; the first event after that is let through
// with the count of those held back, which its line reports. With Allow
// and Log, a count is reported only by the next line of its key: nothing is
// written when a burst ends. With Report, the count is also reported when
// the interval closes without a next event, by a timer that Stop ends.
// Keys are independent of each other.
//
// The zero value is ready to use, a line per second per key. A Limiter is
// safe for concurrent use; it must not be copied after first use.
type Limiter[K comparable] struct {
	Every time.Duration    // least time between two lines of a key; 0 means DefaultEvery
	Now   func() time.Time // the clock; nil means time.Now (tests set one)
	// AfterFunc runs f after d, for Report; nil means time.AfterFunc
	// (tests set one and run f themselves).
	AfterFunc func(d time.Duration, f func()) Timer

	mu      sync.Mutex
	keys    map[K]*state
	timer   Timer // armed while a Report count waits for its interval to close
	stopped bool
}

// Timer is what AfterFunc returns: *time.Timer is one.
type Timer interface{ Stop() bool }

type state struct {
	last       time.Time   // when the latest line of the key was let through
	suppressed int         // events held back since
	report     func(n int) // with Report: writes the line of the held-back events
}

// Allow counts an event of key and reports whether it gets a line now; if
// so, suppressed is how many events of key were held back since the
// previous line.
func (l *Limiter[K]) Allow(key K) (suppressed int, ok bool) {
	t, every := l.now(), l.every()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.allow(key, t, every)
}

func (l *Limiter[K]) allow(key K, t time.Time, every time.Duration) (suppressed int, ok bool) {
	s := l.keys[key]
	if s == nil {
		if l.keys == nil {
			l.keys = map[K]*state{}
		}
		if len(l.keys) >= maxKeys {
			l.forgetQuiet(t, every)
		}
		l.keys[key] = &state{last: t}
		return 0, true
	}
	if t.Sub(s.last) < every {
		s.suppressed++
		return 0, false
	}
	n := s.suppressed
	s.last, s.suppressed, s.report = t, 0, nil
	return n, true
}

// Report counts an event of key like Allow. If it gets a line now, report
// is called at once with the number of events it stands for (itself and
// those held back); otherwise report is kept as the key's latest, and if no
// line of the key comes before its interval closes, it is called then with
// the number held back. So a burst followed by silence is reported whole,
// a line per interval at most. report runs without the Limiter's lock held.
func (l *Limiter[K]) Report(key K, report func(n int)) {
	t, every := l.now(), l.every()
	l.mu.Lock()
	n, ok := l.allow(key, t, every)
	if !ok {
		l.keys[key].report = report
		l.arm(every)
	}
	l.mu.Unlock()
	if ok {
		report(n + 1)
	}
}

// Stop ends the timer of Report: held-back counts not yet reported are
// dropped and no report runs after Stop returns, except one already under
// way. Report still works after Stop, without the end-of-interval lines.
func (l *Limiter[K]) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// arm sets the timer for the first interval that closes on a held-back
// Report count, unless it is set already. l.mu is held.
func (l *Limiter[K]) arm(every time.Duration) {
	if l.timer != nil || l.stopped {
		return
	}
	var first time.Time
	for _, s := range l.keys {
		if s.report != nil && (first.IsZero() || s.last.Before(first)) {
			first = s.last
		}
	}
	if first.IsZero() {
		return
	}
	after := l.AfterFunc
	if after == nil {
		after = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	l.timer = after(max(first.Add(every).Sub(l.now()), 0), l.flush)
}

// flush reports the held-back counts whose interval has closed, each as a
// line of its key (the interval restarts from it), and sets the timer for
// the next.
func (l *Limiter[K]) flush() {
	t, every := l.now(), l.every()
	type due struct {
		report func(int)
		n      int
	}
	var out []due
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.timer = nil
	for _, s := range l.keys {
		if s.report != nil && t.Sub(s.last) >= every {
			out = append(out, due{s.report, s.suppressed})
			s.last, s.suppressed, s.report = t, 0, nil
		}
	}
	l.arm(every)
	l.mu.Unlock()
	for _, d := range out {
		d.report(d.n)
	}
}

func (l *Limiter[K]) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter[K]) every() time.Duration {
	if l.Every <= 0 {
		return DefaultEvery
	}
	return l.Every
}

// forgetQuiet drops the keys that hold nothing back and could write a line
// now anyway; if that is not enough, it drops all (their counts are lost).
func (l *Limiter[K]) forgetQuiet(t time.Time, every time.Duration) {
	for k, s := range l.keys {
		if s.suppressed == 0 && s.report == nil && t.Sub(s.last) >= every {
			delete(l.keys, k)
		}
	}
	if len(l.keys) >= maxKeys {
		clear(l.keys)
	}
}

// Log writes msg and args to log at level if Allow(key) lets it through,
// with suppressed=N appended when N events of key were held back before it.
func (l *Limiter[K]) Log(log *slog.Logger, level slog.Level, key K, msg string, args ...any) {
	n, ok := l.Allow(key)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
