// Package config reads hasses' options from the command line and from a
// config file in the /etc/hasses.conf format, with the original spelling
// (-p=8080, -ra, ...), so existing command lines and files keep working.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hasses-go/hasses/internal/cluster"
)

// ErrHelp and ErrVersion are returned for -h and -v: not failures, but
// requests to print something and exit 0.
var (
	ErrHelp    = errors.New("help requested")
	ErrVersion = errors.New("version requested")
)

// Options are the daemon's settings.
type Options struct {
	Port       string // -p: SSE listen address; a bare port means all interfaces
	CtlPort    string // -cp: control listen address
	MURL       string // -murl: SSE path
	FIFO       string // -fifo: control FIFO path
	Sep        byte   // -sep: message separator on the control channel
	Quiet      bool   // -q
	Debug      bool   // -debug
	LogFile    string // -l: log file when detached
	PidFile    string // -pidfile
	SSL        bool   // -ssl
	CertFile   string // -cert-file
	KeyFile    string // -privatekey-file
	CORSBase   string // -cors-base
	Reinit     bool   // -ra
	User       string // -user
	NoDaemon   bool   // -nodaemon
	ConfigFile string // -config
	Admin      string // -admin: address of the admin listener (/healthz, /debug/pprof)
	Pub        string // -pub: address of the HTTP publish API

	CtlSecret     string  // -ctl-secret (or -ctl-secret-file, or $HASSES_CTL_SECRET)
	CtlSecretFile string  // -ctl-secret-file
	CtlAllow      string  // -ctl-allow: networks publishers may connect from
	PubRate       float64 // -pub-rate: publications per second per publisher address
	FIFOMode      uint32  // -fifo-mode: mode of a FIFO hasses creates
	CORSOrigins   string  // -cors-origins: allowed origins, comma-separated
	JWTKey        string  // -jwt-key: key file for subscriber tokens
	MaxConnsPerIP int     // -max-conns-per-ip

	MaxMessage       int           // -max-message: bytes of a message body
	MaxLag           int64         // -max-lag: bytes a stream may fall behind
	Loops            int           // -loops: epoll loops
	MaxTokens        int           // -max-tokens: tokens per subscriber
	MaxTokenLen      int           // -max-token-len: bytes per token
	MaxConns         int           // -max-conns: connections on the SSE port
	SendBuffer       int           // -sndbuf: kernel send buffer per stream
	HandshakeTimeout time.Duration // -handshake-timeout
	Lifetime         time.Duration // -lifetime: maximum stream age
	Heartbeat        time.Duration // -heartbeat: comment interval on idle streams
	Retry            time.Duration // -retry: reconnection hint sent on connect
	Drain            time.Duration // -drain: graceful shutdown bound
	Coalesce         time.Duration // -coalesce: least time between flush passes
	IdleGap          time.Duration // -ctl-idle-gap: control framing idle gap
	HistoryCount     int           // -history-count: events kept per token
	HistoryBytes     int64         // -history-bytes: bytes kept per token
	HistoryAge       time.Duration // -history-age: how long events are kept

	Cluster       string // -cluster: Redis URL of the cluster to join; empty = single node
	ClusterPrefix string // -cluster-prefix: namespace of the cluster's Redis keys
	ClusterLog    int    // -cluster-log: entries the cluster's log stream keeps
	ClusterQueue  int    // -cluster-queue: control units held while Redis is unreachable
}

// option describes one command-line option.
type option struct {
	name  string
	arg   string // "" for a switch
	usage string
	set   func(o *Options, v string) error
}

var options []option

