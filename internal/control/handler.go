package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/lograte"
	"github.com/hasses-go/hasses/internal/pipeline"
	"github.com/hasses-go/hasses/publish"
)

// Backend is what the control channel drives: the running server.
// Publications go through the Handler's Pipeline instead.
type Backend interface {
	Counters() Counters
	SubscribedClients(token string) int
	// Presence lists who is subscribed to tokens (on every node of a
	// cluster).
	Presence(ctx context.Context, tokens []string) ([]hub.TokenPresence, error)
	Clients() []ClientInfo
	SetReinit(on bool)
	Info() Info
}

// Counters are hasses' connection and delivery counters (spec 4.7).
type Counters struct {
	AllConn int64 // every open connection on the SSE port
	SSEConn int64 // streaming connections
	MaxConn int64 // highest AllConn seen
	MsgSend int64 // deliveries: one per message per receiving stream
}

// ClientInfo describes one SSE connection, for clientlist.
type ClientInfo struct {
	FD        int
	Addr      string
	State     string
	ID        string
	UserAgent string
	Tokens    []string
	Age       time.Duration
}

// Info describes the server, for status and tcpstatus.
type Info struct {
	Version  string
	Mode     string // "unencrypted (http)" or "SSL encrypted (https)"
	Started  time.Time
	Reinit   bool
	CORSBase string
}

// Handler executes control units from the TCP port and the FIFO.
type Handler struct {
	Backend Backend
	// Pipeline validates, routes and counts publications; its Limits
	// bound the units (zero fields mean the defaults below).
	Pipeline *pipeline.Pipeline
	Logger   *slog.Logger
	// Level is the logger's level; loglevel_* commands change it.
	Level   *slog.LevelVar
	Sep     byte          // message separator; 0 means DefaultSep
	IdleGap time.Duration // a fragment without terminator ends after this; 0 means DefaultIdleGap
	// Policy says who may use the TCP port; nil admits everyone (hasses).
	Policy *access.Policy
	// FIFOMode is the mode of a FIFO the handler creates; 0 means
	// DefaultFIFOMode. (hasses made it 0666: any local user could publish.)
	FIFOMode os.FileMode
	// With a secret, a connection must authenticate within AuthTimeout
	// (0 means DefaultAuthTimeout), and at most MaxUnauthed connections (0
	// means DefaultMaxUnauthed) may wait to do so; more are turned away
	// with an error line.
	AuthTimeout time.Duration
	MaxUnauthed int
	// MaxConns caps the open control connections (0 means
	// DefaultMaxConns); IdleTimeout closes one that sent nothing for that
	// long (0 means DefaultIdleTimeout).
	MaxConns    int
	IdleTimeout time.Duration

	drains atomic.Int64            // earlier connections a new one drained (tests)
	logs   lograte.Limiter[string] // bad units and refused connections, per reason
}

// Defaults of the control inputs, read by internal/config. The lengths of
// tokens and client ids are the SSE port's (a publication names what a
// subscriber can), and the body's is hub.DefaultMaxData.
const (
	DefaultSep         = ';'
	DefaultIdleGap     = 200 * time.Millisecond
	DefaultFIFOMode    = 0o660
	DefaultAuthTimeout = 10 * time.Second
	DefaultMaxUnauthed = 64
	DefaultMaxConns    = 1024            // -ctl-max-conns
	DefaultIdleTimeout = 5 * time.Minute // -ctl-idle-timeout
)

// presenceTimeout bounds a tcppresence: answer (a cluster asks every node).
const presenceTimeout = 3 * time.Second

// warn logs a refused or ignored input at the normal level, at most a line
// a second per reason, so that a misbehaving sender cannot fill the log.
func (h *Handler) warn(reason, msg string, args ...any) {
	h.logs.Log(h.Logger, slog.LevelWarn, reason, msg, args...)
}

// refuse counts a unit refused before it reached the pipeline.
func (h *Handler) refuse(src pipeline.Source, r pipeline.Reason) {
	if h.Pipeline != nil {
		h.Pipeline.Refuse(src, r)
	}
}

// limits are the pipeline's, with the defaults for its zero fields.
func (h *Handler) limits() hub.Limits {
	var l hub.Limits
	if h.Pipeline != nil {
		l = h.Pipeline.Limits
	}
	if l.MaxData <= 0 {
		l.MaxData = hub.DefaultMaxData
	}
	if l.MaxTokenLen <= 0 {
		l.MaxTokenLen = handshake.DefaultMaxTokenLen
	}
	if l.MaxIDLen <= 0 {
		l.MaxIDLen = handshake.DefaultMaxIDLen
	}
	return l
}

func (h *Handler) authTimeout() time.Duration {
	if h.AuthTimeout > 0 {
		return h.AuthTimeout
	}
	return DefaultAuthTimeout
}

func (h *Handler) maxConns() int {
	if h.MaxConns > 0 {
		return h.MaxConns
	}
	return DefaultMaxConns
}

