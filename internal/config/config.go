// Package config reads hasses' options from the command line and from a
// config file in the /etc/hasses.conf format, with the original spelling
// (-p=8080, -ra, ...), so existing command lines and files keep working.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/cluster"
	"github.com/hasses-go/hasses/internal/control"
	"github.com/hasses-go/hasses/internal/epoll"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
	"github.com/hasses-go/hasses/internal/webhook"
)

// ErrHelp and ErrVersion are returned for -h and -v: not failures, but
// requests to print something and exit 0.
var (
	ErrHelp    = errors.New("help requested")
	ErrVersion = errors.New("version requested")
)

// Options are the daemon's settings.
type Options struct {
	Port       string `opt:"p"`               // -p: SSE listen address; a bare port means all interfaces
	CtlPort    string `opt:"cp"`              // -cp: control listen address
	MURL       string `opt:"murl"`            // -murl: SSE path
	FIFO       string `opt:"fifo"`            // -fifo: control FIFO path
	Sep        byte   `opt:"sep"`             // -sep: message separator on the control channel
	Quiet      bool   `opt:"q"`               // -q
	Debug      bool   `opt:"debug"`           // -debug
	LogFile    string `opt:"l"`               // -l: log file when detached
	PidFile    string `opt:"pidfile"`         // -pidfile
	SSL        bool   `opt:"ssl"`             // -ssl
	CertFile   string `opt:"cert-file"`       // -cert-file
	KeyFile    string `opt:"privatekey-file"` // -privatekey-file
	CORSBase   string `opt:"cors-base"`       // -cors-base
	Reinit     bool   `opt:"ra"`              // -ra
	User       string `opt:"user"`            // -user
	NoDaemon   bool   `opt:"nodaemon"`        // -nodaemon
	ConfigFile string `opt:"config"`          // -config
	Check      bool   `opt:"check"`           // -check: check the configuration and exit
	Admin      string `opt:"admin"`           // -admin: address of the admin listener (dashboard, /metrics, /healthz); a bare port means loopback
	Pprof      bool   `opt:"pprof"`           // -pprof: serve /debug/pprof on the admin listener
	Pub        string `opt:"pub"`             // -pub: address of the HTTP publish API

	CtlSecret     string  `opt:"ctl-secret"`       // -ctl-secret (or -ctl-secret-file, or $HASSES_CTL_SECRET)
	CtlSecretFile string  `opt:"ctl-secret-file"`  // -ctl-secret-file
	CtlAllow      string  `opt:"ctl-allow"`        // -ctl-allow: networks publishers may connect from
	PubRate       float64 `opt:"pub-rate"`         // -pub-rate: publications per second per publisher address
	FIFOMode      uint32  `opt:"fifo-mode"`        // -fifo-mode: mode of a FIFO hasses creates
	CORSOrigins   string  `opt:"cors-origins"`     // -cors-origins: allowed origins, comma-separated
	JWTKey        string  `opt:"jwt-key"`          // -jwt-key: PEM public key for subscriber tokens
	JWTSecretFile string  `opt:"jwt-secret-file"`  // -jwt-secret-file: HMAC secret for subscriber tokens
	JWTRequireExp bool    `opt:"jwt-require-exp"`  // -jwt-require-exp: tokens must expire
	JWTAudience   string  `opt:"jwt-audience"`     // -jwt-audience: required "aud"
	JWTIssuer     string  `opt:"jwt-issuer"`       // -jwt-issuer: required "iss"
	MaxConnsPerIP int     `opt:"max-conns-per-ip"` // -max-conns-per-ip
	// MaxConnsPerProxy caps a trusted proxy's streams that name no client.
	MaxConnsPerProxy int `opt:"max-conns-per-proxy"`
	// TrustedProxies lists the reverse proxies whose forwarding headers
	// name the client (-trusted-proxies), or "none".
	TrustedProxies string `opt:"trusted-proxies"`

	MaxMessage       int           `opt:"max-message"`         // -max-message: bytes of a message body
	MaxLag           int64         `opt:"max-lag"`             // -max-lag: bytes a stream may fall behind
	Loops            int           `opt:"loops"`               // -loops: epoll loops
	MaxTokens        int           `opt:"max-tokens"`          // -max-tokens: tokens per subscriber
	MaxTokenLen      int           `opt:"max-token-len"`       // -max-token-len: bytes per token
	MaxConns         int           `opt:"max-conns"`           // -max-conns: connections on the SSE port
	SendBuffer       int           `opt:"sndbuf"`              // -sndbuf: kernel send buffer per stream
	HandshakeTimeout time.Duration `opt:"handshake-timeout"`   // -handshake-timeout
	Lifetime         time.Duration `opt:"lifetime"`            // -lifetime: maximum stream age
	Heartbeat        time.Duration `opt:"heartbeat"`           // -heartbeat: comment interval on idle streams
	JWTRenewBefore   time.Duration `opt:"jwt-renew-before"`    // -jwt-renew-before: hasses-expiring this long before a token's exp
	Retry            time.Duration `opt:"retry"`               // -retry: reconnection hint sent on connect
	Drain            time.Duration `opt:"drain"`               // -drain: graceful shutdown bound
	Coalesce         time.Duration `opt:"coalesce"`            // -coalesce: least time between flush passes
	IdleGap          time.Duration `opt:"ctl-idle-gap"`        // -ctl-idle-gap: control framing idle gap
	CtlMaxConns      int           `opt:"ctl-max-conns"`       // -ctl-max-conns: open control connections
	CtlIdleTimeout   time.Duration `opt:"ctl-idle-timeout"`    // -ctl-idle-timeout: a silent control connection is closed
	HistoryCount     int           `opt:"history-count"`       // -history-count: events kept per token
	HistoryBytes     int64         `opt:"history-bytes"`       // -history-bytes: bytes kept per token
	HistoryAge       time.Duration `opt:"history-age"`         // -history-age: how long events are kept
	IdemWindow       time.Duration `opt:"idempotency-window"`  // -idempotency-window: how long a publication's idempotency key is remembered
	HistoryTotal     int64         `opt:"history-total-bytes"` // -history-total-bytes: bytes of events kept over all tokens
	Presence         string        `opt:"presence"`            // -presence: tokens whose subscribers see each other join and leave
	PresenceGrace    time.Duration `opt:"presence-grace"`      // -presence-grace: how long a client must stay gone to leave
	PresenceMax      int           `opt:"presence-max"`        // -presence-max: clients listed per token

	Cluster       string `opt:"cluster"`        // -cluster: Redis URL of the cluster to join; empty = single node
	ClusterPrefix string `opt:"cluster-prefix"` // -cluster-prefix: namespace of the cluster's Redis keys
	ClusterLog    int    `opt:"cluster-log"`    // -cluster-log: entries the cluster's log stream keeps
	ClusterQueue  int    `opt:"cluster-queue"`  // -cluster-queue: control units held while Redis is unreachable

	Webhook           string `opt:"webhook"`             // -webhook: URL the backend's webhook events are POSTed to
	WebhookSecretFile string `opt:"webhook-secret-file"` // -webhook-secret-file: the secret that signs them
	WebhookEvents     string `opt:"webhook-events"`      // -webhook-events: the event types sent, comma-separated; empty = all
}

