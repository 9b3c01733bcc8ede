// Package subauth authorizes subscribers with signed tokens (JWT). It is
// opt-in: without a key every subscriber is served, as in hasses.
//
// A token grants a list of tokens or "prefix*" patterns (claim "subscribe")
// and optionally the client id the stream must use (claim "client_id"); its
// "exp" ends the stream. The key is a PEM public key (-jwt-key) or an HMAC
// secret (-jwt-secret-file), never one taken for the other. EventSource cannot set headers, so the token is
// taken from the Authorization header, the access_token query parameter or
// the hasses_token cookie.
package subauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/internal/handshake"
)

// CookieName is the cookie a page may carry the token in.
const CookieName = "hasses_token"

// Claims are the claims hasses reads.
type Claims struct {
	Subscribe []string `json:"subscribe"`
	ClientID  string   `json:"client_id,omitempty"`
	jwt.RegisteredClaims
}

// Options choose the key and the claims every token must carry. Exactly one
// of KeyFile and SecretFile is set.
type Options struct {
	KeyFile    string // -jwt-key: a PEM public key or certificate
	SecretFile string // -jwt-secret-file: an HMAC secret
	RequireExp bool   // -jwt-require-exp: refuse tokens without "exp"
	Audience   string // -jwt-audience: "aud" must contain it
	Issuer     string // -jwt-issuer: "iss" must equal it
}

// Verifier checks subscriber tokens against one key.
type Verifier struct {
	key     any
	methods []string
	opts    []jwt.ParserOption
	revoked *Revocations
}

// MinSecret is the shortest HMAC secret accepted: the output size of
// SHA-256 (RFC 7518, 3.2).
const MinSecret = 32

// New loads the key of o. The algorithms are fixed by the key, so "alg:
// none", or an HMAC token signed with a public key, never verifies; and a
// key file is never taken for an HMAC secret, nor a public key for one.
func New(o Options) (*Verifier, error) {
	var v Verifier
	switch {
	case o.KeyFile != "" && o.SecretFile != "":
		return nil, errors.New("-jwt-key and -jwt-secret-file exclude each other: give one")
	case o.KeyFile != "":
		raw, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-jwt-key: %w", err)
		}
		if v.key, v.methods, err = ParsePublicKey(raw); err != nil {
			return nil, fmt.Errorf("-jwt-key %s: %w", o.KeyFile, err)
		}
	case o.SecretFile != "":
		raw, err := os.ReadFile(o.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("-jwt-secret-file: %w", err)
		}
		if v.key, err = ParseSecret(raw); err != nil {
			return nil, fmt.Errorf("-jwt-secret-file %s: %w", o.SecretFile, err)
		}
		v.methods = []string{"HS256", "HS384", "HS512"}
	default:
		return nil, errors.New("no key: give -jwt-key or -jwt-secret-file")
	}
	v.opts = []jwt.ParserOption{jwt.WithValidMethods(v.methods)}
	if o.RequireExp {
		v.opts = append(v.opts, jwt.WithExpirationRequired())
	}
	if o.Audience != "" {
		v.opts = append(v.opts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		v.opts = append(v.opts, jwt.WithIssuer(o.Issuer))
	}
	return &v, nil
}

// CheckRevoked makes Authorize refuse the tokens l revokes. Call it
// before serving.
func (v *Verifier) CheckRevoked(l *Revocations) { v.revoked = l }

// Methods returns the signing algorithms the key verifies.
func (v *Verifier) Methods() []string { return v.methods }

// ParsePublicKey reads a file holding exactly one PEM block, surrounded by
// nothing but blank space: "PUBLIC KEY" (RSA, ECDSA or Ed25519), "RSA
// PUBLIC KEY" or "CERTIFICATE". It returns the key and the algorithms it
// verifies. Everything else (DER, OpenSSH, an indented or damaged block, a
// private key, text around the block) is an error that says what it saw.
func ParsePublicKey(raw []byte) (key any, methods []string, err error) {
	trimmed := bytes.TrimSpace(raw)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, nil, errors.New(notPEM(raw))
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, nil, errors.New("a damaged or indented PEM block: the -----BEGIN and -----END lines must start at the left margin")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, nil, errors.New("more than one PEM block, or text after it: the file must hold one public key")
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, nil, fmt.Errorf("a private key (%s): give the public key only (openssl pkey -in KEY -pubout)", block.Type)
		}
		return nil, nil, fmt.Errorf("a PEM block of type %q is not a public key: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", block.Type, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, fmt.Errorf("an RSA key of %d bits: at least 2048 are needed", k.N.BitLen())
		}
		return k, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		// Each curve has its one algorithm (RFC 7518, 3.4).
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, fmt.Errorf("an ECDSA key on %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported public key type %T", pub)
}

// notPEM names what a file that is not a PEM block looks like.
func notPEM(raw []byte) string {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return "the file is empty: want a PEM public key"
	case bytes.Contains(t, []byte("-----BEGIN ")):
		return "a PEM block with text or indentation before it: the file must start with -----BEGIN at the left margin"
	case looksOpenSSH(t):
		return "an OpenSSH key: convert it to PEM (ssh-keygen -e -m PKCS8 -f FILE)"
	case isDERKey(raw):
		return "a DER (binary) key or certificate: convert it to PEM (openssl pkey -pubin -inform DER -in FILE)"
	case isBase64DERKey(t):
		return "a base64 key without its PEM lines: add -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY----- around it"
	case isJWK(t):
		return "a JSON Web Key: JWKs are not supported, give a PEM public key"
	}
	return "not a PEM public key; an HMAC secret is given with -jwt-secret-file, never -jwt-key"
}

