package subauth

import (
	"sort"
	"sync"
	"time"
)

// Revocation refuses a user's subscriber tokens issued before At, until
// Until.
type Revocation struct {
	User  string    `json:"user"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until"`
}

// MaxRevokeFor bounds how far ahead a revocation may last; it is also its
// default: a token the server accepts should not outlive a day without
// being renewed (-jwt-require-exp makes every token end).
const MaxRevokeFor = 24 * time.Hour

// maxRevocations bounds the list: past it, the revocations that end first
// are dropped first.
const maxRevocations = 65536

// Revocations is the list of revoked users. Its zero value is empty and
// ready; it is safe for concurrent use.
type Revocations struct {
	mu sync.Mutex
	m  map[string]Revocation
}

// Add records r, keeping the later of two revocations of one user, and
// forgets those that ended.
func (l *Revocations) Add(r Revocation, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]Revocation)
	}
	if old, ok := l.m[r.User]; ok {
		r.At = later(r.At, old.At)
		r.Until = later(r.Until, old.Until)
	}
	l.m[r.User] = r
	if len(l.m) > maxRevocations {
		l.prune(now)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// prune drops the revocations that ended, then the ones that end first
// while over the bound. Called with l.mu held.
func (l *Revocations) prune(now time.Time) {
	for u, r := range l.m {
		if !r.Until.After(now) {
			delete(l.m, u)
		}
	}
	if over := len(l.m) - maxRevocations; over > 0 {
		list := l.sorted()
		for _, r := range list[:over] {
			delete(l.m, r.User)
		}
	}
}

func (l *Revocations) sorted() []Revocation {
	out := make([]Revocation, 0, len(l.m))
	for _, r := range l.m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.Before(out[j].Until) })
	return out
}

// Revoked reports whether a token of user issued at iat (zero: unknown)
// is refused now.
func (l *Revocations) Revoked(user string, iat, now time.Time) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.m[user]
	return ok && now.Before(r.Until) && iat.Before(r.At)
}

// Active returns the revocations in force, the one that ends first first.
func (l *Revocations) Active(now time.Time) []Revocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	return l.sorted()
}