// The ranges of numeric options: wide enough for any real deployment,
// narrow enough that no value overflows where it is used (sums, doubling
// by the kernel, conversions to milliseconds).
const (
	maxCount      = 1 << 30              // counts: connections, tokens, events, entries
	maxBytes      = 1 << 50              // byte budgets (1 PiB)
	maxMessage    = 1 << 30              // one message or token (1 GiB)
	maxSendBuffer = 1 << 30              // the kernel doubles SO_SNDBUF into an int
	maxLoops      = 1024                 // epoll loops
	maxWait       = 24 * time.Hour       // timeouts and intervals
	maxAge        = 365 * 24 * time.Hour // stream lifetime, history age
	maxPubRate    = 1e6                  // publications per second per address
)

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
	// Every number has a range, so a value cannot overflow into a small or
	// negative one where it is used (-lifetime=18446744074 was 0.26 s).
	num := func(lo, hi int, f func(o *Options) *int) func(*Options, string) error {
		return func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < int64(lo) || n > int64(hi) {
				return fmt.Errorf("%q is not a number in %d-%d", v, lo, hi)
			}
			*f(o) = int(n)
			return nil
		}
	}
	num64 := func(lo, hi int64, f func(o *Options) *int64) func(*Options, string) error {
		return func(o *Options, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("%q is not a number in %d-%d", v, lo, hi)
			}
			*f(o) = n
			return nil
		}
	}
	dur := func(hi time.Duration, f func(o *Options) *time.Duration) func(*Options, string) error {
		return func(o *Options, v string) error {
			d, err := parseDuration(v)
			if err == nil && d > hi {
				err = fmt.Errorf("%q is longer than %s", v, formatDuration(hi))
			}
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
		{"sep", "C", "message separator on the control channel", func(o *Options, v string) error {
			if len(v) != 1 || v == "=" || v == "\n" {
				return fmt.Errorf("%q must be a single character other than = and newline", v)
			}
			o.Sep = v[0]
			return nil
		}},
		{"q", "", "quiet: log warnings and errors only", flag(func(o *Options) *bool { return &o.Quiet })},
		{"debug", "", "debug logging", flag(func(o *Options) *bool { return &o.Debug })},
		{"l", "FILE", "log file when running as a daemon", path(func(o *Options) *string { return &o.LogFile })},
		{"pidfile", "FILE", "write the process id to FILE", path(func(o *Options) *string { return &o.PidFile })},
		{"ssl", "", "serve the SSE port over TLS (needs -cert-file and -privatekey-file)", flag(func(o *Options) *bool { return &o.SSL })},
		{"cert-file", "FILE", "TLS certificate chain (PEM)", str(func(o *Options) *string { return &o.CertFile })},
		{"privatekey-file", "FILE", "TLS private key (PEM)", str(func(o *Options) *string { return &o.KeyFile })},
		{"cors-base", "ORIGIN", "Access-Control-Allow-Origin value", str(func(o *Options) *string { return &o.CORSBase })},
		{"ra", "", "allow reinit: a streaming client may send a new GET request", flag(func(o *Options) *bool { return &o.Reinit })},
		{"user", "NAME", "drop root privileges to this user after binding", str(func(o *Options) *string { return &o.User })},
		{"nodaemon", "", "stay in the foreground and log to standard error", flag(func(o *Options) *bool { return &o.NoDaemon })},
		{"config", "FILE", "read options from FILE (the /etc/hasses.conf format); the command line wins", str(func(o *Options) *string { return &o.ConfigFile })},
		{"admin", "ADDR", "admin listener: dashboard at /, /metrics, /healthz; guarded like the publish API; a bare PORT binds 127.0.0.1, :PORT all interfaces (default: none)", func(o *Options, v string) error {
			if _, err := strconv.Atoi(v); err == nil {
				v = "127.0.0.1:" + v
			}
			a, err := listenAddr(v)
			o.Admin = a
			return err
		}},
		{"pprof", "", "serve the Go profiler at /debug/pprof on the admin listener", flag(func(o *Options) *bool { return &o.Pprof })},
		{"pub", "ADDR", "HTTP publish API (POST /publish), e.g. 127.0.0.1:8086 (default: none)", addr(func(o *Options) *string { return &o.Pub })},
		{"ctl-secret", "SECRET", "secret publishers must present (control port: first line \"auth SECRET\"; HTTP: Bearer); also $HASSES_CTL_SECRET", func(o *Options, v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("the secret is empty: give one, or omit the option")
			}
			o.CtlSecret = v
			return nil
		}},
		{"ctl-secret-file", "FILE", "read the publisher secret from FILE", str(func(o *Options) *string { return &o.CtlSecretFile })},
		{"ctl-allow", "CIDRS", "networks publishers may connect from, comma-separated (default: private networks without a secret, any with one)", str(func(o *Options) *string { return &o.CtlAllow })},
		{"pub-rate", "N", "publications per second per publisher address on the HTTP API; 0 = unlimited", func(o *Options, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= maxPubRate) { // also refuses NaN
				return fmt.Errorf("%q is not a number in 0-%g", v, maxPubRate)
			}
			o.PubRate = f
			return nil
		}},
		{"fifo-mode", "MODE", "permissions of a FIFO hasses creates, octal (hasses used 0666)", func(o *Options, v string) error {
			m, err := strconv.ParseUint(v, 8, 32)
			if err != nil || m > 0o777 {
				return fmt.Errorf("%q is not an octal mode", v)
			}
			o.FIFOMode = uint32(m)
			return nil
		}},
		{"cors-origins", "LIST", "allowed origins, comma-separated; the matching Origin is echoed with credentials allowed, others get 403 (default: -cors-base)", str(func(o *Options) *string { return &o.CORSOrigins })},
		{"jwt-key", "FILE", "require subscribers to present a JWT verified with this PEM public key or certificate (RSA: RS256/PS256..., ECDSA: ES256/384/512, Ed25519: EdDSA)", str(func(o *Options) *string { return &o.JWTKey })},
		{"jwt-secret-file", "FILE", "require subscribers to present a JWT signed with the HMAC secret in FILE (HS256/384/512, at least 32 bytes)", str(func(o *Options) *string { return &o.JWTSecretFile })},
		{"jwt-require-exp", "", "refuse subscriber tokens without an exp claim", flag(func(o *Options) *bool { return &o.JWTRequireExp })},
		{"jwt-audience", "AUD", "refuse subscriber tokens whose aud claim does not contain AUD", str(func(o *Options) *string { return &o.JWTAudience })},
		{"jwt-issuer", "ISS", "refuse subscriber tokens whose iss claim is not ISS", str(func(o *Options) *string { return &o.JWTIssuer })},
		{"jwt-renew-before", "DUR", "a stream whose token has an exp gets a hasses-expiring event this long before it (at once when it opens closer to exp), so the page can reopen with a fresh token; 0 disables", dur(maxWait, func(o *Options) *time.Duration { return &o.JWTRenewBefore })},
		{"max-conns-per-ip", "N", "streams one client address may hold; more get 429; 0 = unlimited", num(0, maxCount, func(o *Options) *int { return &o.MaxConnsPerIP })},
		{"max-conns-per-proxy", "N", "streams one trusted proxy may carry whose requests name no client (no X-Forwarded-For); more get 429; 0 = unlimited", num(0, maxCount, func(o *Options) *int { return &o.MaxConnsPerProxy })},
		{"trusted-proxies", "CIDRS", "reverse proxies whose X-Forwarded-For, Forwarded or X-Real-IP names the client (per-address cap, clientlist, logs; never publishing), e.g. 127.0.0.1 for a proxy on this host; their streams that name no client count under -max-conns-per-proxy; none = trust nobody", func(o *Options, v string) error {
			if _, err := access.ParseProxies(v); err != nil {
				return err
			}
			o.TrustedProxies = strings.TrimSpace(v)
			return nil
		}},
		{"max-message", "BYTES", "largest message body; longer ones are rejected whole", num(1, maxMessage, func(o *Options) *int { return &o.MaxMessage })},
		{"max-lag", "BYTES", "a stream this far behind is closed as too slow", num64(0, maxBytes, func(o *Options) *int64 { return &o.MaxLag })},
		{"loops", "N", "epoll loops (default: one per two CPUs)", num(0, maxLoops, func(o *Options) *int { return &o.Loops })},
		{"max-tokens", "N", "tokens one stream may subscribe to", num(0, maxCount, func(o *Options) *int { return &o.MaxTokens })},
		{"max-token-len", "BYTES", "longest token", num(0, maxMessage, func(o *Options) *int { return &o.MaxTokenLen })},
		{"max-conns", "N", "connections on the SSE port; more get 503 (default: from the file limit)", num(0, maxCount, func(o *Options) *int { return &o.MaxConns })},
		{"sndbuf", "BYTES", "kernel send buffer of each stream; bounds kernel memory per slow client, 0 = kernel default", num(0, maxSendBuffer, func(o *Options) *int { return &o.SendBuffer })},
		{"handshake-timeout", "DUR", "close connections without a complete request after this", dur(maxWait, func(o *Options) *time.Duration { return &o.HandshakeTimeout })},
		{"lifetime", "DUR", "maximum stream age; each stream gets 80-100% of it", dur(maxAge, func(o *Options) *time.Duration { return &o.Lifetime })},
		{"heartbeat", "DUR", "comment sent on idle streams so proxies keep them; 0 disables", dur(maxWait, func(o *Options) *time.Duration { return &o.Heartbeat })},
		{"retry", "DUR", "reconnection delay hinted to clients on connect; 0 sends none", dur(maxWait, func(o *Options) *time.Duration { return &o.Retry })},
		{"coalesce", "DUR", "least time between two flush passes (in a cluster, also between two reads of the bus): more events per write, less CPU, more latency", dur(maxWait, func(o *Options) *time.Duration { return &o.Coalesce })},
		{"drain", "DUR", "on SIGTERM, how long streams get to end cleanly", dur(maxWait, func(o *Options) *time.Duration { return &o.Drain })},
		{"ctl-idle-gap", "DUR", "a control message without terminator ends after this silence", dur(maxWait, func(o *Options) *time.Duration { return &o.IdleGap })},
		{"ctl-max-conns", "N", "open connections on the control port; more get an error line", num(1, maxCount, func(o *Options) *int { return &o.CtlMaxConns })},
		{"ctl-idle-timeout", "DUR", "a control connection that sends nothing for this long is closed", dur(maxWait, func(o *Options) *time.Duration { return &o.CtlIdleTimeout })},
		{"history-count", "N", "events kept per token for Last-Event-ID replay; 0 keeps no history", num(0, maxCount, func(o *Options) *int { return &o.HistoryCount })},
		{"history-bytes", "BYTES", "bytes of events kept per token", num64(0, maxBytes, func(o *Options) *int64 { return &o.HistoryBytes })},
		{"history-total-bytes", "BYTES", "bytes of events kept over all tokens, history and what slow streams have yet to receive; the oldest go first", num64(0, maxBytes, func(o *Options) *int64 { return &o.HistoryTotal })},
		{"history-age", "DUR", "how long events are kept for replay", dur(maxAge, func(o *Options) *time.Duration { return &o.HistoryAge })},
		{"idempotency-window", "DUR", "a publication's idempotency_key publishes once within this time (at most 65536 keys are kept, the oldest go first)", dur(maxAge, func(o *Options) *time.Duration { return &o.IdemWindow })},
		{"presence", "TARGETS", "tokens whose subscribers see each other join and leave (hasses-join, hasses-leave, hasses-presence): exact tokens and prefix*, comma-separated (default none)", func(o *Options, v string) error {
			if _, err := PresenceTargets(v); err != nil {
				return err
			}
			o.Presence = v
			return nil
		}},
		{"presence-grace", "DUR", "how long a client's last stream must stay gone before it leaves (and a token's before it is vacated), so that a reconnect is neither; 0 for none", dur(maxWait, func(o *Options) *time.Duration { return &o.PresenceGrace })},
		{"presence-max", "N", "clients listed per token by /presence, tcppresence: and hasses-presence (the count is always full)", num(1, maxCount, func(o *Options) *int { return &o.PresenceMax })},
		{"cluster", "URL", "join a cluster of nodes on Redis: redis://HOST:PORT/DB, rediss://..., redis+sentinel://HOST:PORT/DB?master=NAME (default: single node)", func(o *Options, v string) error {
			if !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") && !strings.HasPrefix(v, "redis+sentinel://") && !strings.HasPrefix(v, "rediss+sentinel://") {
				return fmt.Errorf("%q is not a redis://, rediss:// or redis+sentinel:// URL", cluster.Redact(v))
			}
			o.Cluster = v
			return nil
		}},
		{"cluster-prefix", "NAME", "namespace of the cluster's Redis keys, so clusters can share a Redis", func(o *Options, v string) error {
			if v == "" || strings.ContainsAny(v, "{}") {
				return fmt.Errorf("%q must be non-empty and contain no braces", v)
			}
			o.ClusterPrefix = v
			return nil
		}},
		{"cluster-log", "N", "entries the cluster's log stream in Redis keeps; a node stalled longer misses events", num(0, maxCount, func(o *Options) *int { return &o.ClusterLog })},
		{"cluster-queue", "N", "control units held in order while Redis is unreachable; more are dropped", num(0, maxCount, func(o *Options) *int { return &o.ClusterQueue })},
		{"webhook", "URL", "POST signed batches of events (stream subscribe/unsubscribe, token occupied/vacated) to this http:// or https:// URL (default: none)", func(o *Options, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http:// or https:// URL", redactURL(v))
			}
			o.Webhook = v
			return nil
		}},
		{"webhook-secret-file", "FILE", fmt.Sprintf("read the secret that signs the webhook requests from FILE (at least %d bytes; required with -webhook)", webhook.MinSecretLen), str(func(o *Options) *string { return &o.WebhookSecretFile })},
		{"webhook-events", "TYPES", "the webhook event types sent, comma-separated, of " + strings.Join(webhook.Types, ",") + " (default: all)", func(o *Options, v string) error {
			types, err := webhook.ParseTypes(v)
			if err != nil {
				return err
			}
			o.WebhookEvents = strings.Join(types, ",")
			return nil
		}},
		{"check", "", "check the options, the config file, keys and certificates, print the effective configuration (secrets hidden) and exit: 0, or 2 listing every problem", flag(func(o *Options) *bool { return &o.Check })},
		{"h", "", "print this help and exit (also -help, --help)", func(*Options, string) error { return ErrHelp }},
		{"v", "", "print the version and exit (also -version)", func(*Options, string) error { return ErrVersion }},
	}
}

