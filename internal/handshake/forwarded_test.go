package handshake

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestForwardedHeaders(t *testing.T) {
	a := netip.MustParseAddr
	bad := netip.Addr{}
	for _, c := range []struct {
		headers string
		want    []netip.Addr
	}{
		{"", nil},
		{"X-Forwarded-For: 203.0.113.7\r\n", []netip.Addr{a("203.0.113.7")}},
		{"X-Forwarded-For: 198.51.100.1, 203.0.113.7 ,127.0.0.1\r\n", []netip.Addr{a("198.51.100.1"), a("203.0.113.7"), a("127.0.0.1")}},
		// Repeated lines are one list, in order (RFC 9110 5.3).
		{"X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 203.0.113.7\r\n", []netip.Addr{a("198.51.100.1"), a("203.0.113.7")}},
		{"x-forwarded-for: unknown, 203.0.113.7\r\n", []netip.Addr{bad, a("203.0.113.7")}},
		{"X-Forwarded-For: 203.0.113.7:4711, [2001:db8::1]:80, 2001:db8::2, ::ffff:192.0.2.1, fe80::1%eth0\r\n",
			[]netip.Addr{a("203.0.113.7"), a("2001:db8::1"), a("2001:db8::2"), a("192.0.2.1"), a("fe80::1")}},
		{"X-Forwarded-For: 1.2.3.4:x, [::1, 1.2.3, 1.2.3.4:123456, [::1]x\r\n", []netip.Addr{bad, bad, bad, bad, bad}},
		{"X-Forwarded-For:\r\nX-Real-IP: 203.0.113.9\r\n", []netip.Addr{a("203.0.113.9")}},
		// X-Forwarded-For wins over Forwarded, which wins over X-Real-IP.
		{"X-Real-IP: 192.0.2.9\r\nForwarded: for=192.0.2.60\r\nX-Forwarded-For: 203.0.113.7\r\n", []netip.Addr{a("203.0.113.7")}},
		{"X-Real-IP: 192.0.2.9\r\nForwarded: for=192.0.2.60\r\n", []netip.Addr{a("192.0.2.60")}},
		{"X-Real-IP:  192.0.2.9 \r\n", []netip.Addr{a("192.0.2.9")}},
		// RFC 7239 section 4 and 7.4 examples.
		{`Forwarded: for="_gazonk"` + "\r\n", []netip.Addr{bad}},
		{`Forwarded: For="[2001:db8:cafe::17]:4711"` + "\r\n", []netip.Addr{a("2001:db8:cafe::17")}},
		{"Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n", []netip.Addr{a("192.0.2.60")}},
		{"Forwarded: for=192.0.2.43, for=198.51.100.17\r\n", []netip.Addr{a("192.0.2.43"), a("198.51.100.17")}},
		{"Forwarded: proto=https;for=unknown, by=x, for=\"198.51.100.17:80\" ; host=\"a,b;c\"\r\nForwarded: for=192.0.2.1\r\n",
			[]netip.Addr{bad, a("198.51.100.17"), a("192.0.2.1")}},
		{`Forwarded: host="a,for=192.0.2.2";for=192.0.2.3` + "\r\n", []netip.Addr{a("192.0.2.3")}},
		{"Forwarded: for\r\n", nil},
		{"Forwarded: for=\"192.0.2.1\r\n", []netip.Addr{a("192.0.2.1")}},
	} {
		head := "GET /sse?subscribe=a HTTP/1.1\r\nHost: h\r\n" + c.headers + "\r\n"
		req, err := Parse([]byte(head), cfg)
		if err != nil {
			t.Fatalf("%q: %v", c.headers, err)
		}
		if fmt.Sprint(req.Forwarded) != fmt.Sprint(c.want) {
			t.Errorf("%q: Forwarded = %v, want %v", c.headers, req.Forwarded, c.want)
		}
	}
}

