// Command hasses is a Server-Sent Events notification server, a drop-in
// replacement for the C daemon of the same name. See the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"

	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/daemon"
	"github.com/hasses-go/hasses/internal/gcpace"
	"github.com/hasses-go/hasses/internal/server"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "publish":
			return runPublish(args[1:])
		case "history":
			return runHistory(args[1:])
		case "presence":
			return runPresence(args[1:])
		case "disconnect":
			return runDisconnect(args[1:])
		case "revoke":
			return runRevoke(args[1:])
		}
	}
	if slices.Contains(args, "-check") || slices.Contains(args, "--check") {
		return runCheck(args, os.Stdout, os.Stderr)
	}
	opts, err := config.Parse(args)
	switch {
	case errors.Is(err, config.ErrHelp):
		fmt.Print(config.Usage())
		return 0
	case errors.Is(err, config.ErrVersion):
		bi, _ := debug.ReadBuildInfo()
		fmt.Print(versionText(bi, buildDate))
		return 0
	case err != nil:
		// The error and where to look, not the whole help: it would push
		// the error off the screen.
		fmt.Fprintf(os.Stderr, "hasses: %v\nrun 'hasses -h' for the options\n", err)
		return 2
	}

	if !opts.NoDaemon && !daemon.IsChild() {
		isParent, err := daemon.Detach(opts.LogFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "hasses: %v\n", err)
			return 1
		}
		if isParent {
			return 0
		}
	}

	var out io.Writer = os.Stderr
	var logFile *daemon.LogWriter
	if daemon.IsChild() {
		if logFile, err = daemon.OpenDaemonLog(opts.LogFile); err != nil {
			daemon.Failed(err)
			return 1
		}
		defer logFile.Close()
		out = logFile
	}
	level := new(slog.LevelVar)
	level.Set(slogLevel(config.LogLevel(opts)))
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	fail := func(err error) int {
		log.Error(err.Error())
		daemon.Failed(err)
		return 1
	}
	srv, err := server.New(opts, log, level)
	if err != nil {
		return fail(err)
	}
	if os.Getenv("GOGC") == "" {
		pacer := &gcpace.Pacer{Percent: gcpace.DefaultPercent, Headroom: gcpace.Headroom()}
		pacer.Start()
		defer pacer.Stop()
		srv.PaceCollector(pacer)
	}
	if opts.User != "" {
		if logFile != nil {
			if err := logFile.Chown(opts.User); err != nil {
				return fail(err)
			}
		}
		if err := daemon.DropPrivileges(opts.User); err != nil {
			return fail(err)
		}
	}
	// As -user: the process that writes the pid file can remove it at exit.
	if opts.PidFile != "" {
		if err := daemon.WritePidFile(opts.PidFile); err != nil {
			return fail(err)
		}
		defer daemon.RemovePidFile(opts.PidFile)
	}
	// After the drop (the FIFO is created as -user), before Ready: a bad
	// path must reach the person who started the daemon.
	if err := srv.CheckFIFO(); err != nil {
		return fail(err)
	}
	daemon.Ready()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go reloadOnHangup(ctx, log, logFile, srv)
	if err := srv.Run(ctx); err != nil {
		log.Error("hasses failed", "err", err)
		return 1
	}
	return 0
}

// reloadOnHangup reopens the log file (log rotation) and reloads the TLS
// certificate on SIGHUP.
func reloadOnHangup(ctx context.Context, log *slog.Logger, lw *daemon.LogWriter, srv *server.Server) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.Reload(); err != nil {
				log.Error("SIGHUP: reloading the TLS certificate failed; keeping the old one", "err", err)
			}
			if lw == nil {
				log.Info("SIGHUP: reloaded")
				continue
			}
			if err := lw.Reopen(); err != nil {
				log.Error("SIGHUP: reopening the log file failed", "err", err)
				continue
			}
			log.Info("SIGHUP: log file reopened")
		}
	}
}

// slogLevel maps hasses' log levels (0 quiet, 1 normal, 2 debug).
func slogLevel(hassesLevel int) slog.Level {
	switch hassesLevel {
	case 0:
		return slog.LevelWarn
	case 2:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
