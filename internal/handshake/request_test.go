package handshake

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var cfg = &Config{Path: "/sse"}

func status(head string) int {
	_, err := Parse([]byte(head), cfg)
	if err == nil {
		return 200
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return -1
}

func TestHeadEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
	}{
		{"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", 30},
		{"GET /sse HTTP/1.1\nHost: x\n\nrest", 27},
		{"GET /sse HTTP/1.1\r\nHost: x\r\n", -1},
		{"GE", -1},
		{"", -1},
		{"\r\n", 2},
	} {
		if got := HeadEnd([]byte(c.in)); got != c.want {
			t.Errorf("HeadEnd(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestStatuses(t *testing.T) {
	for _, c := range []struct {
		head string
		want int
	}{
		{"GET /sse?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"GET  /sse?subscribe=a HTTP/1.1\r\n\r\n", 200}, // repeated spaces, as hasses
		{"GET /sse?subscribe= HTTP/1.1\r\n\r\n", 200},
		{"GET /sse?subscribe=a HTTP/1.0\r\n\r\n", 501},
		{"GET /sse?subscribe=a HTTP/2.0\r\n\r\n", 501},
		{"GET /nope?subscribe=a HTTP/1.0\r\n\r\n", 404}, // path before version
		{"GET /sse/ HTTP/1.1\r\n\r\n", 404},
		{"GET /ssex HTTP/1.1\r\n\r\n", 404},
		{"GET http://h/sse?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"GET /sse HTTP/1.1\r\n\r\n", 400},
		{"GET /sse?id=x HTTP/1.1\r\n\r\n", 400},
		{"GET /sse?foo=bar HTTP/1.1\r\n\r\n", 400},
		{"POST /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"get /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"HEAD /sse HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS /sse?x HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS * HTTP/1.1\r\n\r\n", 200},
		{"\r\n", 400},
		{"hello\r\n\r\n", 400},
		{"\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n", 400},
		{"GET /sse?subscribe=a HTTP/1.1\r\nbad header\r\n\r\n", 400},
		{"GET /sse?subscribe=a HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400},
		{"GET /sse?subscribe=a\x00 HTTP/1.1\r\n\r\n", 400},
		{"GET /sse?subscribe=" + strings.Repeat("a", 257) + " HTTP/1.1\r\n\r\n", 400},
		{"GET /sse?subscribe=a&id=" + strings.Repeat("i", 257) + " HTTP/1.1\r\n\r\n", 400},
		{"GET /sse?subscribe=" + strings.Repeat("t-", 65) + " HTTP/1.1\r\n\r\n", 200}, // duplicates collapse
		{"GET /sse?subscribe=" + strings.Repeat("a", 9000) + " HTTP/1.1\r\n\r\n", 431},
	} {
		if got := status(c.head); got != c.want {
			t.Errorf("%.60q: status %d, want %d", c.head, got, c.want)
		}
	}
	many := make([]string, 65)
	for i := range many {
		many[i] = strings.Repeat("x", i+1)
	}
	if got := status("GET /sse?subscribe=" + strings.Join(many, "-") + " HTTP/1.1\r\n\r\n"); got != 400 {
		t.Errorf("65 tokens: status %d, want 400", got)
	}
}

func TestParseFields(t *testing.T) {
	req, err := Parse([]byte("GET /sse?x=1&subscribe=old&subscribe=pc%2Dx--caf%C3%A9-*-pc%2Dx&id=c1&lastEventId=a%2D7 HTTP/1.1\r\n"+
		"Host: x\r\nuser-agent: UA/1\r\nOrigin: https://o\r\nCookie: k=v\r\nAuthorization: Bearer t\r\n\r\n"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(req.Tokens, ","); got != "pc%2Dx,caf%C3%A9,*" {
		t.Errorf("tokens %q", got)
	}
	if req.ID != "c1" || req.LastEventID != "a-7" || req.UserAgent != "UA/1" || req.Origin != "https://o" ||
		req.Cookie != "k=v" || req.Authorization != "Bearer t" {
		t.Errorf("fields %+v", req)
	}
	req, _ = Parse([]byte("GET /sse?subscribe=a&lastEventId=q HTTP/1.1\r\nLast-Event-ID: h-1\r\n\r\n"), cfg)
	if req.LastEventID != "h-1" {
		t.Errorf("the Last-Event-ID header must win over the parameter: %q", req.LastEventID)
	}
}

func TestAnswers(t *testing.T) {
	now := time.Date(2026, 11, 2, 7, 5, 27, 0, time.UTC)
	c := &Config{Path: "/sse", CORSBase: "https://a"}
	got := string(AppendStreamHead(nil, c, now, "", "X-Extra: 1"))
	want := "HTTP/1.1 200 OK\r\nDate: Mon, 02 Nov 2026 07:05:27 GMT\r\nServer: hasses-go\r\n" +
		"Access-Control-Allow-Origin: https://a\r\nAccess-Control-Allow-Methods: GET\r\n" +
		"Access-Control-Allow-Headers: cache-control, last-event-id, X-Requested-With\r\n" +
		"Cache-Control: no-cache\r\nKeep-Alive: timeout=300, max=100\r\nConnection: Keep-Alive\r\n" +
		"X-Accel-Buffering: no\r\nX-Extra: 1\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
	if got != want {
		t.Errorf("stream head:\n%q\nwant\n%q", got, want)
	}
	e := string(AppendError(nil, c, 404, now))
	head, body, _ := strings.Cut(e, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 404 Not Found\r\n") || !strings.Contains(head, "Connection: close") ||
		!strings.Contains(head, "Content-Length: "+strconv.Itoa(len(body))) || !strings.Contains(body, "404 Not Found") {
		t.Errorf("404 answer %q", e)
	}
	if s := string(AppendError(nil, c, 501, now)); !strings.Contains(s, "Allow: GET, HEAD, OPTIONS") {
		t.Errorf("501 without Allow: %q", s)
	}
	if s := string(AppendHeadResponse(nil, c, now, "")); !strings.Contains(s, "Content-Type: text/event-stream") {
		t.Errorf("HEAD answer %q", s)
	}
	if s := string(AppendOptionsResponse(nil, c, now, "")); !strings.Contains(s, "Access-Control-Allow-Headers") {
		t.Errorf("OPTIONS answer %q", s)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"GET /sse?subscribe=a-b&id=x HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /sse HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"GET /sse?subscribe=*&lastEventId=a-1 HTTP/1.1\nLast-Event-ID: b-2\n\n",
		"POST / HTTP/1.1\r\n\r\n",
		"\x16\x03\x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		req, err := Parse(head, cfg)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 599 {
				t.Fatalf("error %v is not an *Error with a 4xx/5xx status", err)
			}
			return
		}
		switch req.Method {
		case "GET", "HEAD", "OPTIONS":
		default:
			t.Fatalf("method %q", req.Method)
		}
		for _, tok := range req.Tokens {
			if tok == "" || strings.Contains(tok, "-") || len(tok) > DefaultMaxTokenLen {
				t.Fatalf("bad token %q", tok)
			}
		}
		if len(req.Tokens) > DefaultMaxTokens || len(req.ID) > DefaultMaxIDLen {
			t.Fatalf("limits exceeded: %d tokens, id %d bytes", len(req.Tokens), len(req.ID))
		}
		if strings.ContainsAny(req.LastEventID, "\r\n\x00") {
			t.Fatalf("control characters in Last-Event-ID %q", req.LastEventID)
		}
	})
}

func FuzzHeadEnd(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte("a\nb\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := HeadEnd(b)
		if n < -1 || n > len(b) {
			t.Fatalf("HeadEnd = %d for %d bytes", n, len(b))
		}
		if n > 0 && b[n-1] != '\n' {
			t.Fatalf("head does not end at a newline")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	head := []byte("GET /sse?subscribe=room1-user42&id=c42 HTTP/1.1\r\nHost: example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0\r\nAccept: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\nConnection: keep-alive\r\nOrigin: https://example.com\r\n" +
		"Referer: https://example.com/app\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(head, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestOriginList(t *testing.T) {
	c := &Config{Path: "/sse", Origins: []string{"https://a.example"}}
	now := time.Unix(0, 0)
	head := string(AppendStreamHead(nil, c, now, "https://a.example"))
	if !strings.Contains(head, "Access-Control-Allow-Origin: https://a.example\r\n") ||
		!strings.Contains(head, "Access-Control-Allow-Credentials: true") || !strings.Contains(head, "Vary: Origin") {
		t.Errorf("listed origin: %q", head)
	}
	if _, err := Parse([]byte("GET /sse?subscribe=a HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n"), c); err == nil ||
		err.(*Error).Status != 403 {
		t.Errorf("unlisted origin: %v", err)
	}
	if _, err := Parse([]byte("GET /sse?subscribe=a HTTP/1.1\r\n\r\n"), c); err != nil {
		t.Errorf("no Origin (not a browser): %v", err)
	}
	any := &Config{Path: "/sse", Origins: []string{"*"}}
	if allow, creds, ok := any.AllowOrigin("https://x"); allow != "https://x" || creds || !ok {
		t.Errorf("* in the list: %q %v %v", allow, creds, ok)
	}
}
