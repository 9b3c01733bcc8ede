package itest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// runToExit runs hasses with args and returns its exit code and output; it
// fails the test if hasses is still running after 10 s.
func runToExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hasses %v still running after 10 s:\n%s", args, out.String())
		return 0, ""
	}
}

// A DER public key given to -jwt-key used to become an HS256 secret, so
// anyone with the public key could sign a token for "*". Every file that is
// not one PEM public key now stops hasses at start, with the reason.
func TestPubJWTKeyFileRefusedAtStart(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	dir := t.TempDir()
	for name, c := range map[string]struct {
		content []byte
		option  string
		want    string
	}{
		"DER":           {der, "-jwt-key", "DER"},
		"OpenSSH":       {[]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n"), "-jwt-key", "OpenSSH"},
		"indented":      {[]byte("  " + strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "\n-", "\n  -")), "-jwt-key", "indented"},
		"private":       {pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), "-jwt-key", "private key"},
		"secret as key": {[]byte(jwtSecret), "-jwt-key", "-jwt-secret-file"},
		"key as secret": {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "-jwt-secret-file", "not a secret"},
		"short secret":  {[]byte("0123456789"), "-jwt-secret-file", "at least 32 bytes"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(path, c.content, 0o600)
		code, out := runToExit(t, "-nodaemon", "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", c.option+"="+path)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output %q, want it to say %q", name, code, out, c.want)
		}
	}
}

// An ES256 key with every optional check on: the claims are enforced over
// the wire, the Bearer scheme is read in any case, and a namespace grant
// ("user42.*") does not reach "user420".
func TestPubJWTPublicKeyAndClaims(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "jwt.pem")
	os.WriteFile(keyFile, pemBytes, 0o600)
	d := start(t, "-jwt-key="+keyFile, "-jwt-require-exp", "-jwt-audience=hasses", "-jwt-issuer=https://app.example")

	exp := time.Now().Add(time.Hour).Unix()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"subscribe": []string{"room1", "user42.*"}, "exp": exp, "aud": "hasses", "iss": "https://app.example"}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	good := token(t, jwt.SigningMethodES256, key, claims(nil))
	for name, c := range map[string]struct {
		query, header string
		want          int
	}{
		"good":                      {"?subscribe=room1-user42.inbox&access_token=" + good, "", 200},
		"bearer lower":              {"?subscribe=room1", "Authorization: bearer " + good, 200},
		"bearer upper":              {"?subscribe=room1", "Authorization: BEARER " + good, 200},
		"namespace root":            {"?subscribe=user42.&access_token=" + good, "", 200},
		"user420":                   {"?subscribe=user420&access_token=" + good, "", 403},
		"user42":                    {"?subscribe=user42&access_token=" + good, "", 403},
		"no exp":                    {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodES256, key, claims(jwt.MapClaims{"exp": nil})), "", 401},
		"no aud":                    {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodES256, key, claims(jwt.MapClaims{"aud": nil})), "", 401},
		"wrong aud":                 {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodES256, key, claims(jwt.MapClaims{"aud": "other"})), "", 401},
		"wrong iss":                 {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodES256, key, claims(jwt.MapClaims{"iss": "https://evil.example"})), "", 401},
		"HS256 with the public key": {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodHS256, pemBytes, claims(nil)), "", 401},
		"HS256 with the DER key":    {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodHS256, der, claims(nil)), "", 401},
	} {
		var s *stream
		if c.header != "" {
			s = d.subscribe(c.query, c.header)
		} else {
			s = d.subscribe(c.query)
		}
		if s.Status != c.want {
			t.Errorf("%s: %d, want %d", name, s.Status, c.want)
		}
	}
	// The granted stream receives what is published to its namespace.
	s := d.subscribe("?subscribe=user42.inbox&access_token=" + good)
	d.send("user42.inbox=hello")
	s.expect("hello")
}
