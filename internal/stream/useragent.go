package stream

import "sync"

// maxUserAgents bounds the interned User-Agent strings: past it, the
// table starts anew (the connections keep the strings they have).
const maxUserAgents = 1024

// userAgents interns the User-Agent strings that connections keep for
// clientlist: streams mostly come from a few browsers' versions, and each
// would otherwise hold a copy of its own (100 to 200 bytes).
type userAgents struct {
	mu sync.Mutex
	m  map[string]*string
}

// intern returns the shared copy of ua; nil for none.
func (u *userAgents) intern(ua string) *string {
	if ua == "" {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if p, ok := u.m[ua]; ok {
		return p
	}
	if u.m == nil || len(u.m) >= maxUserAgents {
		u.m = make(map[string]*string)
	}
	s := ua // apart from ua, which would then escape on every call
	p := &s
	u.m[s] = p
	return p
}
