// Package refusal logs the streams the SSE port refuses (401, 403, 429,
// 503) at the normal level, so that an operator sees why subscribers are
// turned away, without letting a flood of refusals flood the log: per
// reason, at most one line a second (lograte), which counts the refusals
// since the previous line and names the address of the latest.
package refusal

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hasses-go/hasses/internal/lograte"
)

// Reason is why a stream was refused; it names the limit or the check.
type Reason string

// The reasons of the SSE port.
const (
	PerAddrCap   Reason = "per-address cap"         // 429, -max-conns-per-ip
	PerProxyCap  Reason = "per-proxy cap"           // 429, -max-conns-per-proxy: a trusted proxy's streams that name no client
	ConnCap      Reason = "connection cap"          // 503, -max-conns
	OutOfFiles   Reason = "out of file descriptors" // 503, the process's file limit
	Unauthorized Reason = "no valid token"          // 401, -jwt-key
	Forbidden    Reason = "token does not grant"    // 403, -jwt-key
	Origin       Reason = "origin not allowed"      // 403, -cors-origins
)

// The reasons of the admin and publish-API listeners, whose refusals are
// requests or connections, not streams.
const (
	HTTPCap     Reason = "admin/publish listener connection cap" // 503 in total, 429 per address
	WrongSecret Reason = "wrong publisher secret"                // 401
	Guessing    Reason = "too many wrong secrets"                // 429, the address is throttled
)

// Log writes the refusal lines. A nil *Log discards everything, so front
// ends need not check.
type Log struct {
	log   *slog.Logger
	limit lograte.Limiter[key]
}

type key struct {
	reason Reason
	status int
}

// New returns a Log writing to log.
func New(log *slog.Logger) *Log { return &Log{log: log} }

// Refused records one refused stream from addr (the client address, as
// shown in clientlist) with its status and, optionally, the error that
// explains it. The first refusal of a reason is written at once; those
// within the next second are counted, and a line says how many refusals it
// stands for: the next refusal's, or, when none comes, one written as the
// second closes (so a burst followed by silence is reported whole).
func (l *Log) Refused(reason Reason, status int, addr string, err error) {
	if l == nil {
		return
	}
	l.limit.Report(key{reason, status}, func(n int) { l.write(reason, status, addr, err, n) })
}

// Close stops the end-of-second lines; refusals still pending are dropped.
func (l *Log) Close() {
	if l != nil {
		l.limit.Stop()
	}
}

func (l *Log) write(reason Reason, status int, addr string, err error, n int) {
	level := slog.LevelInfo // an authorisation check doing its job
	if status == 429 || status == 503 {
		level = slog.LevelWarn // a capacity limit: the operator may need to act
	}
	noun := "streams"
	switch reason {
	case HTTPCap, WrongSecret, Guessing:
		noun = "requests"
	}
	if n == 1 {
		noun = noun[:len(noun)-1]
	}
	msg := fmt.Sprintf("refused %d %s: %s (%d), last from %s", n, noun, reason, status, addr)
	attrs := []slog.Attr{slog.String("reason", string(reason)), slog.Int("status", status),
		slog.Int("count", n), slog.String("last", addr)}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}
