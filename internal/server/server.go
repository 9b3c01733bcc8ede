// Package server wires the hasses daemon together: the hub, the epoll front
// end of the SSE port, and the control inputs, built from the command-line
// options.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/cluster"
	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/control"
	"github.com/hasses-go/hasses/internal/epoll"
	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/httpfront"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pubapi"
	"github.com/hasses-go/hasses/internal/subauth"
	"github.com/hasses-go/hasses/publish"
)

// Version is reported by -v and the status commands.
const Version = "2.0.0-dev"

// Server is a configured, bound hasses daemon.
type Server struct {
	opts    *config.Options
	log     *slog.Logger
	level   *slog.LevelVar
	started time.Time
	reinit  atomic.Bool

	hub     *hub.Hub
	front   frontEnd
	epoll   *epoll.Server // nil when the SSE port is served by net/http (TLS)
	cert    *certificate  // with -ssl
	control *control.Handler

	sseLn   net.Listener
	ctlLn   net.Listener
	adminLn net.Listener
	pubLn   net.Listener

	policy *access.Policy
	pub    *pubapi.Handler

	cluster *cluster.Engine // nil on a single node
}

// New binds the listeners and builds the components. Binding happens here,
// before privileges are dropped and before a detached daemon reports that it
// started, so "could not bind" reaches the person who ran the command.
func New(opts *config.Options, log *slog.Logger, level *slog.LevelVar) (*Server, error) {
	s := &Server{opts: opts, log: log, level: level, started: time.Now()}
	s.reinit.Store(opts.Reinit)
	fileLimit := raiseFileLimit(log)
	maxConns := opts.MaxConns
	if maxConns == 0 {
		maxConns = defaultMaxConns(fileLimit)
	}
	log.Info("connection limit", "open_files", fileLimit, "max_conns", maxConns)

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

	s.hub = hub.New(hub.Config{
		MaxLag:       opts.MaxLag,
		HistoryCount: opts.HistoryCount,
		HistoryBytes: opts.HistoryBytes,
		HistoryAge:   opts.HistoryAge,
	})
	if opts.Cluster != "" {
		s.cluster, err = cluster.New(cluster.Config{URL: opts.Cluster, Prefix: opts.ClusterPrefix,
			LogLength: opts.ClusterLog, Queue: opts.ClusterQueue, HistoryAge: opts.HistoryAge,
			Addr: s.sseLn.Addr().String(), Logger: log}, s.hub)
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
	var authorize func(*handshake.Request, time.Time) (time.Time, int, error)
	if opts.JWTKey != "" {
		v, err := subauth.Load(opts.JWTKey)
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		authorize = func(req *handshake.Request, now time.Time) (time.Time, int, error) {
			exp, err := v.Authorize(req, now)
			if e := (*subauth.Error)(nil); errors.As(err, &e) {
				return exp, e.Status, err
			}
			return exp, 0, err
		}
		log.Info("subscribers must present a signed token", "key", opts.JWTKey)
	}
	if opts.SSL {
		if s.cert, err = loadCertificate(opts.CertFile, opts.KeyFile); err != nil {
			s.closeListeners()
			return nil, err
		}
		s.front = httpfront.New(s.hub, httpfront.Config{
			Handshake:        hcfg,
			HandshakeTimeout: opts.HandshakeTimeout,
			Lifetime:         opts.Lifetime,
			Heartbeat:        opts.Heartbeat,
			Retry:            opts.Retry,
			Drain:            opts.Drain,
			TLS:              s.cert.tlsConfig(),
			Authorize:        authorize,
			MaxStreams:       maxConns,
			MaxStreamsPerIP:  opts.MaxConnsPerIP,
			Logger:           log,
		})
		return s, s.newControl()
	}
	s.epoll, err = epoll.New(s.hub, epoll.Config{
		Handshake:        hcfg,
		Loops:            opts.Loops,
		HandshakeTimeout: opts.HandshakeTimeout,
		Lifetime:         opts.Lifetime,
		Heartbeat:        opts.Heartbeat,
		Retry:            opts.Retry,
		Drain:            opts.Drain,
		Coalesce:         opts.Coalesce,
		MaxConns:         maxConns,
		SendBuffer:       opts.SendBuffer,
		MaxConnsPerIP:    opts.MaxConnsPerIP,
		Authorize:        authorize,
		Reinit:           &s.reinit,
		Logger:           log,
	})
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.front = s.epoll
	return s, s.newControl()
}

// frontEnd serves the SSE port: the epoll loops, or net/http for TLS.
type frontEnd interface {
	Serve(ctx context.Context, ln net.Listener) error
	Counters() (all, streaming, maxSeen, delivered int64)
	Lagged() int64
	Refused() int64
	RefusedPerIP() int64
}

func (s *Server) newControl() error {
	opts := s.opts
	limits := publish.Limits{MaxData: opts.MaxMessage, MaxTokenLen: opts.MaxTokenLen, MaxTargets: opts.MaxTokens}
	s.pub = &pubapi.Handler{Publisher: s.hub, Policy: s.policy, Limits: limits,
		Rate: access.NewRateLimiter(opts.PubRate, max(int(opts.PubRate), 1)), Logger: s.log}
	s.control = &control.Handler{
		Policy:      s.policy,
		Limits:      limits,
		FIFOMode:    os.FileMode(opts.FIFOMode),
		Backend:     s,
		Logger:      s.log,
		Level:       s.level,
		Sep:         opts.Sep,
		MaxUnit:     opts.MaxMessage + opts.MaxTokenLen*2 + 2,
		IdleGap:     opts.IdleGap,
		MaxTokenLen: opts.MaxTokenLen,
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
		"sse", s.sseLn.Addr().String(), "path", s.opts.MURL, "control", addrString(s.ctlLn), "fifo", s.opts.FIFO, "admin", addrString(s.adminLn), "publish", addrString(s.pubLn))

	stopLog := context.AfterFunc(ctx, func() {
		s.log.Info("shutting down: ending every stream", "drain", s.opts.Drain)
	})
	defer stopLog()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	run := func(name string, fn func() error) {
		wg.Go(func() {
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		})
	}
	wg.Go(func() { s.hub.Run(ctx) })
	if s.cluster != nil {
		run("cluster", func() error { return s.cluster.Run(ctx) })
	}
	if s.ctlLn != nil {
		run("control port", func() error { return s.control.ServeTCP(ctx, s.ctlLn) })
	}
	if s.adminLn != nil {
		run("admin port", func() error { return s.serveHTTP(ctx, s.adminLn, s.adminHandler()) })
	}
	if s.pubLn != nil {
		run("publish API", func() error { return s.serveHTTP(ctx, s.pubLn, s.pub) })
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
	wg.Wait()
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
