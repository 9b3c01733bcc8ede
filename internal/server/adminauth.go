package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/dashboard"
	"github.com/hasses-go/hasses/internal/refusal"
)

const (
	// adminCookie carries a dashboard login, so that EventSource (which
	// cannot send headers) is let in.
	adminCookie = "hasses_admin"
	// adminSession is how long a login lasts.
	adminSession = 12 * time.Hour
)

// maxRevoked bounds the logged-out sessions remembered until they expire;
// past it, the signing key is renewed, which logs everyone out.
const maxRevoked = 1024

// adminGuard lets into the admin listener who may publish: an address the
// publisher allow-list permits, with the publisher secret as a Bearer token
// or as a login cookie. Wrong secrets are throttled per address.
type adminGuard struct {
	policy   *access.Policy
	proxies  *access.Proxies // whose X-Forwarded-Proto says the browser used https
	throttle *access.Throttle
	refusals *refusal.Log
	now      func() time.Time

	mu      sync.Mutex
	key     []byte           // signs login cookies; new at every start, so a restart logs everyone out
	revoked map[string]int64 // sessions logged out: nonce -> expiry (Unix seconds)

	refused atomic.Int64 // requests turned away: 403, 429, or 401 with a wrong secret
}

func newAdminGuard(p *access.Policy, proxies *access.Proxies, th *access.Throttle, refusals *refusal.Log) *adminGuard {
	return &adminGuard{policy: p, proxies: proxies, throttle: th, refusals: refusals, now: time.Now,
		key: newKey(), revoked: map[string]int64{}}
}

func newKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand panics rather than return short)
	return key
}

// allowed reports whether r may see protected pages; if not, it has
// answered: 403 from a network not allowed, 429 after too many wrong
// secrets, 401 without the secret (the login form for the dashboard page).
func (g *adminGuard) allowed(w http.ResponseWriter, r *http.Request) bool {
	peer := access.Peer(r)
	if !g.permitted(w, r, peer) {
		return false
	}
	if g.policy.CheckSecret(access.Bearer(r)) || g.validCookie(r) {
		return true
	}
	if _, err := r.Cookie(adminCookie); err == nil || r.Header.Get("Authorization") != "" {
		g.fail(peer) // a wrong secret; a browser meeting the login form is no refusal
	}
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		dashboard.Login(w, http.StatusUnauthorized, false)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="hasses admin"`)
	http.Error(w, "unauthorized: send Authorization: Bearer <secret>, or log in at /", http.StatusUnauthorized)
	return false
}

// permitted checks the network and the throttle; if either refuses, it
// has answered.
func (g *adminGuard) permitted(w http.ResponseWriter, r *http.Request, peer netip.Addr) bool {
	if !g.policy.Permits(peer) {
		g.refused.Add(1)
		http.Error(w, "forbidden: the admin listener is not open to "+peer.String(), http.StatusForbidden)
		return false
	}
	if retry, blocked := g.throttle.Blocked(peer, g.now()); blocked {
		g.refused.Add(1)
		g.refusals.Refused(refusal.Guessing, http.StatusTooManyRequests, peer.String(), nil)
		w.Header().Set("Retry-After", access.RetryAfter(retry))
		http.Error(w, "too many wrong secrets: try again later", http.StatusTooManyRequests)
		return false
	}
	return true
}

// fail counts and logs a wrong secret from peer.
func (g *adminGuard) fail(peer netip.Addr) {
	g.refused.Add(1)
	g.throttle.Fail(peer, g.now())
	g.refusals.Refused(refusal.WrongSecret, http.StatusUnauthorized, peer.String(), nil)
}

// protect wraps h with the guard.
func (g *adminGuard) protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.allowed(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// login checks the secret posted by the form and sets the login cookie.
func (g *adminGuard) login(w http.ResponseWriter, r *http.Request) {
	peer := access.Peer(r)
	if !g.permitted(w, r, peer) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if g.policy.Secret == "" { // nothing to log in to: the network decides
		seeOther(w)
		return
	}
	if !g.policy.CheckSecret(r.PostFormValue("secret")) {
		g.fail(peer)
		dashboard.Login(w, http.StatusUnauthorized, true)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: adminCookie, Value: g.sign(g.now().Add(adminSession)), Path: "/",
		MaxAge: int(adminSession / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: g.overTLS(r),
	})
	seeOther(w)
}

// overTLS reports whether the browser reached the listener over https:
// directly, or through a trusted proxy that says so.
func (g *adminGuard) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return g.proxies.Trusts(access.Peer(r)) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}

// logout ends the session: its cookie is refused from now on, wherever it
// was copied to, and the browser forgets it.
func (g *adminGuard) logout(w http.ResponseWriter, r *http.Request) {
	if nonce, exp, ok := g.session(r); ok {
		g.mu.Lock()
		now := g.now().Unix()
		if len(g.revoked) >= maxRevoked {
			for n, e := range g.revoked {
				if e <= now {
					delete(g.revoked, n)
				}
			}
		}
		if len(g.revoked) >= maxRevoked {
			g.key, g.revoked = newKey(), map[string]int64{} // everyone logs in again
		} else {
			g.revoked[nonce] = exp
		}
		g.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: g.overTLS(r)})
	seeOther(w)
}

// sign makes a cookie value valid until exp: the expiry, a random session
// nonce (what logout revokes) and their HMAC, so that the secret itself
// never sits in the browser.
func (g *adminGuard) sign(exp time.Time) string {
	n := make([]byte, 12)
	rand.Read(n)
	payload := strconv.FormatInt(exp.Unix(), 10) + "." + hex.EncodeToString(n)
	return payload + "." + g.mac(payload)
}

func (g *adminGuard) mac(payload string) string {
	g.mu.Lock()
	m := hmac.New(sha256.New, g.key)
	g.mu.Unlock()
	m.Write([]byte("hasses admin login\x00" + payload))
	return hex.EncodeToString(m.Sum(nil))
}

func (g *adminGuard) validCookie(r *http.Request) bool {
	_, _, ok := g.session(r)
	return ok
}

// session returns the nonce and expiry of r's login cookie, if it is
// valid: signed by this run, not expired, not logged out.
func (g *adminGuard) session(r *http.Request) (nonce string, exp int64, ok bool) {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(c.Value, '.')
	if i < 0 {
		return "", 0, false
	}
	payload, mac := c.Value[:i], c.Value[i+1:]
	e, nonce, found := strings.Cut(payload, ".")
	if !found || !hmac.Equal([]byte(mac), []byte(g.mac(payload))) {
		return "", 0, false
	}
	exp, err = strconv.ParseInt(e, 10, 64)
	if err != nil || g.now().Unix() >= exp {
		return "", 0, false
	}
	g.mu.Lock()
	_, revoked := g.revoked[nonce]
	g.mu.Unlock()
	return nonce, exp, !revoked
}

// seeOther sends the browser back to the dashboard. The location is
// relative, so the admin listener also works behind a proxy under a path
// prefix.
func seeOther(w http.ResponseWriter) {
	w.Header().Set("Location", "./")
	w.WriteHeader(http.StatusSeeOther)
}
