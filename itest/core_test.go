package itest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// An event published the instant the response head arrives is delivered,
// and so is the next one: a stream never hangs after its head (the TLS
// front end once lost its first wake-up this way and stayed stuck).
func TestEventRightAfterHead(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		for i := range 30 {
			s := d.subscribe("?subscribe=early")
			d.send("early=now")
			s.expect("now")
			d.send("early=next")
			s.expect("next")
			s.c.Close()
			if t.Failed() {
				t.Fatalf("iteration %d", i)
			}
		}
		waitFor(t, "every stream closed", func() bool {
			return d.command("tcpnumberofclients") == `{"numberofclients": 0}`
		})
	})
}

// esKey writes an ES256 public key for -jwt-key and returns the private key.
func esKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// A stream ends at its token's expiry to the millisecond, not at the next
// once-a-second sweep.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		pub, key := esKey(t)
		d := start(t, "-jwt-key="+pub)
		for range 2 {
			exp := time.Unix(time.Now().Add(1500*time.Millisecond).Unix()+1, 0) // JWT exp is in whole seconds
			tok := token(t, jwt.SigningMethodES256, key, jwt.MapClaims{"subscribe": []string{"t"}, "exp": exp.Unix()})
			s := d.subscribe("?subscribe=t&access_token=" + tok)
			if s.Status != 200 {
				t.Fatalf("status %d", s.Status)
			}
			s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				if _, err := s.chunk(); err != nil {
					if err != io.EOF {
						t.Fatalf("expiring stream: %v, want a clean end", err)
					}
					break
				}
			}
			// On time, not at the next once-a-second sweep (up to 1 s late);
			// 250 ms leaves room for a loaded machine under -race (it
			// measured up to 130 ms at load average 20, 1-5 ms when quiet).
			if late := time.Since(exp); late < -5*time.Millisecond || late > 250*time.Millisecond {
				t.Errorf("stream ended %v after its token's expiry, want within 250 ms", late)
			}
		}
	})
}

// Over TLS, HTTP/2 header lists get the plain port's 8 KiB head limit.
func TestTLSHeadLimit(t *testing.T) {
	d := startTLS(t)
	s := d.raw("GET /sse?subscribe=t HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n")
	if s.Status != 431 {
		t.Errorf("HTTP/1.1 over TLS, 9 KB head: %d, want 431", s.Status)
	}
}
