// Package refusal logs the streams the SSE port refuses (401, 403, 429,
// 503) at the normal level, so that an operator sees why subscribers are
// turned away, without letting a flood of refusals flood the log: per
// reason, at most one line per interval, which counts the refusals since
// the last line and names the address of the latest.
package refusal

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Reason is why a stream was refused; it names the limit or the check.
type Reason string

// The reasons of the SSE port.
const (
	PerAddrCap   Reason = "per-address cap"         // 429, -max-conns-per-ip
	ConnCap      Reason = "connection cap"          // 503, -max-conns
	OutOfFiles   Reason = "out of file descriptors" // 503, the process's file limit
	Unauthorized Reason = "no valid token"          // 401, -jwt-key
	Forbidden    Reason = "token does not grant"    // 403, -jwt-key
	Origin       Reason = "origin not allowed"      // 403, -cors-origins
)

// DefaultInterval is the least time between two lines of one reason.
const DefaultInterval = time.Second

// Log writes the refusal lines. The zero value is not usable; a nil *Log
// discards everything, so front ends need not check.
type Log struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time // for tests

	mu      sync.Mutex
	reasons map[key]*pending
	timer   *time.Timer // flushes the suppressed counts; nil when none wait
	closed  bool
}

type key struct {
	reason Reason
	status int
}

// pending is what one reason refused since its last line.
type pending struct {
	lastLine time.Time
	n        int64  // refusals not yet reported
	last     string // address of the latest
	detail   string // error of the latest, if any
}

// New returns a Log writing to log at most one line per reason and
// interval (DefaultInterval if every <= 0).
func New(log *slog.Logger, every time.Duration) *Log {
	if every <= 0 {
		every = DefaultInterval
	}
	return &Log{log: log, every: every, now: time.Now, reasons: map[key]*pending{}}
}

// Refused records one refused stream from addr (the client address, as
// shown in clientlist) with its status and, optionally, the error that
// explains it. The first refusal of a reason is written at once; those
// within the next interval are counted and written together when it ends.
func (l *Log) Refused(reason Reason, status int, addr string, err error) {
	if l == nil {
		return
	}
	detail := ""
	if err != nil {
		detail = err.Error()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	now := l.now()
	k := key{reason, status}
	p := l.reasons[k]
	if p == nil {
		p = &pending{}
		l.reasons[k] = p
	}
	p.n++
	p.last, p.detail = addr, detail
	if now.Sub(p.lastLine) >= l.every {
		l.write(k, p, now)
		return
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(p.lastLine.Add(l.every).Sub(now), l.flushDue)
	}
}

// flushDue writes the counts whose interval has ended and waits for the
// rest.
func (l *Log) flushDue() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if l.closed {
		return
	}
	now := l.now()
	var next time.Duration
	for k, p := range l.reasons {
		if p.n == 0 {
			if now.Sub(p.lastLine) >= l.every {
				delete(l.reasons, k) // quiet again: forget it
			}
			continue
		}
		if wait := p.lastLine.Add(l.every).Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		l.write(k, p, now)
	}
	if next > 0 {
		l.timer = time.AfterFunc(next, l.flushDue)
	} else if len(l.reasons) > 0 {
		l.timer = time.AfterFunc(l.every, l.flushDue) // to forget quiet reasons
	}
}

// Close writes what is still counted and stops the timer; later refusals
// are not logged.
func (l *Log) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	now := l.now()
	for k, p := range l.reasons {
		if p.n > 0 {
			l.write(k, p, now)
		}
	}
}

func (l *Log) write(k key, p *pending, now time.Time) {
	level := slog.LevelInfo // an authorisation check doing its job
	if k.status == 429 || k.status == 503 {
		level = slog.LevelWarn // a capacity limit: the operator may need to act
	}
	noun := "streams"
	if p.n == 1 {
		noun = "stream"
	}
	msg := fmt.Sprintf("refused %d %s: %s (%d), last from %s", p.n, noun, k.reason, k.status, p.last)
	attrs := []slog.Attr{slog.String("reason", string(k.reason)), slog.Int("status", k.status),
		slog.Int64("count", p.n), slog.String("last", p.last)}
	if p.detail != "" {
		attrs = append(attrs, slog.String("err", p.detail))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
	p.n, p.lastLine, p.last, p.detail = 0, now, "", ""
}
