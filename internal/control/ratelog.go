package control

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimiter lets through about one log line per second per reason, so
// that a misbehaving sender (or a flood of accept errors) cannot fill the
// log, and counts the lines it held back.
type logLimiter struct {
	now func() time.Time // nil means time.Now; tests set a clock

	mu      sync.Mutex
	reasons map[string]*limited
}

type limited struct {
	last       time.Time
	suppressed int
}

// maxReasons bounds the map; reasons are a fixed set of strings, this only
// guards against a caller passing something unbounded.
const maxReasons = 256

// allow reports whether a line for reason may be logged now, and how many
// were suppressed since the last one.
func (l *logLimiter) allow(reason string) (bool, int) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reasons == nil {
		l.reasons = map[string]*limited{}
	}
	r := l.reasons[reason]
	if r == nil {
		if len(l.reasons) >= maxReasons {
			clear(l.reasons)
		}
		l.reasons[reason] = &limited{last: t}
		return true, 0
	}
	if t.Sub(r.last) < time.Second {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = t, 0
	return true, n
}

// log writes one line at level unless reason was logged less than a second
// ago; the next line that gets through says how many were held back.
func (h *Handler) log(level slog.Level, reason, msg string, args ...any) {
	ok, n := h.logs.allow(reason)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	h.Logger.Log(context.Background(), level, msg, args...)
}

func (h *Handler) warn(reason, msg string, args ...any) { h.log(slog.LevelWarn, reason, msg, args...) }
