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
// with the count of those held back, which its line reports. A count is
// reported only by the next line of its key: nothing is written when a
// burst ends. Keys are independent of each other.
//
// The zero value is ready to use, a line per second per key. A Limiter is
// safe for concurrent use; it must not be copied after first use.
type Limiter[K comparable] struct {
	Every time.Duration    // least time between two lines of a key; 0 means DefaultEvery
	Now   func() time.Time // the clock; nil means time.Now (tests set one)

	mu   sync.Mutex
	keys map[K]*state
}

type state struct {
	last       time.Time // when the latest line of the key was let through
	suppressed int       // events held back since
}

// Allow counts an event of key and reports whether it gets a line now; if
// so, suppressed is how many events of key were held back since the
// previous line.
func (l *Limiter[K]) Allow(key K) (suppressed int, ok bool) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
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
	s.last, s.suppressed = t, 0
	return n, true
}

// forgetQuiet drops the keys that hold nothing back and could write a line
// now anyway; if that is not enough, it drops all (their counts are lost).
func (l *Limiter[K]) forgetQuiet(t time.Time, every time.Duration) {
	for k, s := range l.keys {
		if s.suppressed == 0 && t.Sub(s.last) >= every {
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
