package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/cluster"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminMaxBody bounds a request body on the admin listener: only the login
// form has one.
const adminMaxBody = 4 << 10

// adminHandler serves what operators look at: the live dashboard at /,
// Prometheus metrics, and with -pprof the Go profiler. All of it is guarded
// as the publish API is (allow-list, secret), because it shows who is
// connected and what flows; only /healthz is open, for load balancers, and
// says nothing but "ok".
func (s *Server) adminHandler() http.Handler {
	protected := http.NewServeMux()
	protected.Handle("GET /metrics", promhttp.HandlerFor(s.registry(), promhttp.HandlerOpts{}))
	if s.opts.Pprof {
		protected.HandleFunc("/debug/pprof/", pprof.Index)
		protected.HandleFunc("/debug/pprof/cmdline", cmdline)
		protected.HandleFunc("/debug/pprof/profile", pprof.Profile)
		protected.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		protected.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	protected.Handle("/", s.dash.Handler())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	// Ready: on a cluster node, the bus to Redis works (the node then
	// delivers what is published anywhere). Open like /healthz, for load
	// balancers; streams on a node that is not ready stay open and resume.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if s.cluster != nil && !s.cluster.Ready() {
			http.Error(w, "not ready: cluster bus down (Redis unreachable)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("POST /login", s.guard.login)
	mux.HandleFunc("POST /logout", s.guard.logout)
	// The login form needs its style before anyone logs in; it is public code.
	mux.Handle("GET /dashboard/app.css", s.dash.Handler())
	mux.Handle("/", s.guard.protect(protected))
	return mux
}

// cmdline is pprof's, with the secret blanked: a profile shared in a bug
// report must not carry it.
func cmdline(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redactArgs(os.Args), "\x00"))
}

// redactArgs blanks the value of -ctl-secret (as -ctl-secret=X, --ctl-secret=X
// or -ctl-secret X) and the password in -cluster's URL.
func redactArgs(args []string) []string {
	redact := map[string]func(string) string{
		"ctl-secret": func(string) string { return "REDACTED" },
		"cluster":    cluster.Redact,
	}
	out := make([]string, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		out[i] = a
		r := redact[name]
		if r == nil || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasValue {
			out[i] = a[:len(a)-len(value)] + r(value)
		} else if i+1 < len(args) {
			i++
			out[i] = r(args[i])
		}
	}
	return out
}

// serveHTTP serves an auxiliary HTTP listener (admin, publish API) until
// ctx is done. Every connection and request is bounded: the listener's
// caps, a deadline for the head and another for the body, the head's size
// and, if maxBody > 0, the body's.
func (s *Server) serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, maxBody int64) error {
	ln = access.LimitListener(ln, s.httpMaxConns, min(access.HTTPMaxConnsPerAddr, s.httpMaxConns), func(addr netip.Addr, status int) {
		s.refusals.Refused(refusal.HTTPCap, status, addr.String(), nil)
	})
	srv := &http.Server{
		Handler:           access.BoundRequests(h, maxBody),
		ReadHeaderTimeout: access.HTTPReadTimeout,
		IdleTimeout:       access.HTTPIdleTimeout,
		MaxHeaderBytes:    access.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
