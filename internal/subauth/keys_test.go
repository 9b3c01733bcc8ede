package subauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/internal/handshake"
)

var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkixDER(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writeFile(t *testing.T, content []byte) string {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func selfSigned(t *testing.T, priv *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jwt"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// The vulnerability: a DER public key given to -jwt-key was used as an
// HS256 secret, so anyone holding the public key could sign a token for
// "*". Now it is an error at start, and so is every other file that is not
// one PEM public key.
func TestKeyFileIsNeverASecret(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER := pkixDER(t, &ec.PublicKey)
	ecPEM := pemOf("PUBLIC KEY", ecDER)
	privDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for name, c := range map[string]struct {
		content string
		want    string // in the error
	}{
		"DER public key":     {string(ecDER), "DER"},
		"DER certificate":    {string(selfSigned(t, ec)), "DER"},
		"DER private key":    {string(privDER), "DER"},
		"OpenSSH public key": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n", "OpenSSH"},
		"OpenSSH ECDSA key":  {"ecdsa-sha2-nistp256 AAAAE2VjZHNh me@host\n", "OpenSSH"},
		"OpenSSH private key": {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n",
			"private key"},
		"indented PEM":        {"  " + strings.ReplaceAll(string(ecPEM), "\n-----END", "\n  -----END"), "indented"},
		"text before the PEM": {"Bag Attributes\n" + string(ecPEM), "text or indentation before"},
		"two blocks":          {string(ecPEM) + string(ecPEM), "more than one PEM block"},
		"text after the PEM":  {string(ecPEM) + "trailing\n", "text after"},
		"private key PEM":     {string(pemOf("PRIVATE KEY", privDER)), "private key"},
		"EC private key PEM":  {string(pemOf("EC PRIVATE KEY", privDER)), "private key"},
		"other PEM block":     {string(pemOf("X509 CRL", []byte{1, 2, 3})), "not a public key"},
		"damaged PEM":         {"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "damaged"},
		"garbage in PEM":      {string(pemOf("PUBLIC KEY", []byte("not DER"))), "PUBLIC KEY"},
		"an HMAC secret":      {secret + "\n", "-jwt-secret-file"},
		"base64 DER":          {base64.StdEncoding.EncodeToString(ecDER) + "\n", "base64 key without its PEM lines"},
		"JWK":                 {`{"kty":"EC","crv":"P-256","x":"f83O","y":"x_FE"}`, "JSON Web Key"},
		"empty":               {"", "empty"},
		"small RSA key":       {string(pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&smallRSA(t).PublicKey))), "1024 bits"},
	} {
		v, err := New(Options{KeyFile: writeFile(t, []byte(c.content))})
		if err == nil {
			t.Errorf("%s: accepted as %v", name, v.Methods())
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", name, err, c.want)
		}
	}
}

func smallRSA(t *testing.T) *rsa.PrivateKey {
	// A 1024-bit key: modulus only, no need to be a real key pair.
	n := new(big.Int).Lsh(big.NewInt(1), 1023)
	return &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n.Add(n, big.NewInt(1)), E: 65537}}
}