// Defaults returns the options before any argument is applied.
func Defaults() *Options {
	return &Options{
		Sep:              control.DefaultSep,
		LogFile:          "/var/log/hasses.log",
		CORSBase:         handshake.DefaultCORSBase,
		MaxMessage:       hub.DefaultMaxData,
		MaxLag:           hub.DefaultMaxLag,
		MaxTokens:        handshake.DefaultMaxTokens,
		MaxTokenLen:      handshake.DefaultMaxTokenLen,
		SendBuffer:       epoll.DefaultSendBuffer,
		HandshakeTimeout: stream.DefaultHandshakeTimeout,
		Lifetime:         stream.DefaultLifetime,
		Heartbeat:        stream.DefaultHeartbeat,
		JWTRenewBefore:   stream.DefaultRenewBefore,
		Drain:            stream.DefaultDrain,
		IdleGap:          control.DefaultIdleGap,
		CtlMaxConns:      control.DefaultMaxConns,
		CtlIdleTimeout:   control.DefaultIdleTimeout,
		HistoryCount:     hub.DefaultHistoryCount,
		FIFOMode:         control.DefaultFIFOMode,
		MaxConnsPerIP:    stream.DefaultMaxConnsPerAddr,
		MaxConnsPerProxy: stream.DefaultMaxConnsPerProxy,
		HistoryBytes:     hub.DefaultHistoryBytes,
		HistoryAge:       hub.DefaultHistoryAge,
		IdemWindow:       hub.DefaultIdempotencyWindow,
		HistoryTotal:     hub.DefaultHistoryTotalBytes,
		PresenceGrace:    hub.DefaultPresenceGrace,
		PresenceMax:      hub.DefaultPresenceMax,
		TrustedProxies:   access.DefaultTrustedProxies,
		ClusterPrefix:    cluster.DefaultPrefix,
		ClusterLog:       cluster.DefaultLogLength,
		ClusterQueue:     cluster.DefaultQueue,
	}
}

