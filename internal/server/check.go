package server

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/cluster"
	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/subauth"
)

// Check loads what opts names, as New would, without binding a port or
// starting anything (hasses -check): the TLS key pair, the subscriber token
// key, the publisher networks, the trusted proxies, the cluster URL, the
// user, the directories of the FIFO, log and pid files. It returns every
// problem found.
func Check(opts *config.Options) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if opts.SSL && opts.CertFile != "" && opts.KeyFile != "" {
		_, err := loadCertificate(opts.CertFile, opts.KeyFile)
		add(err)
	}
	if (opts.JWTKey != "") != (opts.JWTSecretFile != "") {
		_, err := subauth.New(subauth.Options{KeyFile: opts.JWTKey, SecretFile: opts.JWTSecretFile,
			RequireExp: opts.JWTRequireExp, Audience: opts.JWTAudience, Issuer: opts.JWTIssuer})
		add(err)
	}
	if opts.CtlAllow != "" {
		_, err := access.ParseAllow(opts.CtlAllow)
		add(wrap("-ctl-allow", err))
	}
	_, err := access.ParseProxies(opts.TrustedProxies)
	add(wrap("-trusted-proxies", err))
	if opts.Cluster != "" {
		add(cluster.CheckURL(opts.Cluster))
	}
	if opts.Webhook != "" && opts.WebhookSecretFile != "" {
		_, err := newWebhook(opts, nil, "")
		add(wrap("-webhook-secret-file", err))
	}
	if opts.User != "" {
		if _, err := user.Lookup(opts.User); err != nil {
			add(fmt.Errorf("-user: %w", err))
		}
	}
	logFile := opts.LogFile
	if opts.NoDaemon {
		logFile = "" // not used
	}
	for _, f := range []struct{ opt, path string }{{"-fifo", opts.FIFO}, {"-pidfile", opts.PidFile}, {"-l", logFile}} {
		opt, path := f.opt, f.path
		if path == "" {
			continue
		}
		if fi, err := os.Stat(filepath.Dir(path)); err != nil {
			add(fmt.Errorf("%s=%s: %w", opt, path, err))
		} else if !fi.IsDir() {
			add(fmt.Errorf("%s=%s: %s is not a directory", opt, path, filepath.Dir(path)))
		}
	}
	return errs
}

func wrap(opt string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", opt, err)
}