func TestForwardedKeepsTheRightEnd(t *testing.T) {
	var list []string
	for i := range 40 {
		list = append(list, fmt.Sprintf("192.0.2.%d", i))
	}
	parse := func(lines ...string) []netip.Addr {
		head := "GET /sse?subscribe=a HTTP/1.1\r\n"
		for _, l := range lines {
			head += "X-Forwarded-For: " + l + "\r\n"
		}
		req, err := Parse([]byte(head+"\r\n"), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return req.Forwarded
	}
	// 33 entries on 4 lines: the last 16 are kept.
	got := parse(strings.Join(list[:30], ", "), list[30], list[31], list[32])
	if fmt.Sprint(got) != fmt.Sprint(list[17:33]) {
		t.Errorf("kept %v", got)
	}
	// 10 lines: the last 4 are kept.
	if got := parse(list[:10]...); fmt.Sprint(got) != fmt.Sprint(list[6:10]) {
		t.Errorf("kept %v", got)
	}
}

// TestForwardedFromHTTP: the net/http front end reads the same headers the
// same way.
func TestForwardedFromHTTP(t *testing.T) {
	for _, h := range []http.Header{
		{"X-Forwarded-For": {"198.51.100.1, unknown", "203.0.113.7"}},
		{"Forwarded": {`for="[2001:db8::1]:1";proto=https`}, "X-Real-Ip": {"192.0.2.1"}},
		{"X-Real-Ip": {"192.0.2.1"}},
		{"X-Real-Ip": {""}},
		{},
	} {
		var head strings.Builder
		head.WriteString("GET /sse?subscribe=a HTTP/1.1\r\n")
		h.Write(&head)
		head.WriteString("\r\n")
		want, err := Parse([]byte(head.String()), cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FromHTTP("GET", "/sse", "subscribe=a", true, h, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Forwarded) != fmt.Sprint(want.Forwarded) {
			t.Errorf("%v: FromHTTP %v, Parse %v", h, got.Forwarded, want.Forwarded)
		}
	}
}

func TestParseAllocsBehindProxy(t *testing.T) {
	head := []byte(strings.Replace(string(browserHead()), "\r\n\r\n", "\r\nX-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n\r\n", 1))
	n := testing.AllocsPerRun(100, func() {
		req, err := Parse(head, cfg)
		if err != nil || len(req.Forwarded) != 1 {
			t.Fatal(req, err)
		}
	})
	// The browser request's 5, the chain, and the entry's string for
	// netip.ParseAddr.
	if n > 7 {
		t.Errorf("Parse of a proxied browser request: %v allocations, want at most 7", n)
	}
}

func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7", "198.51.100.1, 203.0.113.7 ,127.0.0.1", "unknown, [2001:db8::1]:80",
		`for="[2001:db8:cafe::17]:4711"`, "for=192.0.2.60;proto=http;by=203.0.113.43, for=unknown",
		`host="a,for=1.2.3.4";for=192.0.2.3`, `for="\"`, "fe80::1%eth0", ";;,,=", "for=\"1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, c := range [][]netip.Addr{
			forwardedChain([]string{v}, nil, ""),
			forwardedChain(nil, []string{v}, ""),
			forwardedChain(nil, nil, v),
			forwardedChain([][]byte{[]byte(v)}, [][]byte{[]byte(v)}, []byte(v)),
		} {
			if len(c) > MaxForwarded {
				t.Fatalf("%d entries", len(c))
			}
			for _, a := range c {
				if a.IsValid() && (a.Zone() != "" || a.Is4In6()) {
					t.Fatalf("entry %v not normalised", a)
				}
			}
		}
		// Bytes and strings agree.
		if s, b := forwardedChain(nil, []string{v}, ""), forwardedChain(nil, [][]byte{[]byte(v)}, nil); fmt.Sprint(s) != fmt.Sprint(b) {
			t.Fatalf("%v != %v", s, b)
		}
	})
}
