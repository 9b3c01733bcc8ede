// Package server wires the hasses daemon together: the hub, the epoll front
// end of the SSE port, and the control inputs, built from the command-line
// options.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/cluster"
	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/control"
	"github.com/hasses-go/hasses/internal/dashboard"
	"github.com/hasses-go/hasses/internal/epoll"
	"github.com/hasses-go/hasses/internal/gcpace"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/httpfront"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
	"github.com/hasses-go/hasses/internal/pubapi"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/internal/stream"
	"github.com/hasses-go/hasses/internal/subauth"
	"github.com/hasses-go/hasses/internal/webhook"
)

// Version is reported by -v and the status commands.
const Version = "2.0.0-dev"

// Server is a configured, bound hasses daemon.
type Server struct {
	pacer   *gcpace.Pacer // nil: the collector's pace is not the server's to set
	opts    *config.Options
	log     *slog.Logger
	level   *slog.LevelVar
	started time.Time
	reinit  atomic.Bool

	hub     *hub.Hub
	core    *stream.Core
	front   frontEnd
	cert    *certificate // with -ssl
	control *control.Handler

	sseLn   net.Listener
	ctlLn   net.Listener
	adminLn net.Listener
	pubLn   net.Listener

	policy   *access.Policy
	pipe     *pipeline.Pipeline // every publication goes through it
	proxies  *access.Proxies
	throttle access.Throttle // wrong secrets per address, on the admin and publish-API listeners
	// httpMaxConns caps each of the admin and publish-API listeners.
	httpMaxConns int
	pub          *pubapi.Handler
	guard        *adminGuard          // with -admin
	dash         *dashboard.Dashboard // with -admin
	refusals     *refusal.Log

	cluster *cluster.Engine // nil on a single node
	revoked *subauth.Revocations
	// webhook sends events to the backend (-webhook); nil (a no-op) without.
	webhook *webhook.Sender
}

// New binds the listeners and builds the components. Binding happens here,
// before privileges are dropped and before a detached daemon reports that it
// started, so "could not bind" reaches the person who ran the command.
// PaceCollector lets the server boost p while connections arrive in a
// burst (see internal/gcpace). Call it before Run.
func (s *Server) PaceCollector(p *gcpace.Pacer) { s.pacer = p }