func init() {
	str := func(f func(o *Options) *string) func(*Options, string) error {
		return func(o *Options, v string) error { *f(o) = v; return nil }
	}
	flag := func(f func(o *Options) *bool) func(*Options, string) error {
		return func(o *Options, _ string) error { *f(o) = true; return nil }
	}
	addr := func(f func(o *Options) *string) func(*Options, string) error {
		return func(o *Options, v string) error {
			a, err := listenAddr(v)
			*f(o) = a
			return err
		}
	}
	path := func(f func(o *Options) *string) func(*Options, string) error {
		return func(o *Options, v string) error {
			if v != "" && !filepath.IsAbs(v) {
				return fmt.Errorf("%q is not an absolute path", v)
			}
			*f(o) = v
			return nil
		}
	}
	num := func(f func(o *Options) *int) func(*Options, string) error {
		return func(o *Options, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a non-negative number", v)
			}
			*f(o) = n
			return nil
		}
	}
	num64 := func(f func(o *Options) *int64) func(*Options, string) error {
		return func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a non-negative number", v)
			}
			*f(o) = n
			return nil
		}
	}
	dur := func(f func(o *Options) *time.Duration) func(*Options, string) error {
		return func(o *Options, v string) error {
			d, err := parseDuration(v)
			*f(o) = d
			return err
		}
	}
	options = []option{
		{"p", "PORT", "SSE port, or HOST:PORT (required)", addr(func(o *Options) *string { return &o.Port })},
		{"cp", "PORT", "control TCP port, or HOST:PORT (this or -fifo required)", addr(func(o *Options) *string { return &o.CtlPort })},
		{"murl", "PATH", "path of the SSE endpoint, e.g. /sse (required)", func(o *Options, v string) error {
			if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "? \t\r\n") {
				return fmt.Errorf("%q must start with / and contain no '?' or spaces", v)
			}
			o.MURL = v
			return nil
		}},
		{"fifo", "FILE", "control FIFO, created if missing (absolute path)", path(func(o *Options) *string { return &o.FIFO })},
		{"sep", "C", "message separator on the control channel (default ;)", func(o *Options, v string) error {
			if len(v) != 1 || v == "=" || v == "\n" {
				return fmt.Errorf("%q must be a single character other than = and newline", v)
			}
			o.Sep = v[0]
			return nil
		}},
		{"q", "", "quiet: log warnings and errors only", flag(func(o *Options) *bool { return &o.Quiet })},
		{"debug", "", "debug logging", flag(func(o *Options) *bool { return &o.Debug })},
		{"l", "FILE", "log file when running as a daemon (default /var/log/hasses.log)", path(func(o *Options) *string { return &o.LogFile })},
		{"pidfile", "FILE", "write the process id to FILE", path(func(o *Options) *string { return &o.PidFile })},
		{"ssl", "", "serve the SSE port over TLS (needs -cert-file and -privatekey-file)", flag(func(o *Options) *bool { return &o.SSL })},
		{"cert-file", "FILE", "TLS certificate chain (PEM)", str(func(o *Options) *string { return &o.CertFile })},
		{"privatekey-file", "FILE", "TLS private key (PEM)", str(func(o *Options) *string { return &o.KeyFile })},
		{"cors-base", "ORIGIN", "Access-Control-Allow-Origin value (default *)", str(func(o *Options) *string { return &o.CORSBase })},
		{"ra", "", "allow reinit: a streaming client may send a new GET request", flag(func(o *Options) *bool { return &o.Reinit })},
		{"user", "NAME", "drop root privileges to this user after binding", str(func(o *Options) *string { return &o.User })},
		{"nodaemon", "", "stay in the foreground and log to standard error", flag(func(o *Options) *bool { return &o.NoDaemon })},
		{"config", "FILE", "read options from FILE (the /etc/hasses.conf format); the command line wins", str(func(o *Options) *string { return &o.ConfigFile })},
		{"admin", "ADDR", "admin listener for /healthz and /debug/pprof, e.g. 127.0.0.1:8087 (default: none)", addr(func(o *Options) *string { return &o.Admin })},
		{"pub", "ADDR", "HTTP publish API (POST /publish), e.g. 127.0.0.1:8086 (default: none)", addr(func(o *Options) *string { return &o.Pub })},
		{"ctl-secret", "SECRET", "secret publishers must present (control port: first line \"auth SECRET\"; HTTP: Bearer); also $HASSES_CTL_SECRET", str(func(o *Options) *string { return &o.CtlSecret })},
		{"ctl-secret-file", "FILE", "read the publisher secret from FILE", str(func(o *Options) *string { return &o.CtlSecretFile })},
		{"ctl-allow", "CIDRS", "networks publishers may connect from, comma-separated (default: private networks without a secret, any with one)", str(func(o *Options) *string { return &o.CtlAllow })},
		{"pub-rate", "N", "publications per second per publisher address on the HTTP API; 0 = unlimited (default 0)", func(o *Options, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("%q is not a non-negative number", v)
			}
			o.PubRate = f
			return nil
		}},
		{"fifo-mode", "MODE", "permissions of a FIFO hasses creates, octal (default 0660; hasses used 0666)", func(o *Options, v string) error {
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("%q is not an octal mode", v)
			}
			o.FIFOMode = uint32(m)
			return nil
		}},
		{"cors-origins", "LIST", "allowed origins, comma-separated; the matching Origin is echoed with credentials allowed, others get 403 (default: -cors-base)", str(func(o *Options) *string { return &o.CORSOrigins })},
		{"jwt-key", "FILE", "require subscribers to present a JWT signed with this key: an HMAC secret (HS256) or a PEM public key (RS256/ES256)", str(func(o *Options) *string { return &o.JWTKey })},
		{"max-conns-per-ip", "N", "streams one client address may hold; more get 429; 0 = unlimited (default 1000)", num(func(o *Options) *int { return &o.MaxConnsPerIP })},
		{"max-message", "BYTES", "largest message body; longer ones are rejected whole (default 65536)", num(func(o *Options) *int { return &o.MaxMessage })},
		{"max-lag", "BYTES", "a stream this far behind is closed as too slow (default 4194304)", num64(func(o *Options) *int64 { return &o.MaxLag })},
		{"loops", "N", "epoll loops (default: one per CPU)", num(func(o *Options) *int { return &o.Loops })},
		{"max-tokens", "N", "tokens one stream may subscribe to (default 64)", num(func(o *Options) *int { return &o.MaxTokens })},
		{"max-token-len", "BYTES", "longest token (default 256)", num(func(o *Options) *int { return &o.MaxTokenLen })},
		{"max-conns", "N", "connections on the SSE port; more get 503 (default: from the file limit)", num(func(o *Options) *int { return &o.MaxConns })},
		{"sndbuf", "BYTES", "kernel send buffer of each stream; bounds kernel memory per slow client, 0 = kernel default (default 65536)", num(func(o *Options) *int { return &o.SendBuffer })},
		{"handshake-timeout", "DUR", "close connections without a complete request after this (default 20s)", dur(func(o *Options) *time.Duration { return &o.HandshakeTimeout })},
		{"lifetime", "DUR", "maximum stream age; each stream gets 80-100% of it (default 3600s)", dur(func(o *Options) *time.Duration { return &o.Lifetime })},
		{"heartbeat", "DUR", "comment sent on idle streams so proxies keep them; 0 disables (default 20s)", dur(func(o *Options) *time.Duration { return &o.Heartbeat })},
		{"retry", "DUR", "reconnection delay hinted to clients on connect; 0 sends none (default 0)", dur(func(o *Options) *time.Duration { return &o.Retry })},
		{"coalesce", "DUR", "least time between two flush passes: more events per write, less CPU, more latency (default 0)", dur(func(o *Options) *time.Duration { return &o.Coalesce })},
		{"drain", "DUR", "on SIGTERM, how long streams get to end cleanly (default 5s)", dur(func(o *Options) *time.Duration { return &o.Drain })},
		{"ctl-idle-gap", "DUR", "a control message without terminator ends after this silence (default 200ms)", dur(func(o *Options) *time.Duration { return &o.IdleGap })},
		{"history-count", "N", "events kept per token for Last-Event-ID replay (default 100)", num(func(o *Options) *int { return &o.HistoryCount })},
		{"history-bytes", "BYTES", "bytes of events kept per token (default 262144)", num64(func(o *Options) *int64 { return &o.HistoryBytes })},
		{"history-age", "DUR", "how long events are kept for replay (default 1h)", dur(func(o *Options) *time.Duration { return &o.HistoryAge })},
		{"cluster", "URL", "join a cluster of nodes on Redis: redis://HOST:PORT/DB, rediss://..., redis+sentinel://HOST:PORT/DB?master=NAME (default: single node)", func(o *Options, v string) error {
			if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") && !strings.HasPrefix(v, "redis+sentinel://") && !strings.HasPrefix(v, "rediss+sentinel://") {
				return fmt.Errorf("%q is not a redis://, rediss:// or redis+sentinel:// URL", v)
			}
			o.Cluster = v
			return nil
		}},
		{"cluster-prefix", "NAME", "namespace of the cluster's Redis keys, so clusters can share a Redis (default hasses)", func(o *Options, v string) error {
			if v == "" || strings.ContainsAny(v, "{}") {
				return fmt.Errorf("%q must be non-empty and contain no braces", v)
			}
			o.ClusterPrefix = v
			return nil
		}},
		{"cluster-log", "N", "entries the cluster's log stream in Redis keeps; a node stalled longer misses events (default 100000)", num(func(o *Options) *int { return &o.ClusterLog })},
		{"cluster-queue", "N", "control units held in order while Redis is unreachable; more are dropped (default 1000)", num(func(o *Options) *int { return &o.ClusterQueue })},
		{"h", "", "print this help and exit", func(*Options, string) error { return ErrHelp }},
		{"v", "", "print the version and exit", func(*Options, string) error { return ErrVersion }},
	}
}