// -jwt-secret-file refuses public material: a public key used as a secret
// lets anyone sign.
func TestSecretFileRefusesKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der := pkixDER(t, &ec.PublicKey)
	for name, content := range map[string][]byte{
		"PEM public key": pemOf("PUBLIC KEY", der),
		"DER public key": der,
		"DER cert":       selfSigned(t, ec),
		"OpenSSH":        []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host"),
		"base64 DER":     []byte(base64.StdEncoding.EncodeToString(der)),
		"base64url DER":  []byte(base64.RawURLEncoding.EncodeToString(der)),
		"JWK":            []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`),
		"short":          []byte("0123456789abcdef0123456789abcde\n"), // 31 bytes
	} {
		if _, err := New(Options{SecretFile: writeFile(t, content)}); err == nil {
			t.Errorf("%s: accepted as an HMAC secret", name)
		}
	}
	if _, err := New(Options{KeyFile: writeFile(t, pemOf("PUBLIC KEY", der)), SecretFile: writeFile(t, []byte(secret))}); err == nil {
		t.Error("both -jwt-key and -jwt-secret-file accepted")
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no key accepted")
	}
}

// Every supported key verifies its own algorithm and nothing else.
func TestPublicKeys(t *testing.T) {
	rk := rsaKey()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	claims := Claims{Subscribe: []string{"a"}}
	for name, c := range map[string]struct {
		file    []byte
		good    string
		refused []string
	}{
		"RSA PKIX": {pemOf("PUBLIC KEY", pkixDER(t, &rk.PublicKey)), sign(t, jwt.SigningMethodRS256, rk, claims),
			[]string{sign(t, jwt.SigningMethodES256, p256, claims), sign(t, jwt.SigningMethodHS256, pemOf("PUBLIC KEY", pkixDER(t, &rk.PublicKey)), claims)}},
		"RSA PKCS1":         {pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rk.PublicKey)), sign(t, jwt.SigningMethodPS512, rk, claims), nil},
		"P-256":             {pemOf("PUBLIC KEY", pkixDER(t, &p256.PublicKey)), sign(t, jwt.SigningMethodES256, p256, claims), []string{sign(t, jwt.SigningMethodES384, p384, claims)}},
		"P-384":             {pemOf("PUBLIC KEY", pkixDER(t, &p384.PublicKey)), sign(t, jwt.SigningMethodES384, p384, claims), []string{sign(t, jwt.SigningMethodES256, p256, claims)}},
		"P-256 certificate": {append([]byte("\n"), pemOf("CERTIFICATE", selfSigned(t, p256))...), sign(t, jwt.SigningMethodES256, p256, claims), nil},
		"Ed25519": {pemOf("PUBLIC KEY", pkixDER(t, edPub)), sign(t, jwt.SigningMethodEdDSA, edPriv, claims),
			[]string{sign(t, jwt.SigningMethodHS256, pemOf("PUBLIC KEY", pkixDER(t, edPub)), claims), sign(t, jwt.SigningMethodHS256, []byte(edPub), claims)}},
	} {
		v, err := New(Options{KeyFile: writeFile(t, c.file)})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: c.good}, time.Now()); err != nil {
			t.Errorf("%s: good token refused: %v", name, err)
		}
		for i, bad := range c.refused {
			if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: bad}, time.Now()); status(err) != 401 {
				t.Errorf("%s: wrong token %d: %v", name, i, err)
			}
		}
	}
}

func TestRequiredClaims(t *testing.T) {
	path := writeFile(t, []byte(secret))
	v, err := New(Options{SecretFile: path, RequireExp: true, Audience: "hasses", Issuer: "https://app.example"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	exp := jwt.NewNumericDate(now.Add(time.Hour))
	for name, c := range map[string]struct {
		rc   jwt.RegisteredClaims
		want int
	}{
		"all":           {jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"other", "hasses"}, Issuer: "https://app.example"}, 0},
		"no exp":        {jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"hasses"}, Issuer: "https://app.example"}, 401},
		"no aud":        {jwt.RegisteredClaims{ExpiresAt: exp, Issuer: "https://app.example"}, 401},
		"wrong aud":     {jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"hasses2"}, Issuer: "https://app.example"}, 401},
		"no iss":        {jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"hasses"}}, 401},
		"wrong iss":     {jwt.RegisteredClaims{ExpiresAt: exp, Audience: jwt.ClaimStrings{"hasses"}, Issuer: "https://evil.example"}, 401},
		"not yet valid": {jwt.RegisteredClaims{ExpiresAt: exp, NotBefore: jwt.NewNumericDate(now.Add(time.Minute)), Audience: jwt.ClaimStrings{"hasses"}, Issuer: "https://app.example"}, 401},
	} {
		tok := sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"a"}, RegisteredClaims: c.rc})
		if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: tok}, now); status(err) != c.want {
			t.Errorf("%s: %v, want %d", name, err, c.want)
		}
	}
	// Without the options, none of these claims is needed.
	plain, _ := New(Options{SecretFile: path})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"a"}})
	if _, err := plain.Authorize(&handshake.Request{Tokens: []string{"a"}, AccessToken: tok}, now); err != nil {
		t.Errorf("no options: %v", err)
	}
}

func TestBearerAnyCase(t *testing.T) {
	v := hmacVerifier(t)
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), Claims{Subscribe: []string{"a"}})
	for _, h := range []string{"Bearer ", "bearer ", "BEARER ", "bEaReR  ", " Bearer "} {
		if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, Authorization: h + tok}, time.Now()); err != nil {
			t.Errorf("%q: %v", h, err)
		}
	}
	// Another scheme is not a token: the query parameter is used instead.
	if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, Authorization: "Basic " + tok}, time.Now()); status(err) != 401 {
		t.Errorf("Basic: %v", err)
	}
	if _, err := v.Authorize(&handshake.Request{Tokens: []string{"a"}, Authorization: "Basic eA==", AccessToken: tok}, time.Now()); err != nil {
		t.Errorf("Basic with access_token: %v", err)
	}
}

// What each grant form covers, exactly as docs/security.md says.
func TestGrants(t *testing.T) {
	for _, c := range []struct {
		grant, tok string
		want       bool
	}{
		{"room1", "room1", true},
		{"room1", "room10", false},
		{"room1", "room", false},
		{"user42*", "user42", true},
		{"user42*", "user42x", true},
		{"user42*", "user420", true}, // the plain prefix over-grants: documented
		{"user42.*", "user42.inbox", true},
		{"user42.*", "user42.", true},
		{"user42.*", "user42", false},
		{"user42.*", "user420", false},
		{"user42.*", "user420.inbox", false},
		{"user42:*", "user42:a:b", true},
		{"user42:*", "user420:a", false},
		{"user42/*", "user42/x", true},
		{"user42/*", "user42%2Fx", false}, // compared as sent: percent-encoded is another token
		{"user42*", "*", false},
		{"*", "*", true},
		{"*", "anything", true},
	} {
		if got := granted([]string{c.grant}, c.tok); got != c.want {
			t.Errorf("grant %q, token %q: %v, want %v", c.grant, c.tok, got, c.want)
		}
	}
}

func FuzzKeyFiles(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	f.Add(pemOf("PUBLIC KEY", der))
	f.Add(der)
	f.Add(pemOf("RSA PUBLIC KEY", []byte{0x30, 0}))
	f.Add(pemOf("CERTIFICATE", []byte{0x30, 0x82}))
	f.Add([]byte("  -----BEGIN PUBLIC KEY-----\nAAAA\n  -----END PUBLIC KEY-----\n"))
	f.Add([]byte("ssh-ed25519 AAAA me"))
	f.Add([]byte(secret))
	f.Add([]byte(base64.StdEncoding.EncodeToString(der)))
	f.Add([]byte(`{"kty":"OKP"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		key, methods, err := ParsePublicKey(raw)
		if err == nil {
			if key == nil || len(methods) == 0 {
				t.Fatalf("accepted without a key: %v %v", key, methods)
			}
			for _, m := range methods {
				if strings.HasPrefix(m, "HS") || m == "none" {
					t.Fatalf("a public key file verifies %s", m)
				}
			}
		}
		sec, err := ParseSecret(raw)
		if err == nil {
			if len(sec) < MinSecret || strings.Contains(string(sec), "-----BEGIN") || isDERKey(sec) || isBase64DERKey(sec) {
				t.Fatalf("accepted %q as a secret", sec)
			}
			if _, _, err := ParsePublicKey(raw); err == nil {
				t.Fatalf("one file is both a public key and a secret: %q", raw)
			}
		}
	})
}