// ParseSecret reads an HMAC secret: the file's content without surrounding
// blank space, at least MinSecret bytes. A file that looks like a key or a
// certificate is refused: public material used as an HMAC secret lets
// anyone who has it sign tokens.
func ParseSecret(raw []byte) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	switch {
	case bytes.Contains(t, []byte("-----BEGIN")) || looksOpenSSH(t) || isDERKey(raw) || isDERKey(t) || isBase64DERKey(t):
		return nil, errors.New("this is a key or a certificate, not a secret: give public keys with -jwt-key")
	case isJWK(t):
		return nil, errors.New("this is a JSON Web Key, not a secret; JWKs are not supported: give a PEM public key with -jwt-key")
	case len(t) < MinSecret:
		return nil, fmt.Errorf("an HMAC secret must have at least %d bytes, this one has %d (e.g. openssl rand -base64 48)", MinSecret, len(t))
	}
	return t, nil
}

func looksOpenSSH(t []byte) bool {
	for _, p := range []string{"ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-", "---- BEGIN SSH2"} {
		if bytes.HasPrefix(t, []byte(p)) {
			return true
		}
	}
	return false
}

func isJWK(t []byte) bool {
	return bytes.HasPrefix(t, []byte("{")) && bytes.Contains(t, []byte(`"kty"`))
}

// isBase64DERKey reports a DER key or certificate in base64 without PEM
// lines, the way some tools print a public key.
func isBase64DERKey(t []byte) bool {
	compact := bytes.Join(bytes.Fields(t), nil)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(string(compact)); err == nil && isDERKey(der) {
			return true
		}
	}
	return false
}

// isDERKey reports DER that parses as a public key, a certificate or a
// private key.
func isDERKey(b []byte) bool {
	if len(b) == 0 || b[0] != 0x30 { // an ASN.1 SEQUENCE
		return false
	}
	if _, err := x509.ParsePKIXPublicKey(b); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PublicKey(b); err == nil {
		return true
	}
	if _, err := x509.ParseCertificate(b); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS8PrivateKey(b); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(b); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(b)
	return err == nil
}

// Error is a refusal with its HTTP status (401 or 403).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Authorize checks req's token and its grants. It may set req.ID from the
// token's client_id, and sets req.User to its "sub". It returns when the token expires (zero: never).
func (v *Verifier) Authorize(req *handshake.Request, now time.Time) (expires time.Time, err error) {
	raw := tokenOf(req)
	if raw == "" {
		return time.Time{}, &Error{401, "a token is required: Authorization: Bearer, access_token= or the " + CookieName + " cookie"}
	}
	var c Claims
	opts := append(v.opts[:len(v.opts):len(v.opts)], jwt.WithTimeFunc(func() time.Time { return now }))
	_, err = jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return v.key, nil }, opts...)
	if err != nil {
		return time.Time{}, &Error{401, "invalid token: " + err.Error()}
	}
	var iat time.Time
	if c.IssuedAt != nil {
		iat = c.IssuedAt.Time
	}
	if v.revoked.Revoked(c.Subject, iat, now) {
		return time.Time{}, &Error{401, "token revoked: get a new one"}
	}
	for _, tok := range req.Tokens {
		if !granted(c.Subscribe, tok) {
			return time.Time{}, &Error{403, "token does not grant " + tok}
		}
	}
	if c.ClientID != "" {
		if req.ID != "" && req.ID != c.ClientID {
			return time.Time{}, &Error{403, "id does not match the token's client_id"}
		}
		req.ID = c.ClientID
	}
	req.User = c.Subject
	if c.ExpiresAt != nil {
		expires = c.ExpiresAt.Time
	}
	return expires, nil
}

// granted: "*" grants every token, and is needed to subscribe to "*";
// "p*" grants every token that starts with p (so "user42*" also grants
// "user420": end p with a separator, "user42.*", to grant a namespace); any
// other entry grants exactly itself. Tokens are compared as sent in the URL,
// not percent-decoded, as the hub compares them.
func granted(grants []string, tok string) bool {
	for _, g := range grants {
		switch {
		case g == "*":
			return true
		case tok == "*":
		case strings.HasSuffix(g, "*") && strings.HasPrefix(tok, g[:len(g)-1]):
			return true
		case g == tok:
			return true
		}
	}
	return false
}

func tokenOf(req *handshake.Request) string {
	// The scheme is case-insensitive (RFC 9110, 11.1).
	if scheme, cred, ok := strings.Cut(strings.TrimSpace(req.Authorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	if req.AccessToken != "" {
		return req.AccessToken
	}
	if req.Cookie != "" {
		if cookies, err := http.ParseCookie(req.Cookie); err == nil {
			for _, c := range cookies {
				if c.Name == CookieName {
					return c.Value
				}
			}
		}
	}
	return ""
}
