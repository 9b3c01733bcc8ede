// Package subauth authorizes subscribers with signed tokens (JWT). It is
// opt-in: without a key every subscriber is served, as in hasses.
//
// A token grants a list of tokens or "prefix*" patterns (claim "subscribe")
// and optionally the client id the stream must use (claim "client_id"); its
// "exp" ends the stream. EventSource cannot set headers, so the token is
// taken from the Authorization header, the access_token query parameter or
// the hasses_token cookie.
package subauth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
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

// Verifier checks subscriber tokens against one key.
type Verifier struct {
	key     any
	methods []string
}

// Load reads a key file: a PEM public key or certificate (RSA: RS256/384/512,
// ECDSA: ES256/384/512), or anything else as an HMAC secret (HS256/384/512).
// The algorithms are fixed by the key, so "alg: none" or an HMAC token
// signed with a public key never verifies.
func Load(path string) (*Verifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		secret := []byte(strings.TrimSpace(string(raw)))
		if len(secret) < 16 {
			return nil, errors.New("jwt key: an HMAC secret must have at least 16 bytes")
		}
		return &Verifier{key: secret, methods: []string{"HS256", "HS384", "HS512"}}, nil
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwt key: %w", err)
		}
		pub = cert.PublicKey
	case "RSA PUBLIC KEY":
		if pub, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("jwt key: %w", err)
		}
	default:
		if pub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("jwt key: %s: %w", block.Type, err)
		}
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return &Verifier{key: k, methods: []string{"RS256", "RS384", "RS512"}}, nil
	case *ecdsa.PublicKey:
		return &Verifier{key: k, methods: []string{"ES256", "ES384", "ES512"}}, nil
	}
	return nil, fmt.Errorf("jwt key: unsupported public key type %T", pub)
}

// Error is a refusal with its HTTP status (401 or 403).
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Authorize checks req's token and its grants. It may set req.ID from the
// token's client_id. It returns when the token expires (zero: never).
func (v *Verifier) Authorize(req *handshake.Request, now time.Time) (expires time.Time, err error) {
	raw := tokenOf(req)
	if raw == "" {
		return time.Time{}, &Error{401, "a token is required: Authorization: Bearer, access_token= or the " + CookieName + " cookie"}
	}
	var c Claims
	_, err = jwt.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return v.key, nil },
		jwt.WithValidMethods(v.methods), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return time.Time{}, &Error{401, "invalid token: " + err.Error()}
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
	if c.ExpiresAt != nil {
		expires = c.ExpiresAt.Time
	}
	return expires, nil
}

// granted: "*" grants everything; "p*" grants tokens starting with p; an
// exact entry grants itself. Subscribing to "*" needs the "*" grant.
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
	if t, ok := strings.CutPrefix(req.Authorization, "Bearer "); ok {
		return strings.TrimSpace(t)
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
