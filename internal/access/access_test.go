package access

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	public, private, loop := netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("::ffff:127.0.0.1")
	open := &Policy{}
	if open.Permits(public) || !open.Permits(private) || !open.Permits(loop) {
		t.Error("default without a secret must admit private networks only")
	}
	withSecret := &Policy{Secret: "a-long-enough-secret"}
	if !withSecret.Permits(public) {
		t.Error("with a secret, any network may try")
	}
	if withSecret.CheckSecret("a-long-enough-secre") || withSecret.CheckSecret("") || !withSecret.CheckSecret("a-long-enough-secret") {
		t.Error("secret comparison")
	}
	allow, err := ParseAllow("10.1.0.0/16, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	listed := &Policy{Secret: "x", Allow: allow}
	if !listed.Permits(netip.MustParseAddr("10.1.2.3")) || !listed.Permits(netip.MustParseAddr("192.0.2.7")) || listed.Permits(private) {
		t.Error("allow-list")
	}
	if _, err := ParseAllow("10.0.0.0/33"); err == nil {
		t.Error("bad prefix accepted")
	}
}

func TestRateLimiter(t *testing.T) {
	r := NewRateLimiter(10, 5)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	now := time.Unix(0, 0)
	for i := range 5 {
		if !r.Allow(a, now) {
			t.Fatalf("burst: refused at %d", i)
		}
	}
	if r.Allow(a, now) {
		t.Error("over the burst: allowed")
	}
	if !r.Allow(b, now) {
		t.Error("another publisher was limited")
	}
	if !r.Allow(a, now.Add(100*time.Millisecond)) {
		t.Error("a token should come back after 1/rate")
	}
	if NewRateLimiter(0, 0).Allow(a, now) != true {
		t.Error("unlimited limiter refused")
	}
}

func TestPerAddr(t *testing.T) {
	p := &PerAddr{Limit: 2}
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for i, want := range []bool{true, true, false} {
		if got := p.Take(a); got != want {
			t.Fatalf("take %d of a: %v, want %v (cap of 2 per address)", i+1, got, want)
		}
	}
	if !p.Take(b) {
		t.Fatal("another address was refused")
	}
	p.Release(a)
	if !p.Take(a) {
		t.Error("a released place was not reusable")
	}
	var unlimited PerAddr
	for range 100 {
		if !unlimited.Take(a) {
			t.Fatal("Limit 0 refused")
		}
	}
}

func TestPerAddrIPv6Slash64(t *testing.T) {
	p := &PerAddr{Limit: 2}
	a, b, c := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9"), netip.MustParseAddr("2001:db8:1:3::1")
	if !p.Take(a) || !p.Take(b) {
		t.Fatal("under the cap")
	}
	if p.Take(netip.MustParseAddr("2001:db8:1:2:dead:beef:0:1")) {
		t.Error("a third address of the same /64 was admitted: a /64 is one address")
	}
	if !p.Take(c) {
		t.Error("the next /64 is another address")
	}
	p.Release(b)
	if !p.Take(netip.MustParseAddr("2001:db8:1:2::77")) {
		t.Error("a released place of the /64 was not reusable")
	}
	// IPv4, also written as IPv4-mapped IPv6, is counted per address.
	v4 := &PerAddr{Limit: 1}
	if !v4.Take(netip.MustParseAddr("192.0.2.1")) || v4.Take(netip.MustParseAddr("::ffff:192.0.2.1")) || !v4.Take(netip.MustParseAddr("192.0.2.2")) {
		t.Error("IPv4 counting")
	}
	if Key(netip.MustParseAddr("fe80::1:2:3:4%eth0")) != netip.MustParseAddr("fe80::") {
		t.Errorf("key of a zoned address: %v", Key(netip.MustParseAddr("fe80::1:2:3:4%eth0")))
	}
}