func New(opts *config.Options, log *slog.Logger, level *slog.LevelVar) (*Server, error) {
	s := &Server{opts: opts, log: log, level: level, started: time.Now(), revoked: &subauth.Revocations{}}
	s.reinit.Store(opts.Reinit)
	fileLimit := raiseFileLimit(log)
	// The admin and publish-API listeners are capped, and their caps are
	// kept out of the SSE port's share of the file limit.
	s.httpMaxConns = httpMaxConns(fileLimit)
	reserved := 0
	for _, a := range []string{opts.Admin, opts.Pub} {
		if a != "" {
			reserved += s.httpMaxConns
		}
	}
	maxConns := opts.MaxConns
	if maxConns == 0 {
		maxConns = defaultMaxConns(fileLimit, reserved)
	}
	log.Info("connection limit", "open_files", fileLimit, "max_conns", maxConns, "http_max_conns", s.httpMaxConns, "reserved_http", reserved)

	var err error
	s.sseLn, err = net.Listen("tcp", opts.Port)
	if err != nil {
		return nil, fmt.Errorf("could not bind the SSE port %s: %w", opts.Port, err)
	}
	if opts.CtlPort != "" {
		s.ctlLn, err = net.Listen("tcp", opts.CtlPort)
		if err != nil {
			s.sseLn.Close()
			return nil, fmt.Errorf("could not bind the control port %s: %w", opts.CtlPort, err)
		}
	}

	s.policy = &access.Policy{Secret: opts.CtlSecret}
	if opts.CtlAllow != "" {
		if s.policy.Allow, err = access.ParseAllow(opts.CtlAllow); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	if opts.Pub != "" {
		s.pubLn, err = net.Listen("tcp", opts.Pub)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("could not bind the publish API port %s: %w", opts.Pub, err)
		}
	}
	if opts.Admin != "" {
		s.adminLn, err = net.Listen("tcp", opts.Admin)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("could not bind the admin port %s: %w", opts.Admin, err)
		}
	}

	histCount := opts.HistoryCount
	if histCount == 0 {
		histCount = -1 // -history-count=0: no history (zero means the default to the hub)
	}
	if s.webhook, err = newWebhook(opts, log, nodeName(s.sseLn.Addr())); err != nil {
		s.closeListeners()
		return nil, err
	}
	presTargets, _ := config.PresenceTargets(opts.Presence) // checked by config
	presGrace := opts.PresenceGrace
	if presGrace == 0 {
		presGrace = -1 // -presence-grace=0: none (zero means the default to the hub)
	}
	s.hub = hub.New(hub.Config{
		Presence: hub.PresenceConfig{Targets: presTargets, Grace: presGrace, Max: opts.PresenceMax,
			Occupancy: occupancyHook(s.webhook)},
		MaxLag:            opts.MaxLag,
		HistoryCount:      histCount,
		HistoryBytes:      opts.HistoryBytes,
		HistoryAge:        opts.HistoryAge,
		HistoryTotalBytes: opts.HistoryTotal,
		IdempotencyWindow: opts.IdemWindow,
	})
	if opts.Cluster != "" {
		s.cluster, err = cluster.New(cluster.Config{URL: opts.Cluster, Prefix: opts.ClusterPrefix,
			LogLength: opts.ClusterLog, Queue: opts.ClusterQueue, HistoryAge: opts.HistoryAge, IdempotencyWindow: opts.IdemWindow, Coalesce: opts.Coalesce,
			Addr: nodeName(s.sseLn.Addr()), Logger: log, OnRevoke: s.applyRevocation}, s.hub)
		if err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	hcfg := &handshake.Config{
		Path:        opts.MURL,
		CORSBase:    opts.CORSBase,
		MaxTokens:   opts.MaxTokens,
		MaxTokenLen: opts.MaxTokenLen,
	}
	if opts.CORSOrigins != "" {
		for _, o := range strings.Split(opts.CORSOrigins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				hcfg.Origins = append(hcfg.Origins, o)
			}
		}
	}
	proxies, err := access.ParseProxies(opts.TrustedProxies)
	s.proxies = proxies
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("option -trusted-proxies: %w", err)
	}
	if proxies == nil {
		log.Info("trusted proxies: none; X-Forwarded-For, Forwarded and X-Real-IP are ignored (-trusted-proxies)", "trusted_proxies", proxies.String())
	} else {
		log.Info("trusted proxies: the forwarding headers of these peers name the client for -max-conns-per-ip, clientlist and logs; their streams that name none count under -max-conns-per-proxy",
			"trusted_proxies", proxies.String(), "max_conns_per_proxy", opts.MaxConnsPerProxy)
	}
	s.refusals = refusal.New(log)
	var authorize func(*handshake.Request, time.Time) (time.Time, int, error)
	if opts.JWTKey != "" || opts.JWTSecretFile != "" {
		v, err := subauth.New(subauth.Options{KeyFile: opts.JWTKey, SecretFile: opts.JWTSecretFile,
			RequireExp: opts.JWTRequireExp, Audience: opts.JWTAudience, Issuer: opts.JWTIssuer})
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		v.CheckRevoked(s.revoked)
		authorize = func(req *handshake.Request, now time.Time) (time.Time, int, error) {
			exp, err := v.Authorize(req, now)
			if e := (*subauth.Error)(nil); errors.As(err, &e) {
				return exp, e.Status, err
			}
			return exp, 0, err
		}
		log.Info("subscribers must present a signed token", "key", opts.JWTKey+opts.JWTSecretFile, "algorithms", strings.Join(v.Methods(), ","))
	}
	s.core = stream.New(s.hub, stream.Config{
		Handshake:        hcfg,
		HandshakeTimeout: opts.HandshakeTimeout,
		Lifetime:         opts.Lifetime,
		Heartbeat:        opts.Heartbeat,
		Retry:            opts.Retry,
		Drain:            opts.Drain,
		MaxConns:         maxConns,
		MaxConnsPerAddr:  opts.MaxConnsPerIP,
		MaxConnsPerProxy: opts.MaxConnsPerProxy,
		TrustedProxies:   proxies,
		Refusals:         s.refusals,
		Authorize:        authorize,
		RenewBefore:      opts.JWTRenewBefore,
		Reinit:           &s.reinit,
		Logger:           log,
		Observer:         streamObserver(s.webhook),
	})
	if opts.SSL {
		if s.cert, err = loadCertificate(opts.CertFile, opts.KeyFile); err != nil {
			s.closeListeners()
			return nil, err
		}
		s.front = httpfront.New(s.core, httpfront.Config{TLS: s.cert.tlsConfig(), SendBuffer: opts.SendBuffer})
		return s, s.newControl()
	}
	s.front, err = epoll.New(s.core, epoll.Config{
		Loops:      opts.Loops,
		Coalesce:   opts.Coalesce,
		SendBuffer: opts.SendBuffer,
	})
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, s.newControl()
}

