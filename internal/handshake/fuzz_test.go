package handshake

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fuzzConfigs: the defaults, and small limits so that the fuzzer reaches
// every limit with short inputs; the origin list makes the stream head
// echo the client's Origin, which must never split the head.
var fuzzConfigs = []*Config{
	{Path: "/sse"},
	{Path: "/e", CORSBase: "https://a", MaxHeadBytes: 300, MaxTokens: 3, MaxTokenLen: 5, MaxIDLen: 4,
		Origins: []string{"https://ok", "*"}},
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET /sse?subscribe=a-b&id=x HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /e?subscribe=a-b-c-a&id=abcd HTTP/1.1\r\nOrigin: https://ok\r\n\r\n",
		"GET /sse?subscribe=pc%2Dx-caf%C3%A9--caf\xc3\xa9&lastEventId=1%2D2 HTTP/1.1\r\n\r\n",
		"GET /sse?subscribe=*&lastEventId=a-1 HTTP/1.1\nLast-Event-ID: b-2\n\n",
		"GET /sse?subscribe=&access_token=a.b.c HTTP/1.1\r\nCookie: k=v\r\nAuthorization: Bearer x\r\n\r\n",
		"GET  /sse?subscribe=a   HTTP/1.1  \r\nUser-Agent: \t ua \t\r\n\r\n",
		"GET /sse HTTP/1.1\r\n\r\n",
		"GET /sse?id=x HTTP/1.1\r\n\r\n",
		"GET /sse/ HTTP/1.1\r\n\r\n",
		"GET http://h/sse?subscribe=a HTTP/1.1\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.0\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\r\nbad\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\r\nX: a\x01\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
		"GET /sse?subscribe=" + strings.Repeat("t-", 70) + " HTTP/1.1\r\n\r\n",
		"GET /sse?subscribe=" + distinct(40) + "-t1-t39 HTTP/1.1\r\n\r\n",
		"HEAD /sse HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"OPTIONS *  HTTP/1.1\r\nOrigin: https://evil\r\n\r\n",
		"POST / HTTP/1.1\r\n\r\n",
		"get /sse?subscribe=a HTTP/1.1\r\n\r\n",
		"\r\n",
		"\n\n",
		"",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"GET /sse?subscribe=a\x00 HTTP/1.1\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\r\nX-Forwarded-For: 198.51.100.1, unknown\r\nx-forwarded-for: [2001:db8::1]:80\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\r\nForwarded: for=\"[2001:db8:cafe::17]:4711\";proto=https, for=192.0.2.1\r\nX-Real-IP: 192.0.2.9\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		for _, c := range fuzzConfigs {
			checkParse(t, head, c)
		}
		if n := HeadEnd(head); n >= 0 {
			checkParse(t, head[:n], fuzzConfigs[0])
		}
	})
}

func checkParse(t *testing.T, head []byte, c *Config) {
	orig := bytes.Clone(head)
	req, err := Parse(head, c)
	if !bytes.Equal(head, orig) {
		t.Fatalf("Parse modified its input")
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not an *Error", err, err)
		}
		switch e.Status {
		case 400, 403, 404, 431, 501:
		default:
			t.Fatalf("status %d for %q", e.Status, head)
		}
		if e.Reason == "" || strings.ContainsAny(err.Error(), "\r\n\x00") {
			t.Fatalf("reason %q", err.Error())
		}
		if req != nil {
			t.Fatalf("request and error both returned")
		}
		AppendError(nil, c, e.Status, fixedNow)
		return
	}
	if len(head) > c.HeadLimit() {
		t.Fatalf("accepted %d bytes over a cap of %d", len(head), c.HeadLimit())
	}
	if !bytes.HasPrefix(head, []byte(req.Method+" ")) {
		t.Fatalf("method %q for %q", req.Method, head)
	}
	switch req.Method {
	case "GET":
		if !bytes.Contains(head, []byte("?")) {
			t.Fatalf("GET without a query string accepted: %q", head)
		}
	case "HEAD", "OPTIONS":
		if req.Tokens != nil || req.ID != "" {
			t.Fatalf("%s with parameters %+v", req.Method, req)
		}
	default:
		t.Fatalf("method %q", req.Method)
	}
	maxTokens := orDefault(c.MaxTokens, DefaultMaxTokens)
	maxLen := orDefault(c.MaxTokenLen, DefaultMaxTokenLen)
	if len(req.Tokens) > maxTokens || len(req.ID) > orDefault(c.MaxIDLen, DefaultMaxIDLen) {
		t.Fatalf("limits exceeded: %d tokens, id of %d bytes", len(req.Tokens), len(req.ID))
	}
	seen := map[string]bool{}
	for _, tok := range req.Tokens {
		if tok == "" || strings.Contains(tok, "-") || len(tok) > maxLen || seen[tok] || hasCtl(tok) {
			t.Fatalf("bad token %q in %q", tok, req.Tokens)
		}
		seen[tok] = true
	}
	if len(req.Forwarded) > MaxForwarded {
		t.Fatalf("%d forwarded addresses kept", len(req.Forwarded))
	}
	for _, v := range []string{req.ID, req.LastEventID, req.Origin, req.UserAgent, req.Authorization, req.Cookie} {
		if hasCtl(v) {
			t.Fatalf("control character in %q", v)
		}
	}
	// Whatever the client sent, each answer is one head: a single blank
	// line, at its end.
	for _, b := range [][]byte{
		AppendStreamHead(nil, c, fixedNow, req.Origin, "X-A: 1"),
		AppendHeadResponse(nil, c, fixedNow, req.Origin),
		AppendOptionsResponse(nil, c, fixedNow, req.Origin),
	} {
		if i := bytes.Index(b, []byte("\r\n\r\n")); i != len(b)-4 || bytes.Count(b, []byte("\n")) != bytes.Count(b, []byte("\r\n")) {
			t.Fatalf("answer split by client input: %q", b)
		}
	}
}

// headEndRef is the obvious definition: the end of the first line that is
// empty or a lone CR.
func headEndRef(b []byte) int {
	start := 0
	for i, c := range b {
		if c != '\n' {
			continue
		}
		if line := b[start:i]; len(line) == 0 || string(line) == "\r" {
			return i + 1
		}
		start = i + 1
	}
	return -1
}

func FuzzHeadEnd(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\n\r\n", "a\nb\n\n", "a\r\nb\r\n\r", "\r\n", "\n", "", "x\r\r\n\r\n", "\r\r\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := HeadEnd(b)
		if want := headEndRef(b); n != want {
			t.Fatalf("HeadEnd(%q) = %d, want %d", b, n, want)
		}
		if n == -1 {
			return
		}
		if n < 1 || n > len(b) || b[n-1] != '\n' {
			t.Fatalf("HeadEnd(%q) = %d: not the end of a line", b, n)
		}
		// More bytes do not move the end; the head alone is complete.
		if m := HeadEnd(append(bytes.Clone(b), "\r\n\r\nGET"...)); m != n {
			t.Fatalf("HeadEnd moved from %d to %d with more bytes", n, m)
		}
		if m := HeadEnd(b[:n]); m != n {
			t.Fatalf("head alone: %d, want %d", m, n)
		}
	})
}
