package subauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/internal/handshake"
)

const secret = "0123456789abcdef0123456789abcdef-secret"

func hmacVerifier(t *testing.T) *Verifier {
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, []byte(secret+"\n"), 0o600)
	v, err := New(Options{SecretFile: path})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims Claims) string {
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestHMAC(t *testing.T) {
	v := hmacVerifier(t)
	now := time.Now()
	exp := jwt.NewNumericDate(now.Add(time.Hour))
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"room1", "user42*"}, ClientID: "c1",
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp}})
	req := &handshake.Request{Tokens: []string{"room1", "user42-x"}, Authorization: "Bearer " + good}
	req.Tokens = []string{"room1", "user42x"}
	expires, err := v.Authorize(req, now)
	if err != nil || !expires.Equal(exp.Time) || req.ID != "c1" {
		t.Fatalf("good token: %v %v id %q", expires, err, req.ID)
	}
	for name, c := range map[string]struct {
		req  handshake.Request
		want int
	}{
		"missing":          {handshake.Request{Tokens: []string{"room1"}}, 401},
		"not granted":      {handshake.Request{Tokens: []string{"room2"}, AccessToken: good}, 403},
		"star not granted": {handshake.Request{Tokens: []string{"*"}, AccessToken: good}, 403},
		"wrong client id":  {handshake.Request{Tokens: []string{"room1"}, ID: "c2", AccessToken: good}, 403},
		"forged": {handshake.Request{Tokens: []string{"room1"},
			AccessToken: sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-16"), Claims{Subscribe: []string{"*"}})}, 401},
		"expired": {handshake.Request{Tokens: []string{"room1"},
			AccessToken: sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"*"},
				RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}})}, 401},
		"alg none": {handshake.Request{Tokens: []string{"room1"},
			AccessToken: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, Claims{Subscribe: []string{"*"}})}, 401},
		"garbage": {handshake.Request{Tokens: []string{"room1"}, Authorization: "Bearer not.a.jwt"}, 401},
	} {
		if _, err := v.Authorize(&c.req, now); status(err) != c.want {
			t.Errorf("%s: %v, want %d", name, err, c.want)
		}
	}
	// From the cookie.
	star := sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"*"}})
	if _, err := v.Authorize(&handshake.Request{Tokens: []string{"*"}, Cookie: "a=b; hasses_token=" + star}, now); err != nil {
		t.Errorf("cookie: %v", err)
	}
}

func TestECDSAAndAlgorithmConfusion(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(path, pemBytes, 0o600)
	v, err := New(Options{KeyFile: path})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodES256, key, Claims{Subscribe: []string{"a"}})
	if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: good}, time.Now()); err != nil {
		t.Fatalf("ES256: %v", err)
	}
	// An HS256 token "signed" with the public key's bytes must not pass.
	confused := sign(t, jwt.SigningMethodHS256, pemBytes, Claims{Subscribe: []string{"*"}})
	if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: confused}, time.Now()); status(err) != 401 {
		t.Errorf("HS256 with the public key: %v", err)
	}
}

func TestShortSecretRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, []byte("short"), 0o600)
	if _, err := New(Options{SecretFile: path}); err == nil {
		t.Error("a 5-byte HMAC secret was accepted")
	}
}
