package handshake

import (
	"net/netip"
	"strings"
)

// MaxForwarded is how many addresses of a forwarding header are kept: the
// rightmost ones, which the nearest proxies added. Only those are read
// (see access.Proxies.Client); a longer chain of trusted proxies would be
// a misconfiguration, and a longer header mostly client-forged entries.
const MaxForwarded = 16

// maxForwardLines is how many lines of one forwarding header are kept, the
// last ones: a proxy appends its entry to the last line or adds a line.
const maxForwardLines = 4

// forwardLines keeps the last maxForwardLines values of a repeated header.
type forwardLines[T string | []byte] struct {
	v [maxForwardLines]T
	n int // lines seen
}

func (f *forwardLines[T]) add(v T) {
	if f.n >= maxForwardLines {
		copy(f.v[:], f.v[1:])
		f.v[maxForwardLines-1] = v
	} else {
		f.v[f.n] = v
	}
	f.n++
}

func (f *forwardLines[T]) lines() []T { return f.v[:min(f.n, maxForwardLines)] }

// chain collects the last MaxForwarded addresses, left to right.
type chain struct {
	a [MaxForwarded]netip.Addr
	n int // entries seen
}

func (c *chain) add(a netip.Addr) {
	c.a[c.n%MaxForwarded] = a
	c.n++
}

func (c *chain) slice() []netip.Addr {
	k := min(c.n, MaxForwarded)
	if k == 0 {
		return nil
	}
	out := make([]netip.Addr, k)
	for i := range out {
		out[i] = c.a[(c.n-k+i)%MaxForwarded]
	}
	return out
}

// forwardedChain returns the client address chain a proxy reported, the
// original client first: from X-Forwarded-For if it names anything, else
// from Forwarded (RFC 7239 for=), else X-Real-IP. X-Forwarded-For comes
// first because both proxy recipes fill it (nginx's
// $proxy_add_x_forwarded_for, Apache's mod_proxy by default) by appending,
// so its right end is the proxy's own; X-Real-IP is a single value a proxy
// may pass on from the client unchanged if not told to set it.
//
// An entry that is not an address ("unknown", "_hidden", garbage) is kept
// as the zero Addr, so that the reader stops there instead of skipping to
// an address the client may have forged.
func forwardedChain[T string | []byte](xff, fwd []T, realIP T) []netip.Addr {
	var c chain
	for _, line := range xff {
		for len(line) > 0 {
			var elem T
			elem, line = cutByte(line, ',')
			if e := trimOWS(elem); len(e) > 0 {
				c.add(parseNode(e))
			}
		}
	}
	if c.n == 0 {
		for _, line := range fwd {
			forwardedFor(line, &c)
		}
	}
	if c.n == 0 {
		if e := trimOWS(realIP); len(e) > 0 {
			c.add(parseNode(e))
		}
	}
	return c.slice()
}

// forwardedFor adds the for= node of each element of a Forwarded header
// value (RFC 7239 section 4): elements are separated by commas, pairs by
// semicolons, and a value is a token or a quoted string.
func forwardedFor[T string | []byte](v T, c *chain) {
	var node T
	hasFor, inElem := false, false
	endElem := func() {
		if inElem && hasFor {
			c.add(parseNode(node))
		}
		hasFor, inElem = false, false
	}
	for len(v) > 0 {
		v = trimOWS(v)
		if len(v) == 0 {
			break
		}
		switch v[0] {
		case ',':
			endElem()
			v = v[1:]
			continue
		case ';':
			v = v[1:]
			continue
		}
		inElem = true
		// name "=" value
		eq := indexAny(v, "=,;")
		if eq < 0 || v[eq] != '=' {
			// A pair without "=": malformed; skip to the next separator.
			if eq < 0 {
				v = v[len(v):]
			} else {
				v = v[eq:]
			}
			continue
		}
		name := trimOWS(v[:eq])
		v = trimOWS(v[eq+1:])
		var val T
		if len(v) > 0 && v[0] == '"' {
			val, v = quoted(v)
		} else {
			end := indexAny(v, ",;")
			if end < 0 {
				end = len(v)
			}
			val, v = trimOWS(v[:end]), v[end:]
		}
		if equalFold(name, "for") && !hasFor {
			node, hasFor = val, true
		}
	}
	endElem()
}

// quoted returns the content of the quoted string at the start of v (with
// backslash escapes left in: a node never needs them) and the rest after
// its closing quote; an unterminated string runs to the end.
func quoted[T string | []byte](v T) (val, rest T) {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return v[1:i], v[i+1:]
		}
	}
	return v[1:], v[len(v):]
}

// parseNode reads one node of a forwarding header: an IPv4 or IPv6
// address, optionally with a port ("192.0.2.1:80", "[2001:db8::1]:80",
// "[2001:db8::1]"); anything else is the zero Addr. The address is
// returned unmapped and without zone, as the caps compare them.
func parseNode[T string | []byte](v T) netip.Addr {
	s := string(v) // only reached for headers a proxy sent; short
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}
		}
		if rest := s[end+1:]; rest != "" && !validPort(rest) {
			return netip.Addr{}
		}
		s = s[1:end]
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		// One colon: IPv4 with a port. (An IPv6 address has at least two.)
		if !validPort(s[i:]) {
			return netip.Addr{}
		}
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// validPort reports whether p is ":" followed by 1 to 5 digits.
func validPort(p string) bool {
	if len(p) < 2 || len(p) > 6 || p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if !isDigit(p[i]) {
			return false
		}
	}
	return true
}

func cutByte[T string | []byte](s T, sep byte) (before, after T) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, s[len(s):]
}

func indexAny[T string | []byte](s T, chars string) int {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) >= 0 {
			return i
		}
	}
	return -1
}