// frontEnd serves the SSE port: the epoll loops, or TLS (HTTP/1.1 and
// HTTP/2). What a stream is lives in the stream core they share.
type frontEnd interface {
	Serve(ctx context.Context, ln net.Listener) error
	Stats() stream.Stats
	Clients() []stream.ClientInfo
}

func (s *Server) newControl() error {
	opts := s.opts
	s.pipe = &pipeline.Pipeline{Hub: s.hub,
		Limits: hub.Limits{MaxData: opts.MaxMessage, MaxTokenLen: opts.MaxTokenLen, MaxIDLen: handshake.DefaultMaxIDLen, MaxTargets: opts.MaxTokens}}
	if s.cluster != nil {
		s.pipe.Cluster = s.cluster
	}
	s.pub = &pubapi.Handler{Pipeline: s.pipe, History: s.hub, Presence: s, Revoker: s, Policy: s.policy,
		Rate: access.NewRateLimiter(opts.PubRate, max(int(opts.PubRate), 1)), Logger: s.log,
		Throttle: &s.throttle, Refusals: s.refusals}
	if s.adminLn != nil {
		s.guard = newAdminGuard(s.policy, s.proxies, &s.throttle, s.refusals)
		s.dash = dashboard.New(dashSource{s}, dashboard.Config{Version: Version, Login: s.policy.Secret != ""})
	}
	s.control = &control.Handler{
		Pipeline:    s.pipe,
		Policy:      s.policy,
		FIFOMode:    os.FileMode(opts.FIFOMode),
		Backend:     s,
		Logger:      s.log,
		Level:       s.level,
		Sep:         opts.Sep,
		IdleGap:     opts.IdleGap,
		MaxConns:    opts.CtlMaxConns,
		IdleTimeout: opts.CtlIdleTimeout,
	}
	return nil
}

func (s *Server) closeListeners() {
	if s.sseLn != nil {
		s.sseLn.Close()
	}
	if s.ctlLn != nil {
		s.ctlLn.Close()
	}
	if s.adminLn != nil {
		s.adminLn.Close()
	}
	if s.pubLn != nil {
		s.pubLn.Close()
	}
}

// CheckFIFO checks that the -fifo FIFO can be served: an existing path
// must be a FIFO hasses can open, a missing one must be creatable (its
// directory exists and is writable). The daemon calls it after dropping
// privileges and before reporting that it started, so that a bad path
// fails the start instead of the background process.
func (s *Server) CheckFIFO() error {
	path := s.opts.FIFO
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.Mode()&os.ModeNamedPipe == 0:
		return fmt.Errorf("control: %s exists and is not a FIFO", path)
	case err == nil:
		f, err := s.control.OpenFIFO(path) // also checks its owner and mode
		if err != nil {
			return err
		}
		return f.Close()
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("control: FIFO %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("control: cannot create FIFO %s: %w", path, err)
	}
	if err := syscall.Access(dir, 0x2|0x1); err != nil { // W_OK|X_OK
		return fmt.Errorf("control: cannot create FIFO %s: directory %s: %w", path, dir, err)
	}
	return nil
}

