package server

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certificate is a TLS key pair that SIGHUP can reload without a restart.
type certificate struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	return c, c.reload()
}

func (c *certificate) reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	c.current.Store(&pair)
	return nil
}

// tlsConfig serves the current certificate; TLS 1.2 is the minimum, as in
// hasses. net/http adds HTTP/2 through ALPN, so a browser's streams share
// one connection.
func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}
