// Package access decides who may publish and administer: a shared secret,
// compared in constant time, and an allow-list of networks.
package access

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// privateNets are accepted when no secret is set: the loopback, private and
// link-local ranges, which keeps Docker and compose deployments working
// while nothing on the public internet can publish.
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// Policy is the publisher policy of the control port and the publish API.
type Policy struct {
	// Secret, if set, must be presented by publishers.
	Secret string
	// Allow lists the networks publishers may connect from. Nil means: the
	// private networks without a secret, anywhere with one.
	Allow []netip.Prefix
}

// ParseAllow parses a comma-separated list of CIDR prefixes or addresses.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("allow-list: %q is not an address or CIDR prefix", f)
			}
			f = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("allow-list: %q is not an address or CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Permits reports whether a publisher at addr may connect at all.
func (p *Policy) Permits(addr netip.Addr) bool {
	addr = addr.Unmap()
	nets := p.Allow
	if nets == nil {
		if p.Secret != "" {
			return true
		}
		nets = privateNets
	}
	for _, n := range nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// PermitsConn is Permits for a connection's remote address. Unix sockets
// and FIFOs are guarded by file permissions, so they pass.
func (p *Policy) PermitsConn(remote net.Addr) bool {
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return true
	}
	return p.Permits(tcp.AddrPort().Addr())
}

// CheckSecret compares in constant time. Without a secret anything passes.
func (p *Policy) CheckSecret(got string) bool {
	if p.Secret == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(p.Secret)) == 1
}

// Describe says in one line what the policy lets in, for the start-up log.
func (p *Policy) Describe() string {
	switch {
	case p.Secret == "" && p.Allow == nil:
		return "no secret: publishing is open to loopback and private networks only; set -ctl-secret before exposing the control port or publish API"
	case p.Secret == "":
		return "no secret: publishing is open to the allow-listed networks"
	case p.Allow == nil:
		return "publishers must present the secret"
	}
	return "publishers must be allow-listed and present the secret"
}

// RateLimiter allows each key (a publisher's address) rate events per
// second with bursts of burst, a token bucket per key.
type RateLimiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[netip.Addr]*bucket
	lastSweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter; rate <= 0 means unlimited (nil).
func NewRateLimiter(rate float64, burst int) *RateLimiter {
	if rate <= 0 {
		return nil
	}
	return &RateLimiter{rate: rate, burst: float64(max(burst, 1)), buckets: map[netip.Addr]*bucket{}}
}

// Allow takes one token for key; false means over the rate.
func (r *RateLimiter) Allow(key netip.Addr, now time.Time) bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastSweep) > time.Minute { // forget idle publishers
		for k, b := range r.buckets {
			if now.Sub(b.last) > time.Minute {
				delete(r.buckets, k)
			}
		}
		r.lastSweep = now
	}
	b := r.buckets[key]
	if b == nil {
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[key] = b
	}
	b.tokens = min(r.burst, b.tokens+now.Sub(b.last).Seconds()*r.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// PerAddr counts the connections of each client address under a cap. An
// IPv6 /64 counts as one address: it is what one subscriber line or host
// is given, so its 2^64 addresses must not multiply the cap. The zero value
// with Limit 0 admits everyone.
type PerAddr struct {
	Limit int
	mu    sync.Mutex
	n     map[netip.Addr]int
}

// Key is the address a connection from addr is counted under: addr itself
// for IPv4 (also IPv4-mapped IPv6), its /64 network for IPv6.
func Key(addr netip.Addr) netip.Addr {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.Addr()
	}
	return addr
}

// Take counts one more connection of addr; false if addr is at the cap.
func (p *PerAddr) Take(addr netip.Addr) bool {
	if p.Limit <= 0 {
		return true
	}
	k := Key(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = map[netip.Addr]int{}
	}
	if p.n[k] >= p.Limit {
		return false
	}
	p.n[k]++
	return true
}

// Release forgets one connection of addr taken before.
func (p *PerAddr) Release(addr netip.Addr) {
	if p.Limit <= 0 {
		return
	}
	k := Key(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[k] <= 1 {
		delete(p.n, k)
	} else {
		p.n[k]--
	}
}