// Defaults returns the options before any argument is applied.
func Defaults() *Options {
	return &Options{
		Sep:              ';',
		LogFile:          "/var/log/hasses.log",
		CORSBase:         "*",
		MaxMessage:       64 << 10,
		MaxLag:           4 << 20,
		Loops:            runtime.NumCPU(),
		MaxTokens:        64,
		MaxTokenLen:      256,
		SendBuffer:       64 << 10,
		HandshakeTimeout: 20 * time.Second,
		Lifetime:         3600 * time.Second,
		Heartbeat:        20 * time.Second,
		Drain:            5 * time.Second,
		IdleGap:          200 * time.Millisecond,
		HistoryCount:     100,
		FIFOMode:         0o660,
		MaxConnsPerIP:    1000,
		HistoryBytes:     256 << 10,
		HistoryAge:       time.Hour,
		ClusterPrefix:    cluster.DefaultPrefix,
		ClusterLog:       cluster.DefaultLogLength,
		ClusterQueue:     cluster.DefaultQueue,
	}
}

func lookup(name string) *option {
	for i := range options {
		if options[i].name == name {
			return &options[i]
		}
	}
	return nil
}

// Parse reads args (without the program name). A -config file is read
// first; options on the command line override it.
func Parse(args []string) (*Options, error) {
	o := Defaults()
	type setting struct{ name, value string }
	var cmdline []setting
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return nil, fmt.Errorf("unexpected argument %q", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		opt := lookup(name)
		if opt == nil {
			return nil, fmt.Errorf("unknown option -%s", name)
		}
		if opt.arg != "" && !hasValue {
			if i+1 == len(args) {
				return nil, fmt.Errorf("option -%s needs a value (-%s=%s)", name, name, opt.arg)
			}
			i++
			value = args[i]
		}
		if opt.arg == "" && hasValue {
			return nil, fmt.Errorf("option -%s takes no value", name)
		}
		if name == "h" || name == "v" {
			return nil, opt.set(o, "")
		}
		cmdline = append(cmdline, setting{name, value})
	}
	for _, s := range cmdline {
		if s.name == "config" {
			if err := readFile(o, s.value); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range cmdline {
		if err := lookup(s.name).set(o, s.value); err != nil {
			return nil, fmt.Errorf("option -%s: %w", s.name, err)
		}
	}
	if o.CtlSecret == "" {
		o.CtlSecret = os.Getenv("HASSES_CTL_SECRET")
	}
	if o.CtlSecretFile != "" {
		b, err := os.ReadFile(o.CtlSecretFile)
		if err != nil {
			return nil, fmt.Errorf("option -ctl-secret-file: %w", err)
		}
		o.CtlSecret = strings.TrimSpace(string(b))
	}
	return o, o.validate()
}

// readFile applies a config file: one option per line as on the command
// line, "#" starts a comment ("\#" is a literal "#").
func readFile(o *Options, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(line, "-"), "-"), "=")
		opt := lookup(name)
		if !strings.HasPrefix(line, "-") || opt == nil || name == "config" || name == "h" || name == "v" {
			return fmt.Errorf("%s:%d: unknown option %q", path, n, line)
		}
		if opt.arg != "" && !hasValue {
			return fmt.Errorf("%s:%d: option -%s needs a value", path, n, name)
		}
		if err := opt.set(o, strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("%s:%d: option -%s: %w", path, n, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func stripComment(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) && line[i+1] == '#' {
			b.WriteByte('#')
			i++
			continue
		}
		if line[i] == '#' {
			break
		}
		b.WriteByte(line[i])
	}
	return strings.TrimSpace(b.String())
}

func (o *Options) validate() error {
	switch {
	case o.Port == "":
		return errors.New("missing -p (the SSE port)")
	case o.MURL == "":
		return errors.New("missing -murl (the SSE path)")
	case o.CtlPort == "" && o.FIFO == "":
		return errors.New("missing -cp or -fifo: there must be a way to send messages")
	case o.SSL && (o.CertFile == "" || o.KeyFile == ""):
		return errors.New("-ssl needs -cert-file and -privatekey-file")
	case o.MaxMessage == 0:
		return errors.New("-max-message must be positive")
	case strings.ContainsAny(o.CtlSecret, ";\r\n") || strings.IndexByte(o.CtlSecret, o.Sep) >= 0:
		return errors.New("the publisher secret must not contain the separator or line breaks")
	}
	return nil
}

// listenAddr turns "8080" into ":8080" and checks "host:port".
func listenAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := strconv.Atoi(v); err == nil {
		v = ":" + v
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not a port or host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("port %q is not in 0-65535", port)
	}
	return v, nil
}

// parseDuration accepts Go durations ("20s") and bare seconds ("20").
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 20s, 500ms, or seconds)", v)
	}
	return d, nil
}

// LogLevel returns hasses' log level: 0 quiet, 1 normal, 2 debug.
func LogLevel(o *Options) int {
	switch {
	case o.Debug:
		return 2
	case o.Quiet:
		return 0
	}
	return 1
}

// Usage returns the help text.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: hasses -p=PORT -murl=PATH (-cp=PORT | -fifo=FILE) [options]\n\n")
	b.WriteString("A Server-Sent Events notification server, compatible with hasses 1.30.\n\nOptions:\n")
	for _, opt := range options {
		left := "-" + opt.name
		if opt.arg != "" {
			left += "=" + opt.arg
		}
		fmt.Fprintf(&b, "  %-26s %s\n", left, opt.usage)
	}
	b.WriteString("\nA config file (-config=FILE) holds one option per line, spelled as on the\ncommand line (-p=8080, -ra); '#' starts a comment.\n")
	return b.String()
}