// Reload re-reads what can change without a restart: the TLS certificate.
func (s *Server) Reload() error {
	if s.cert == nil {
		return nil
	}
	return s.cert.reload()
}

// Run serves until ctx is done, then shuts down gracefully: streams are
// ended cleanly within the drain time.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("hasses started", "version", Version, "pid", os.Getpid(),
		"sse", s.sseLn.Addr().String(), "path", s.opts.MURL, "control", addrString(s.ctlLn), "fifo", s.opts.FIFO, "admin", addrString(s.adminLn), "publish", addrString(s.pubLn), "node", nodeName(s.sseLn.Addr()))

	stopLog := context.AfterFunc(ctx, func() {
		s.log.Info("shutting down: ending every stream", "drain", s.opts.Drain)
	})
	defer stopLog()
	defer s.refusals.Close() // its end-of-second timer
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, fn func() error) {
		wg.Go(func() {
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		})
	}
	wg.Go(func() { s.hub.Run(ctx) })
	wg.Go(func() { s.returnIdleMemory(ctx) })
	if s.cluster != nil {
		run("cluster", func() error { return s.cluster.Run(ctx) })
	}
	if s.ctlLn != nil {
		run("control port", func() error { return s.control.ServeTCP(ctx, s.ctlLn) })
	}
	if s.adminLn != nil {
		wg.Go(func() { s.dash.Run(ctx) })
		run("admin port", func() error { return s.serveHTTP(ctx, s.adminLn, s.adminHandler(), adminMaxBody) })
		level := slog.LevelInfo
		if s.policy.Secret == "" {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "admin listener: guarded like publishers (-ctl-secret, -ctl-allow); /healthz and /readyz are open",
			"secret", s.policy.Secret != "", "pprof", s.opts.Pprof)
	}
	if s.pubLn != nil {
		run("publish API", func() error { return s.serveHTTP(ctx, s.pubLn, s.pub, 0) })
	}
	if s.ctlLn != nil || s.pubLn != nil {
		if s.policy.Secret == "" {
			s.log.Warn("publisher access: " + s.policy.Describe())
		} else {
			s.log.Info("publisher access: " + s.policy.Describe())
		}
	}
	if s.opts.FIFO != "" {
		run("fifo", func() error { return s.control.ServeFIFO(ctx, s.opts.FIFO) })
	}
	if s.cluster != nil {
		s.awaitCluster(ctx)
	}
	run("SSE port", func() error { return s.front.Serve(ctx, s.sseLn) })
	// The webhook sender outlives the rest: the streams that a shutdown
	// ends are reported too.
	whctx, stopWebhook := context.WithCancel(context.WithoutCancel(ctx))
	var whwg sync.WaitGroup
	if s.webhook != nil {
		whwg.Go(func() { s.webhook.Run(whctx) })
		s.log.Info("webhook: sending events to the backend", "url", s.webhook.Target(), "events", s.opts.WebhookEvents)
	}
	wg.Wait()
	stopWebhook()
	whwg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	s.log.Info("hasses stopped")
	return errors.Join(errs...)
}

// awaitCluster holds the SSE port (connections wait in its backlog) until
// the node has joined the cluster and loaded its history, so that its first
// replays are exact; if Redis stays unreachable, streams are served anyway,
// live only.
func (s *Server) awaitCluster(ctx context.Context) {
	t := time.NewTimer(clusterJoinWait)
	defer t.Stop()
	select {
	case <-s.cluster.Joined():
	case <-t.C:
		s.log.Warn("cluster: not joined yet; serving streams, replays answer unknown until Redis is back", "waited", clusterJoinWait)
	case <-ctx.Done():
	}
}

// clusterJoinWait bounds how long the SSE port waits for the cluster.
const clusterJoinWait = 5 * time.Second

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// nodeName names this process in logs and the cluster view: its SSE
// address, with the host name in place of an unspecified address, so that
// nodes bound to [::]:8080 on different machines tell apart.
func nodeName(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