// PresenceTargets splits the -presence list: exact tokens and prefix*.
func PresenceTargets(v string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if i := strings.IndexByte(t, '*'); i >= 0 && i != len(t)-1 {
			return nil, fmt.Errorf("%q: '*' may only end a target (prefix*)", t)
		}
		out = append(out, t)
	}
	return out, nil
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
	o, errs := parse(args, false)
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return o, nil
}

// Check reads args as Parse does, but goes on past a problem: it returns
// the options as far as they could be read and every problem found (for
// hasses -check).
func Check(args []string) (*Options, []error) { return parse(args, true) }

// parse stops at the first problem unless all is set.
func parse(args []string, all bool) (*Options, []error) {
	o := Defaults()
	var errs []error
	// fail records err and says whether to stop.
	fail := func(err error) bool {
		errs = append(errs, err)
		return !all
	}
	type setting struct{ name, value string }
	var cmdline []setting
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			if fail(fmt.Errorf("unexpected argument %q", a)) {
				return nil, errs
			}
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		switch name { // the spellings users try first
		case "help":
			name = "h"
		case "version":
			name = "v"
		}
		opt := lookup(name)
		if opt == nil {
			if fail(fmt.Errorf("unknown option -%s", name)) {
				return nil, errs
			}
			continue
		}
		if opt.arg != "" && !hasValue {
			if i+1 == len(args) {
				if fail(fmt.Errorf("option -%s needs a value (-%s=%s)", name, name, opt.arg)) {
					return nil, errs
				}
				continue
			}
			i++
			value = args[i]
		}
		if opt.arg == "" && hasValue {
			if fail(fmt.Errorf("option -%s takes no value", name)) {
				return nil, errs
			}
			continue
		}
		if name == "h" || name == "v" {
			return nil, []error{opt.set(o, "")}
		}
		cmdline = append(cmdline, setting{name, value})
	}
	for _, s := range cmdline {
		if s.name == "config" {
			if readFile(o, s.value, fail) {
				return nil, errs
			}
		}
	}
	for _, s := range cmdline {
		if err := lookup(s.name).set(o, s.value); err != nil {
			if fail(fmt.Errorf("option -%s: %w", s.name, err)) {
				return nil, errs
			}
		}
	}
	// A secret that was given but is empty is a mistake (an unwritten file,
	// an unset variable in a unit file), not a wish to run open: refuse it.
	if o.CtlSecret == "" && o.CtlSecretFile == "" {
		if v, ok := os.LookupEnv("HASSES_CTL_SECRET"); ok {
			if strings.TrimSpace(v) == "" {
				if fail(errors.New("HASSES_CTL_SECRET is set but empty: give a secret or unset it")) {
					return nil, errs
				}
			}
			o.CtlSecret = v
		}
	}
	if o.CtlSecretFile != "" {
		b, err := os.ReadFile(o.CtlSecretFile)
		if err != nil {
			if fail(fmt.Errorf("option -ctl-secret-file: %w", err)) {
				return nil, errs
			}
		}
		o.CtlSecret = strings.TrimSpace(string(b))
		if o.CtlSecret == "" && err == nil {
			if fail(fmt.Errorf("option -ctl-secret-file: %s is empty", o.CtlSecretFile)) {
				return nil, errs
			}
		}
	}
	for _, err := range o.problems() {
		if fail(err) {
			return nil, errs
		}
	}
	return o, errs
}