func (h *Handler) idleTimeout() time.Duration {
	if h.IdleTimeout > 0 {
		return h.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (h *Handler) maxUnauthed() int {
	if h.MaxUnauthed > 0 {
		return h.MaxUnauthed
	}
	return DefaultMaxUnauthed
}

func (h *Handler) fifoMode() os.FileMode {
	if h.FIFOMode != 0 {
		return h.FIFOMode.Perm()
	}
	return DefaultFIFOMode
}

func (h *Handler) idleGap() time.Duration {
	if h.IdleGap > 0 {
		return h.IdleGap
	}
	return DefaultIdleGap
}

func (h *Handler) newFramer() *Framer {
	l := h.limits()
	// The largest valid JSON unit: every byte of data and of each token,
	// event name and client id escaped as \uXXXX, plus the keys.
	fields := max(l.MaxTargets, 1) + 3
	maxJSON := 6*l.MaxData + fields*(6*max(l.MaxTokenLen, l.MaxIDLen)+16) + 1024
	return &Framer{Sep: h.Sep, MaxBody: l.MaxData, MaxTokenLen: l.MaxTokenLen, MaxIDLen: l.MaxIDLen, MaxJSON: maxJSON, MaxAuth: defaultMaxAuth}
}

// Handle classifies and executes one unit and appends any reply to dst.
// tcp is false for the FIFO, where tcp* commands have no one to answer.
func (h *Handler) Handle(dst []byte, unit []byte, tcp bool, source string) []byte {
	st := stPlain
	if u := bytes.TrimLeft(unit, " \t\r\n"); len(u) > 0 && u[0] == '{' {
		st = stJSON
	}
	return h.handleUnit(dst, Unit{Kind: classify(st, unit), Data: unit}, tcp, source)
}

// handleUnit executes one framed unit and appends any reply to dst.
func (h *Handler) handleUnit(dst []byte, u Unit, tcp bool, source string) []byte {
	src := pipeline.FIFO
	if tcp {
		src = pipeline.Control
		if u.Kind == KindJSON {
			src = pipeline.ControlJSON
		}
	}
	switch {
	case u.Oversized && u.Kind == KindJSON:
		h.refuse(src, pipeline.TooLarge)
		msg := fmt.Sprintf("JSON unit too large: %d bytes (data limit %d bytes)", u.Size, h.limits().MaxData)
		h.warn("oversized", "control: unit rejected: "+msg, "source", source)
		return h.jsonReply(dst, tcp, map[string]string{"error": msg})
	case u.Oversized:
		h.refuse(src, pipeline.TooLarge)
		h.warn("oversized", "control: unit rejected whole: longer than the limit", "source", source,
			"kind", u.Kind.String(), "bytes", u.Size, "body_limit", h.limits().MaxData)
		return dst
	case u.Kind == KindJSON:
		return h.handleJSON(dst, u.Data, tcp, src, source)
	case u.Kind == KindAuth:
		// Reached only without a secret (the connection checks it first):
		// there is nothing to check.
		if tcp {
			dst = append(dst, authOK...)
		}
		return dst
	case u.Kind == KindMessage:
		m, err := ParseMessage(u.Data)
		if err == nil {
			_, err = h.Pipeline.Publish(m, src)
		} else {
			h.refuse(src, pipeline.BadRequest)
		}
		if err != nil {
			reason := err
			for e := errors.Unwrap(reason); e != nil; e = errors.Unwrap(reason) {
				reason = e // the sentinel: one log line a second per kind of error
			}
			h.warn(reason.Error(), "control: unit ignored: "+err.Error(), "source", source, "unit", preview(u.Data))
		}
		return dst
	}
	s := string(u.Data)
	if strings.HasPrefix(s, "tcp") && !tcp {
		h.Logger.Debug("control: tcp command ignored on the fifo", "command", s)
		return dst
	}
	switch {
	case s == "tcpnumberofclients":
		return fmt.Appendf(dst, `{"numberofclients": %d}`, h.Backend.Counters().AllConn)
	case strings.HasPrefix(s, "tcpsubscribedclients:"):
		tok := s[len("tcpsubscribedclients:"):]
		dst = fmt.Appendf(dst, `{"subscribedclients": %d, "subscribedfor": `, h.Backend.SubscribedClients(tok))
		dst = appendJSONString(dst, tok) // hasses did not escape; we do
		return append(dst, '}')
	case strings.HasPrefix(s, "tcppresence:"):
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		list, err := h.Backend.Presence(ctx, []string{s[len("tcppresence:"):]})
		cancel()
		if err != nil {
			dst = append(dst, `{"error": `...)
			dst = appendJSONString(dst, err.Error())
			return append(dst, '}')
		}
		b, _ := json.Marshal(struct {
			Presence []hub.TokenPresence `json:"presence"`
		}{list})
		return append(dst, b...)
	case s == "tcpstatus":
		return h.appendStatus(dst)
	case s == "tcpcluster":
		// The cluster view (nodes and their streams); null on a single node.
		if c, ok := h.Backend.(interface{ ClusterStatus() []byte }); ok {
			return append(dst, c.ClusterStatus()...)
		}
		return append(dst, `{"cluster": null}`...)
	case s == "status":
		h.logStatus()
	case s == "clientlist":
		for _, c := range h.Backend.Clients() {
			h.Logger.Info("client", "fd", c.FD, "addr", c.Addr, "state", c.State, "id", c.ID,
				"agent", c.UserAgent, "tokens", strings.Join(c.Tokens, "-"), "age", c.Age.Round(time.Second))
		}
	case s == "numberofclients":
		h.Logger.Info("number of clients", "clients", h.Backend.Counters().AllConn)
	case strings.HasPrefix(s, "subscribedclients:"):
		tok := s[len("subscribedclients:"):]
		h.Logger.Info("subscribed clients", "token", tok, "clients", h.Backend.SubscribedClients(tok))
	case s == "loglevel_quiet":
		h.setLevel(slog.LevelWarn, "quiet")
	case s == "loglevel_normal":
		h.setLevel(slog.LevelInfo, "normal")
	case s == "loglevel_debug":
		h.setLevel(slog.LevelDebug, "debug")
	case s == "reinit_enable":
		h.Backend.SetReinit(true)
		h.Logger.Info("reinit enabled")
	case s == "reinit_disable":
		h.Backend.SetReinit(false)
		h.Logger.Info("reinit disabled")
	}
	return dst
}

// Replies on the TCP port about authentication.
const (
	authOK = `{"auth": "ok"}` + "\n"
)

func (h *Handler) jsonReply(dst []byte, tcp bool, v any) []byte {
	if !tcp {
		return dst
	}
	b, _ := json.Marshal(v)
	return append(append(dst, b...), '\n')
}

// handleJSON publishes a unit of the JSON framing, the same object as the
// HTTP API takes, and answers on TCP with the result or the error, one
// object per line.
func (h *Handler) handleJSON(dst []byte, unit []byte, tcp bool, src pipeline.Source, source string) []byte {
	var m publish.Message
	dec := json.NewDecoder(bytes.NewReader(unit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		h.refuse(src, pipeline.BadRequest)
		h.warn("bad JSON", "control: bad JSON unit", "source", source, "err", err)
		return h.jsonReply(dst, tcp, map[string]string{"error": "bad JSON: " + err.Error()})
	}
	// Over TCP the sender reads the answer; a FIFO unit has no one to
	// answer, like a line.
	r, err := h.Pipeline.Publish(pipeline.FromJSON(&m, tcp), src)
	if err != nil {
		h.warn("JSON refused", "control: JSON publication refused", "source", source, "err", err)
		return h.jsonReply(dst, tcp, map[string]string{"error": err.Error()})
	}
	return h.jsonReply(dst, tcp, publish.Result{IDs: []string{r.ID}, Receivers: r.Receivers, Duplicate: r.Duplicate})
}

func (h *Handler) setLevel(l slog.Level, name string) {
	if h.Level != nil {
		h.Level.Set(l)
	}
	h.Logger.Warn("log level set", "level", name)
}

// hassesLevel maps the slog level back to hasses' 0/1/2.
func (h *Handler) hassesLevel() int {
	if h.Level == nil {
		return 1
	}
	switch l := h.Level.Level(); {
	case l <= slog.LevelDebug:
		return 2
	case l >= slog.LevelWarn:
		return 0
	}
	return 1
}

// appendStatus writes the tcpstatus reply, spaced exactly as hasses 1.30.
func (h *Handler) appendStatus(dst []byte) []byte {
	info, c := h.Backend.Info(), h.Backend.Counters()
	dst = append(dst, `{"version": `...)
	dst = appendJSONString(dst, info.Version)
	dst = append(dst, `,"runningtime": `...)
	dst = appendJSONString(dst, runningTime(time.Since(info.Started)))
	dst = append(dst, `,"mode": `...)
	dst = appendJSONString(dst, info.Mode)
	return fmt.Appendf(dst, `,"loglevel": %d,"allconncli": %d,"sseconncli": %d,"maxconncli": %d,"msgproccnt": %d,"msgsendcnt": %d}`,
		h.hassesLevel(), c.AllConn, c.SSEConn, c.MaxConn, h.Pipeline.Published(), c.MsgSend)
}

func (h *Handler) logStatus() {
	info, c := h.Backend.Info(), h.Backend.Counters()
	h.Logger.Info("status", "version", info.Version, "pid", os.Getpid(), "uid", os.Getuid(),
		"runningtime", runningTime(time.Since(info.Started)), "mode", info.Mode, "loglevel", h.hassesLevel(),
		"reinit", info.Reinit, "cors_base", info.CORSBase, "allconncli", c.AllConn, "sseconncli", c.SSEConn,
		"maxconncli", c.MaxConn, "msgproccnt", h.Pipeline.Published(), "msgsendcnt", c.MsgSend)
}

// runningTime formats like hasses: HH:MM:SS, or Nday HH:MM:SS.
func runningTime(d time.Duration) string {
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	hms := fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
	if days > 0 {
		return fmt.Sprintf("%dday %s", days, hms)
	}
	return hms
}

// appendJSONString appends s as a JSON string (hasses echoed it raw, which
// broke the reply for a token with a quote).
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // cannot fail for a string
	return append(dst, b...)
}

func preview(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
