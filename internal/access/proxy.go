package access

import (
	"net/netip"
	"strings"
)

// Proxies are the trusted reverse proxies (-trusted-proxies). For a
// connection from one of them, the client address is taken from the
// forwarding header the proxy adds (X-Forwarded-For, Forwarded, X-Real-IP),
// for the per-address cap, clientlist and the logs; never for publisher
// access, which always looks at the peer itself.
//
// A nil *Proxies trusts nobody.
type Proxies struct {
	nets []netip.Prefix
}

// NoProxies is the -trusted-proxies value that trusts nobody.
const NoProxies = "none"

// ParseProxies parses a comma-separated list of CIDR prefixes or addresses,
// or "none" (nil: trust nobody).
func ParseProxies(s string) (*Proxies, error) {
	if strings.TrimSpace(s) == NoProxies {
		return nil, nil
	}
	nets, err := ParseAllow(s)
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 {
		return nil, nil
	}
	return &Proxies{nets: nets}, nil
}

// Trusts reports whether addr is a trusted proxy.
func (p *Proxies) Trusts(addr netip.Addr) bool {
	if p == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, n := range p.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// Client returns the address a request from peer stands for. It is peer
// unless peer is a trusted proxy; then chain, the addresses of the
// forwarding header (the original client first, each proxy appending the
// address it received from), is read from the right: proxies append, so
// the rightmost address that is not itself a trusted proxy is the last one
// a trusted proxy vouches for, and anything left of it may be forged by the
// client. An entry that is not an address ("unknown", an obfuscated name),
// or an empty chain, leaves the client unknown, and peer is returned. When
// every entry is a trusted proxy (a request from the proxy's own host), the
// leftmost is returned.
func (p *Proxies) Client(peer netip.Addr, chain []netip.Addr) netip.Addr {
	if !p.Trusts(peer) || len(chain) == 0 {
		return peer
	}
	for i := len(chain) - 1; i >= 0; i-- {
		a := chain[i]
		if !a.IsValid() {
			return peer
		}
		if !p.Trusts(a) {
			return a.Unmap().WithZone("")
		}
	}
	return chain[0].Unmap().WithZone("")
}

// Capped reports whether the streams of addr, an address returned by
// Client, count under the per-address cap. A trusted proxy's address is
// not: behind a proxy every subscriber arrives from it, and a request that
// names no client behind it cannot be told apart from the thousands of
// others it carries; such requests count under a cap of their own, per
// proxy (-max-conns-per-proxy).
func (p *Proxies) Capped(addr netip.Addr) bool { return !p.Trusts(addr) }

// String lists the trusted networks, or "none".
func (p *Proxies) String() string {
	if p == nil {
		return NoProxies
	}
	s := make([]string, len(p.nets))
	for i, n := range p.nets {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// DefaultTrustedProxies is the -trusted-proxies default: nobody. Loopback
// is not trusted by default: a same-host TCP relay (stunnel, haproxy mode
// tcp, ssh -L, a sidecar) connects from it and adds no header, and trusting
// it would let every remote client name its own address. A proxy on this
// host is listed with -trusted-proxies=127.0.0.1.
const DefaultTrustedProxies = NoProxies
