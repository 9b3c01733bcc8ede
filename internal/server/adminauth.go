package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/dashboard"
)

const (
	// adminCookie carries a dashboard login, so that EventSource (which
	// cannot send headers) is let in.
	adminCookie = "hasses_admin"
	// adminSession is how long a login lasts.
	adminSession = 12 * time.Hour
)

// adminGuard lets into the admin listener who may publish: an address the
// publisher allow-list permits, with the publisher secret as a Bearer token
// or as a login cookie.
type adminGuard struct {
	policy *access.Policy
	key    []byte // signs login cookies; new at every start, so a restart logs everyone out
	now    func() time.Time

	refused atomic.Int64 // requests turned away: 403, or 401 with a wrong secret
}

func newAdminGuard(p *access.Policy) *adminGuard {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand panics rather than return short)
	return &adminGuard{policy: p, key: key, now: time.Now}
}

// allowed reports whether r may see protected pages; if not, it has
// answered: 403 from a network not allowed, 401 without the secret (the
// login form for the dashboard page).
func (g *adminGuard) allowed(w http.ResponseWriter, r *http.Request) bool {
	if !g.policy.Permits(clientAddr(r)) {
		g.refused.Add(1)
		http.Error(w, "forbidden: the admin listener is not open to "+clientAddr(r).String(), http.StatusForbidden)
		return false
	}
	if g.policy.CheckSecret(bearer(r)) || g.validCookie(r) {
		return true
	}
	if _, err := r.Cookie(adminCookie); err == nil || r.Header.Get("Authorization") != "" {
		g.refused.Add(1) // a wrong secret; a browser meeting the login form is no refusal
	}
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		dashboard.Login(w, http.StatusUnauthorized, false)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="hasses admin"`)
	http.Error(w, "unauthorized: send Authorization: Bearer <secret>, or log in at /", http.StatusUnauthorized)
	return false
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
	if !g.policy.Permits(clientAddr(r)) {
		g.refused.Add(1)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if g.policy.Secret == "" { // nothing to log in to: the network decides
		seeOther(w)
		return
	}
	if !g.policy.CheckSecret(r.PostFormValue("secret")) {
		g.refused.Add(1)
		dashboard.Login(w, http.StatusUnauthorized, true)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: adminCookie, Value: g.sign(g.now().Add(adminSession)), Path: "/",
		MaxAge: int(adminSession / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil,
	})
	seeOther(w)
}

// logout forgets the login cookie in this browser.
func (g *adminGuard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	seeOther(w)
}

// sign makes a cookie value valid until exp: the expiry and its HMAC, so
// the secret itself never sits in the browser.
func (g *adminGuard) sign(exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return e + "." + g.mac(e)
}

func (g *adminGuard) mac(exp string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte("hasses admin login\x00" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

func (g *adminGuard) validCookie(r *http.Request) bool {
	c, err := r.Cookie(adminCookie)
	if err != nil {
		return false
	}
	e, mac, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(g.mac(e))) {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	return err == nil && g.now().Unix() < exp
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func clientAddr(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr()
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a, _ := netip.ParseAddr(host)
	return a
}

// seeOther sends the browser back to the dashboard. The location is
// relative, so the admin listener also works behind a proxy under a path
// prefix.
func seeOther(w http.ResponseWriter) {
	w.Header().Set("Location", "./")
	w.WriteHeader(http.StatusSeeOther)
}
