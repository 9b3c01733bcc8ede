package control

import (
	"bytes"
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
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/lograte"
	"github.com/hasses-go/hasses/publish"
)

// Backend is what the control channel drives: the running server.
type Backend interface {
	Publish(m hub.Message) (hub.Result, error)
	Counters() Counters
	SubscribedClients(token string) int
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
	Logger  *slog.Logger
	// Level is the logger's level; loglevel_* commands change it.
	Level       *slog.LevelVar
	Sep         byte          // message separator; 0 means ';'
	MaxTokenLen int           // longest token (and event name); 0 means 256
	MaxIDLen    int           // longest excluded client id; 0 means 256
	IdleGap     time.Duration // a fragment without terminator ends after this; 0 means 200 ms
	// Policy says who may use the TCP port; nil admits everyone (hasses).
	Policy *access.Policy
	// FIFOMode is the mode of a FIFO the handler creates; 0 means 0660.
	// (hasses made it 0666: any local user could publish.)
	FIFOMode os.FileMode
	// Limits bound publications: MaxData (-max-message) is the exact
	// limit of a message body, plain or JSON; 0 means 64 KiB.
	Limits publish.Limits
	// With a secret, a connection must authenticate within AuthTimeout
	// (0 means 10 s), and at most MaxUnauthed connections (0 means 64) may
	// wait to do so; more are turned away with an error line.
	AuthTimeout time.Duration
	MaxUnauthed int
	// MaxConns caps the open control connections (0 means
	// DefaultMaxConns); IdleTimeout closes one that sent nothing for that
	// long (0 means DefaultIdleTimeout).
	MaxConns    int
	IdleTimeout time.Duration

	processed atomic.Int64            // msgproccnt
	drains    atomic.Int64            // earlier connections a new one drained (tests)
	logs      lograte.Limiter[string] // bad units and refused connections, per reason
}

// Bounds of the control port: the -ctl-max-conns and -ctl-idle-timeout
// defaults.
const (
	DefaultMaxConns    = 1024
	DefaultIdleTimeout = 5 * time.Minute
)

// Bounds of a connection before it has authenticated.
const (
	defaultAuthTimeout = 10 * time.Second
	defaultMaxUnauthed = 64
)

// warn logs a refused or ignored input at the normal level, at most a line
// a second per reason, so that a misbehaving sender cannot fill the log.
func (h *Handler) warn(reason, msg string, args ...any) {
	h.logs.Log(h.Logger, slog.LevelWarn, reason, msg, args...)
}

func (h *Handler) maxTokenLen() int {
	if h.MaxTokenLen > 0 {
		return h.MaxTokenLen
	}
	if h.Limits.MaxTokenLen > 0 {
		return h.Limits.MaxTokenLen
	}
	return defaultMaxTokenLen
}

func (h *Handler) maxIDLen() int {
	if h.MaxIDLen > 0 {
		return h.MaxIDLen
	}
	return defaultMaxIDLen
}

func (h *Handler) maxBody() int {
	if h.Limits.MaxData > 0 {
		return h.Limits.MaxData
	}
	return defaultMaxBody
}

func (h *Handler) authTimeout() time.Duration {
	if h.AuthTimeout > 0 {
		return h.AuthTimeout
	}
	return defaultAuthTimeout
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
	return defaultMaxUnauthed
}

func (h *Handler) fifoMode() os.FileMode {
	if h.FIFOMode != 0 {
		return h.FIFOMode.Perm()
	}
	return 0o660
}

func (h *Handler) idleGap() time.Duration {
	if h.IdleGap > 0 {
		return h.IdleGap
	}
	return 200 * time.Millisecond
}

func (h *Handler) newFramer() *Framer {
	tok, body := h.maxTokenLen(), h.maxBody()
	// The largest valid JSON unit: every byte of data and of each token,
	// event name and client id escaped as \uXXXX, plus the keys.
	fields := max(h.Limits.MaxTargets, 1) + 3
	maxJSON := 6*body + fields*(6*max(tok, h.maxIDLen())+16) + 1024
	return &Framer{Sep: h.Sep, MaxBody: body, MaxTokenLen: tok, MaxIDLen: h.maxIDLen(), MaxJSON: maxJSON, MaxAuth: defaultMaxAuth}
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
	switch {
	case u.Oversized && u.Kind == KindJSON:
		msg := fmt.Sprintf("JSON unit too large: %d bytes (data limit %d bytes)", u.Size, h.maxBody())
		h.warn("oversized", "control: unit rejected: "+msg, "source", source)
		return h.jsonReply(dst, tcp, map[string]string{"error": msg})
	case u.Oversized:
		h.warn("oversized", "control: unit rejected whole: longer than the limit", "source", source,
			"kind", u.Kind.String(), "bytes", u.Size, "body_limit", h.maxBody())
		return dst
	case u.Kind == KindJSON:
		return h.handleJSON(dst, u.Data, tcp, source)
	case u.Kind == KindAuth:
		// Reached only without a secret (the connection checks it first):
		// there is nothing to check.
		if tcp {
			dst = append(dst, authOK...)
		}
		return dst
	case u.Kind == KindMessage:
		m, err := ParseMessage(u.Data, h.maxTokenLen(), h.maxIDLen())
		if err != nil {
			reason := err
			if e := errors.Unwrap(err); e != nil {
				reason = e
			}
			h.warn(reason.Error(), "control: unit ignored: "+reason.Error(), "source", source, "unit", preview(u.Data))
			return dst
		}
		h.processed.Add(1)
		r, err := h.Backend.Publish(m)
		if err != nil {
			h.warn("publish", "control: publish failed", "source", source, "err", err)
			return dst
		}
		h.Logger.Debug("control: published", "source", source, "target", m.Target, "id", r.ID, "receivers", r.Receivers)
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
func (h *Handler) handleJSON(dst []byte, unit []byte, tcp bool, source string) []byte {
	var m publish.Message
	dec := json.NewDecoder(bytes.NewReader(unit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		h.warn("bad JSON", "control: bad JSON unit", "source", source, "err", err)
		return h.jsonReply(dst, tcp, map[string]string{"error": "bad JSON: " + err.Error()})
	}
	if err := m.Validate(h.Limits); err != nil {
		h.warn("JSON refused", "control: JSON publication refused", "source", source, "err", err)
		return h.jsonReply(dst, tcp, map[string]string{"error": err.Error()})
	}
	h.processed.Add(1)
	r, err := h.Backend.Publish(hub.Message{Targets: m.Targets(), Exclude: m.Exclude, Event: m.Event, Data: []byte(m.Data)})
	if err != nil {
		return h.jsonReply(dst, tcp, map[string]string{"error": err.Error()})
	}
	return h.jsonReply(dst, tcp, publish.Result{IDs: []string{r.ID}, Receivers: r.Receivers})
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
		h.hassesLevel(), c.AllConn, c.SSEConn, c.MaxConn, h.processed.Load(), c.MsgSend)
}

func (h *Handler) logStatus() {
	info, c := h.Backend.Info(), h.Backend.Counters()
	h.Logger.Info("status", "version", info.Version, "pid", os.Getpid(), "uid", os.Getuid(),
		"runningtime", runningTime(time.Since(info.Started)), "mode", info.Mode, "loglevel", h.hassesLevel(),
		"reinit", info.Reinit, "cors_base", info.CORSBase, "allconncli", c.AllConn, "sseconncli", c.SSEConn,
		"maxconncli", c.MaxConn, "msgproccnt", h.processed.Load(), "msgsendcnt", c.MsgSend)
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