// readFile applies a config file: one option per line as on the command
// line, "#" starts a comment ("\#" is a literal "#"). It reports each
// problem to fail and returns true when fail says to stop.
func readFile(o *Options, path string, fail func(error) bool) (stop bool) {
	f, err := os.Open(path)
	if err != nil {
		return fail(fmt.Errorf("config file: %w", err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if err := applyLine(o, path, n, stripComment(sc.Text())); err != nil && fail(err) {
			return true
		}
	}
	if err := sc.Err(); err != nil {
		return fail(fmt.Errorf("config file %s: %w", path, err))
	}
	return false
}

// twoOptionsRE finds a second option on a config file line ("-a=1 -b=2").
var twoOptionsRE = regexp.MustCompile(`\s-{1,2}([a-z][a-z0-9-]*)(?:=|\s|$)`)

// applyLine applies line n of a config file; its errors show the line as
// it should be written.
func applyLine(o *Options, path string, n int, line string) error {
	if line == "" {
		return nil
	}
	name, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(line, "-"), "-"), "=")
	if before, after, ok := strings.Cut(name, " "); ok && !hasValue && lookup(before) != nil && lookup(before).arg != "" {
		// "-p 8080": the command line's other spelling.
		return fmt.Errorf("%s:%d: %q: write -%s=%s (one option per line, as on the command line)", path, n, line, before, strings.TrimSpace(after))
	}
	if m := twoOptionsRE.FindStringSubmatch(line); m != nil && lookup(m[1]) != nil {
		return fmt.Errorf("%s:%d: %q holds two options: write one per line (-%s on a line of its own)", path, n, line, m[1])
	}
	opt := lookup(name)
	switch {
	case opt == nil:
		return fmt.Errorf("%s:%d: unknown option %q: one option per line, -name=value as on the command line ('hasses -h' lists them)", path, n, line)
	case name == "config" || name == "h" || name == "v" || name == "check":
		return fmt.Errorf("%s:%d: -%s cannot be used in a config file", path, n, name)
	case !strings.HasPrefix(line, "-"):
		return fmt.Errorf("%s:%d: %q: write -%s (options are spelled as on the command line)", path, n, line, line)
	case opt.arg != "" && !hasValue:
		return fmt.Errorf("%s:%d: option -%s needs a value: -%s=%s", path, n, name, name, opt.arg)
	case opt.arg == "" && hasValue:
		return fmt.Errorf("%s:%d: option -%s takes no value: write -%s alone", path, n, name, name)
	}
	if err := opt.set(o, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("%s:%d: -%s=%s: %w", path, n, name, strings.TrimSpace(value), err)
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

// problems lists what makes o unusable, most basic first.
func (o *Options) problems() []error {
	var errs []error
	add := func(cond bool, msg string) {
		if cond {
			errs = append(errs, errors.New(msg))
		}
	}
	add(o.Port == "", "missing -p (the SSE port)")
	add(o.MURL == "", "missing -murl (the SSE path)")
	add(o.CtlPort == "" && o.FIFO == "", "missing -cp or -fifo: there must be a way to send messages")
	add(o.SSL && (o.CertFile == "" || o.KeyFile == ""), "-ssl needs -cert-file and -privatekey-file")
	add(o.MaxMessage == 0, "-max-message must be positive")
	add(strings.ContainsAny(o.CtlSecret, ";\r\n") || strings.IndexByte(o.CtlSecret, o.Sep) >= 0, "the publisher secret must not contain the separator or line breaks")
	// A short secret is guessed, throttle or not: the JWT secret needs 32.
	add(o.CtlSecret != "" && len(o.CtlSecret) < access.MinSecretLen, fmt.Sprintf("the publisher secret (-ctl-secret, -ctl-secret-file, $HASSES_CTL_SECRET) has %d bytes, it needs at least %d: make one with openssl rand -base64 24", len(o.CtlSecret), access.MinSecretLen))
	add(o.JWTKey != "" && o.JWTSecretFile != "", "-jwt-key and -jwt-secret-file exclude each other: give one")
	add((o.JWTRequireExp || o.JWTAudience != "" || o.JWTIssuer != "") && o.JWTKey == "" && o.JWTSecretFile == "", "-jwt-require-exp, -jwt-audience and -jwt-issuer need -jwt-key or -jwt-secret-file")
	add(o.Webhook != "" && o.WebhookSecretFile == "", "-webhook needs -webhook-secret-file: the backend must be able to tell the server's requests from forgeries")
	add(o.Webhook == "" && o.WebhookSecretFile != "", "-webhook-secret-file needs -webhook")
	return errs
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
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		if n > math.MaxInt64/int64(time.Second) {
			return 0, fmt.Errorf("%q seconds is too long", v)
		}
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

// DefaultText returns each option's default as it is spelled on the
// command line, for the options whose default is a value (not a switch,
// not "none"). The help text and the documentation tests derive from it, so
// each default is written once, in Defaults (which takes the components'
// own constants).
func DefaultText() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(Defaults()).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("opt")
		if name == "" {
			continue
		}
		switch f := v.Field(i).Interface().(type) {
		case time.Duration:
			if f != 0 {
				out[name] = formatDuration(f)
			}
		case int, int64:
			if s := fmt.Sprint(f); s != "0" {
				out[name] = s
			}
		case byte:
			out[name] = string(rune(f))
		case uint32:
			if f != 0 {
				out[name] = fmt.Sprintf("%04o", f)
			}
		case string:
			if f != "" {
				out[name] = f
			}
		}
	}
	return out
}

// formatDuration spells d as a person would: 1h, 20s, 200ms.
func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// Usage returns the help text.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: hasses -p=PORT -murl=PATH (-cp=PORT | -fifo=FILE) [options]\n")
	b.WriteString("       hasses publish [-to URL] [-secret S] TOKEN[,TOKEN...] [MESSAGE]\n")
	b.WriteString("       hasses history [-to URL] [-secret S] [-after ID] [-limit N] TOKEN[,TOKEN...]\n")
	b.WriteString("       hasses disconnect [-to URL] [-secret S] [-id ID] [-user USER] [-token TOKEN]\n")
	b.WriteString("       hasses revoke [-to URL] [-secret S] [-until TIME] USER | -list\n\n")
	b.WriteString("A Server-Sent Events notification server, compatible with hasses 1.30.\n")
	b.WriteString("Example: hasses -nodaemon -p=8080 -cp=127.0.0.1:8085 -murl=/sse\n\n")
	b.WriteString("'hasses publish' sends one message to a running server, through the HTTP API\n")
	b.WriteString("(-to http://HOST:PORT/publish) or the control port (-to tcp://HOST:PORT);\n")
	b.WriteString("'hasses history' prints what a token's stream holds (GET /history beside /publish);\n")
	b.WriteString("'hasses disconnect' ends streams by client id, user or token (POST /disconnect);\n")
	b.WriteString("'hasses revoke' also refuses a user's tokens issued until now (POST /revoke).\n")
	b.WriteString("Each lists its options with -h.\n\nOptions:\n")
	defaults := DefaultText()
	for _, opt := range options {
		left := "-" + opt.name
		if opt.arg != "" {
			left += "=" + opt.arg
		}
		usage := opt.usage
		if d := defaults[opt.name]; d != "" {
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(&b, "  %-26s %s\n", left, usage)
	}
	b.WriteString("\nA config file (-config=FILE) holds one option per line, spelled as on the\ncommand line (-p=8080, -ra); '#' starts a comment.\n")
	b.WriteString("\nEnvironment:\n")
	b.WriteString("  HASSES_CTL_SECRET          the publisher secret, when -ctl-secret and -ctl-secret-file are not given\n")
	b.WriteString("  GOGC, GOMAXPROCS, GOMEMLIMIT  Go runtime settings (hasses sets GOGC=50 unless GOGC is set)\n")
	return b.String()
}

// Effective returns o as a config file: every option with its value, one per
// line (a switch that is off, or an empty value, commented out), secrets
// replaced by REDACTED. hasses -check prints it.
func Effective(o *Options) string {
	var b strings.Builder
	v := reflect.ValueOf(o).Elem()
	for i := range v.NumField() {
		name := v.Type().Field(i).Tag.Get("opt")
		switch name {
		case "", "config", "check":
			continue
		}
		var val string
		switch f := v.Field(i).Interface().(type) {
		case bool:
			if f {
				fmt.Fprintf(&b, "-%s\n", name)
			} else {
				fmt.Fprintf(&b, "#-%s\n", name)
			}
			continue
		case time.Duration:
			val = "0"
			if f != 0 {
				val = formatDuration(f)
			}
		case byte:
			val = string([]byte{f})
		case uint32:
			val = fmt.Sprintf("%04o", f)
		case float64:
			val = strconv.FormatFloat(f, 'g', -1, 64)
		default:
			val = fmt.Sprint(f)
		}
		switch {
		case val == "":
			fmt.Fprintf(&b, "#-%s=\n", name)
			continue
		case name == "ctl-secret":
			val = "REDACTED"
		case name == "cluster", name == "webhook":
			val = redactURL(val)
		}
		fmt.Fprintf(&b, "-%s=%s\n", name, strings.ReplaceAll(val, "#", `\#`))
	}
	return b.String()
}

// redactURL hides the password of a URL (redis://:pass@host).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
