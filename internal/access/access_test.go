package access

import (
	"net/netip"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	public, private, loop := netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("::ffff:127.0.0.1")
	open := &Policy{}
	if open.Permits(public) || !open.Permits(private) || !open.Permits(loop) {
		t.Error("default without a secret must admit private networks only")
	}
	withSecret := &Policy{Secret: "s3cret"}
	if !withSecret.Permits(public) {
		t.Error("with a secret, any network may try")
	}
	if withSecret.CheckSecret("s3cre") || withSecret.CheckSecret("") || !withSecret.CheckSecret("s3cret") {
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
	if !p.Take(a) || !p.Take(a) || p.Take(a) || !p.Take(b) {
		t.Fatal("cap of 2 per address")
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