func TestProxies(t *testing.T) {
	a := netip.MustParseAddr
	p, err := ParseProxies("127.0.0.0/8, ::1, 10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "127.0.0.0/8,::1/128,10.1.2.3/32" {
		t.Errorf("String() = %q", p.String())
	}
	for _, c := range []struct {
		peer  string
		chain []netip.Addr
		want  string
	}{
		{"203.0.113.1", []netip.Addr{a("198.51.100.1")}, "203.0.113.1"},                    // not a proxy: headers ignored
		{"127.0.0.1", nil, "127.0.0.1"},                                                    // a proxy that names no client
		{"127.0.0.1", []netip.Addr{a("198.51.100.1")}, "198.51.100.1"},                     // the usual case
		{"::ffff:127.0.0.1", []netip.Addr{a("198.51.100.1")}, "198.51.100.1"},              // mapped peer
		{"127.0.0.1", []netip.Addr{a("6.6.6.6"), a("198.51.100.1")}, "198.51.100.1"},       // forged left part ignored
		{"127.0.0.1", []netip.Addr{a("198.51.100.1"), a("10.1.2.3")}, "198.51.100.1"},      // two proxies
		{"127.0.0.1", []netip.Addr{a("6.6.6.6"), {}, a("10.1.2.3")}, "127.0.0.1"},          // "unknown": stop, client unknown
		{"127.0.0.1", []netip.Addr{a("127.0.0.5"), a("10.1.2.3")}, "127.0.0.5"},            // all trusted: the leftmost
		{"::1", []netip.Addr{a("2001:db8::1")}, "2001:db8::1"},                             // IPv6
		{"10.1.2.4", []netip.Addr{a("198.51.100.1")}, "10.1.2.4"},                          // next to a proxy is not one
		{"127.0.0.1", []netip.Addr{a("::ffff:198.51.100.1")}, "198.51.100.1"},              // normalised
		{"127.0.0.1", []netip.Addr{a("2001:db8::1"), a("::ffff:10.1.2.3")}, "2001:db8::1"}, // mapped proxy entry
	} {
		if got := p.Client(a(c.peer), c.chain); got.String() != c.want {
			t.Errorf("Client(%s, %v) = %v, want %s", c.peer, c.chain, got, c.want)
		}
	}
	if p.Capped(a("127.0.0.1")) || !p.Capped(a("198.51.100.1")) || !p.Capped(netip.Addr{}) {
		t.Error("Capped: trusted proxies are not capped, others are")
	}

	for _, s := range []string{"none", " none ", ""} {
		none, err := ParseProxies(s)
		if err != nil || none != nil {
			t.Fatalf("ParseProxies(%q) = %v, %v", s, none, err)
		}
		if none.Trusts(a("127.0.0.1")) || none.Client(a("127.0.0.1"), []netip.Addr{a("198.51.100.1")}) != a("127.0.0.1") || !none.Capped(a("127.0.0.1")) || none.String() != "none" {
			t.Error("none must trust nobody")
		}
	}
	if _, err := ParseProxies("127.0.0.1/40"); err == nil {
		t.Error("bad prefix accepted")
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer abc": "abc", " BEARER  abc ": "abc",
		"Basic abc": "", "Bearer": "", "abc": "", "": ""} {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		if got := Bearer(r); got != want {
			t.Errorf("Bearer(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestThrottle(t *testing.T) {
	var th Throttle
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2") // one /64
	now := time.Unix(1000, 0)
	for range SecretFailures - 1 {
		th.Fail(a, now)
	}
	if _, blocked := th.Blocked(b, now); blocked {
		t.Fatal("blocked before the limit")
	}
	th.Fail(b, now)
	if retry, blocked := th.Blocked(a, now.Add(time.Second)); !blocked || retry != SecretWindow-time.Second {
		t.Fatalf("at the limit: %v %v", retry, blocked)
	}
	if _, blocked := th.Blocked(a, now.Add(SecretWindow)); blocked {
		t.Fatal("still blocked after the window")
	}
	// Memory is bounded: a flood of addresses shares one entry.
	for i := range throttleKeys + 100 {
		th.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if len(th.m) > throttleKeys+1 { // and the shared entry
		t.Fatalf("%d entries", len(th.m))
	}
	if _, blocked := th.Blocked(netip.MustParseAddr("192.0.2.1"), now); !blocked {
		t.Fatal("a new address past the table's bound is not throttled with the flood")
	}
}

func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused []int
	ln := LimitListener(inner, 3, 2, func(_ netip.Addr, status int) { refused = append(refused, status) })
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	status := func(c net.Conn) string {
		b, _ := io.ReadAll(c)
		return string(b)
	}
	dial("127.0.0.1")
	dial("127.0.0.1")
	first := <-accepted
	<-accepted
	if s := status(dial("127.0.0.1")); !strings.HasPrefix(s, "HTTP/1.1 429 ") {
		t.Errorf("third from one address: %q", s)
	}
	dial("127.0.0.2")
	<-accepted
	if s := status(dial("127.0.0.3")); !strings.HasPrefix(s, "HTTP/1.1 503 ") {
		t.Errorf("fourth in all: %q", s)
	}
	first.Close()
	dial("127.0.0.3")
	<-accepted
	if len(refused) != 2 {
		t.Errorf("refusals reported: %v", refused)
	}
}

// FuzzBearer: Bearer returns credentials only from a Bearer scheme (any
// case), trimmed, and never panics.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic abc", "Bearer", " BEARER x y", "Bearer\tx", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		v := Bearer(&http.Request{Header: http.Header{"Authorization": {h}}})
		if v == "" {
			return
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "Bearer") || v != strings.TrimSpace(v) || !strings.Contains(h, v) {
			t.Fatalf("Bearer(%q) = %q", h, v)
		}
	})
}
