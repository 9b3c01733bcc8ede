package handshake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

var cfg = &Config{Path: "/sse"}

// statusOf returns 200 for a successful parse, else the *Error status.
func statusOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 200
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	return e.Status
}

func TestHeadEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want int
	}{
		{"CRLF head", "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", 30},
		{"LF head, body after", "GET /sse HTTP/1.1\nHost: x\n\nrest", 27},
		{"mixed CRLF then LF", "GET /sse HTTP/1.1\r\nHost: x\r\n\n", 29},
		{"mixed LF then CRLF", "GET /sse HTTP/1.1\nHost: x\n\r\n", 28},
		{"request line only", "GET /sse HTTP/1.1\r\n\r\n", 21},
		{"two pipelined heads: the first", "A\r\n\r\nB\r\n\r\n", 5},
		{"no blank line yet", "GET /sse HTTP/1.1\r\nHost: x\r\n", -1},
		{"half of the blank line", "GET /sse HTTP/1.1\r\nHost: x\r\n\r", -1},
		{"CR CR is not a blank line", "GET /sse HTTP/1.1\r\r\r\r", -1},
		{"no LF at all", "GE", -1},
		{"empty", "", -1},
		{"leading CRLF", "\r\n", 2},
		{"leading LF", "\nGET", 1},
		{"line of a lone CR", "X\r\n\r\n", 5},
		{"CR CR LF is not blank", "X\n\r\r\n\n", 6},
	} {
		if got := HeadEnd([]byte(c.in)); got != c.want {
			t.Errorf("%s: HeadEnd(%q) = %d, want %d", c.name, c.in, got, c.want)
		}
	}
}

// Every prefix of a head split over TCP segments is incomplete; the whole
// head is complete, and what follows it does not change its end.
func TestHeadEndSplit(t *testing.T) {
	for _, full := range []string{
		"GET /sse?subscribe=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
		"GET /sse?subscribe=a HTTP/1.1\nHost: x\n\n",
	} {
		for i := range len(full) {
			if got := HeadEnd([]byte(full[:i])); got != -1 {
				t.Errorf("prefix %q: HeadEnd = %d, want -1", full[:i], got)
			}
		}
		if got := HeadEnd([]byte(full)); got != len(full) {
			t.Errorf("%q: HeadEnd = %d, want %d", full, got, len(full))
		}
		if got := HeadEnd([]byte(full + "GET /x HTTP/1.1\r\n\r\n")); got != len(full) {
			t.Errorf("%q + more: HeadEnd = %d, want %d", full, got, len(full))
		}
	}
}

func TestParseStatus(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct {
		name string
		head string
		want int
	}{
		// Spec 2.2: request line and method.
		{"GET", "GET /sse?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"LF line ends", "GET /sse?subscribe=a HTTP/1.1\nHost: x\n\n", 200},
		{"no headers at all", "GET /sse?subscribe=a HTTP/1.1\r\n\r\n", 200},
		{"POST", "POST /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"PUT", "PUT /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"DELETE", "DELETE /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"TRACE", "TRACE /sse HTTP/1.1\r\n\r\n", 501},
		{"CONNECT", "CONNECT host:443 HTTP/1.1\r\n\r\n", 501},
		{"PATCH", "PATCH /sse HTTP/1.1\r\n\r\n", 501},
		{"lower-case get", "get /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"Get", "Get /sse?subscribe=a HTTP/1.1\r\n\r\n", 501},
		{"unknown method, wrong path: method first", "POST /nope HTTP/1.1\r\n\r\n", 501},
		{"unknown method, HTTP/1.0", "POST /sse HTTP/1.0\r\n\r\n", 501},
		// Garbage is 400, never 501 (spec 9.5).
		{"empty line", "\r\n", 400},
		{"empty LF line", "\n", 400},
		{"text without spaces", "hello\r\n\r\n", 400},
		{"text with spaces, no version", "hello there\r\n\r\n", 400},
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
		{"binary", "\xff\xfe\xfd \x01\x02 \x80\r\n\r\n", 400},
		{"GE (a split head judged alone by hasses)", "GE\r\n\r\n", 400},
		{"no version", "GET /sse?subscribe=a\r\n\r\n", 400},
		{"no target", "GET HTTP/1.1\r\n\r\n", 400},
		{"leading space", " GET /sse?subscribe=a HTTP/1.1\r\n\r\n", 400},
		{"tab after method", "GET\t/sse?subscribe=a HTTP/1.1\r\n\r\n", 400},
		{"bad version", "GET /sse?subscribe=a HTTP/1.1x\r\n\r\n", 400},
		{"lower-case version", "GET /sse?subscribe=a http/1.1\r\n\r\n", 400},
		{"version not digits", "GET /sse?subscribe=a HTTP/a.b\r\n\r\n", 400},
		{"three parts after target", "GET /sse?subscribe=a HTTP/1.1 x\r\n\r\n", 400},
		{"method with a slash", "GE/T /sse?subscribe=a HTTP/1.1\r\n\r\n", 400},
		{"NUL in target", "GET /sse?subscribe=a\x00 HTTP/1.1\r\n\r\n", 400},
		{"NUL in a header", "GET /sse?subscribe=a HTTP/1.1\r\nX: \x00\r\n\r\n", 400},
		{"NUL after the blank line", "GET /sse?subscribe=a HTTP/1.1\r\n\r\n\x00", 400},
		{"control byte in target", "GET /sse?subscribe=a\x01 HTTP/1.1\r\n\r\n", 400},
		{"CR inside target", "GET /sse?subscribe=a\rb HTTP/1.1\r\n\r\n", 400},
		{"DEL in target", "GET /sse?subscribe=a\x7f HTTP/1.1\r\n\r\n", 400},

		// Spec 2.3: path.
		{"repeated spaces after the method", "GET   /sse?subscribe=a HTTP/1.1\r\n\r\n", 200},
		{"repeated spaces before the version", "GET /sse?subscribe=a   HTTP/1.1\r\n\r\n", 200},
		{"trailing spaces after the version", "GET /sse?subscribe=a HTTP/1.1  \r\n\r\n", 200},
		{"/sse/", "GET /sse/ HTTP/1.1\r\n\r\n", 404},
		{"/sse/ with query", "GET /sse/?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"/ssex", "GET /ssex?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"/nope", "GET /nope?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"/SSE", "GET /SSE?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"encoded path", "GET /%73se?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"absolute form", "GET http://h/sse?subscribe=a HTTP/1.1\r\n\r\n", 404},
		{"asterisk GET", "GET * HTTP/1.1\r\n\r\n", 404},

		// Spec 2.4: version, after the path.
		{"HTTP/1.0 is served (close-delimited)", "GET /sse?subscribe=a HTTP/1.0\r\n\r\n", 200},
		{"HTTP/2.0 in a head", "GET /sse?subscribe=a HTTP/2.0\r\n\r\n", 501},
		{"HTTP/2.0", "GET /sse?subscribe=a HTTP/2.0\r\n\r\n", 501},
		{"HTTP/0.9", "GET /sse?subscribe=a HTTP/0.9\r\n\r\n", 501},
		{"wrong path and HTTP/1.0: 404 first", "GET /nope?subscribe=a HTTP/1.0\r\n\r\n", 404},
		{"HEAD HTTP/1.0", "HEAD /sse HTTP/1.0\r\n\r\n", 200},
		{"HEAD wrong path", "HEAD /nope HTTP/1.1\r\n\r\n", 404},
		{"OPTIONS HTTP/1.0", "OPTIONS /sse HTTP/1.0\r\n\r\n", 200},

		// Spec 2.5: order path, version, parameters.
		{"HTTP/1.0 without subscribe", "GET /sse?id=x HTTP/1.0\r\n\r\n", 400},
		{"HTTP/0.9 without subscribe: version first", "GET /sse?id=x HTTP/0.9\r\n\r\n", 501},
		{"wrong path without subscribe: path first", "GET /nope HTTP/1.1\r\n\r\n", 404},

		// Spec 2.6: keep-alive is not required any more (9.5).
		{"no Connection header", "GET /sse?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"Connection: close", "GET /sse?subscribe=a HTTP/1.1\r\nConnection: close\r\n\r\n", 200},
		{"connection: keep-alive", "GET /sse?subscribe=a HTTP/1.1\r\nconnection: keep-alive\r\n\r\n", 200},
		{"Connection: Keep-alive", "GET /sse?subscribe=a HTTP/1.1\r\nConnection: Keep-alive\r\n\r\n", 200},
		{"Connection: keep-alive, Upgrade", "GET /sse?subscribe=a HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n", 200},

		// Spec 2.7: parameters.
		{"empty subscribe", "GET /sse?subscribe= HTTP/1.1\r\n\r\n", 200},
		{"subscribe of dashes only", "GET /sse?subscribe=--- HTTP/1.1\r\n\r\n", 200},
		{"subscribe after other parameters", "GET /sse?x=1&id=c&subscribe=a HTTP/1.1\r\n\r\n", 200},
		{"id only", "GET /sse?id=x HTTP/1.1\r\n\r\n", 400},
		{"foo only", "GET /sse?foo=bar HTTP/1.1\r\n\r\n", 400},
		{"subscribe without =", "GET /sse?subscribe HTTP/1.1\r\n\r\n", 400},
		{"Subscribe (case matters)", "GET /sse?Subscribe=a HTTP/1.1\r\n\r\n", 400},
		{"empty query", "GET /sse? HTTP/1.1\r\n\r\n", 400},
		{"raw UTF-8 token", "GET /sse?subscribe=caf\xc3\xa9 HTTP/1.1\r\n\r\n", 200},

		// Spec 2.8: a bare GET is refused (no stale parameters).
		{"bare GET", "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", 400},

		// Spec 3.3-3.5: HEAD and OPTIONS need neither subscribe nor keep-alive.
		{"HEAD", "HEAD /sse HTTP/1.1\r\n\r\n", 200},
		{"HEAD with query", "HEAD /sse?x HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS", "OPTIONS /sse HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS with query", "OPTIONS /sse?subscribe=a HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS * two spaces", "OPTIONS *  HTTP/1.1\r\n\r\n", 200},
		{"OPTIONS * HTTP/1.0", "OPTIONS * HTTP/1.0\r\n\r\n", 200},
		{"OPTIONS * HTTP/3.0", "OPTIONS * HTTP/3.0\r\n\r\n", 501},
		{"HEAD *", "HEAD * HTTP/1.1\r\n\r\n", 404},

		// Headers.
		{"header without colon", "GET /sse?subscribe=a HTTP/1.1\r\nbad header\r\n\r\n", 400},
		{"header with empty name", "GET /sse?subscribe=a HTTP/1.1\r\n: x\r\n\r\n", 400},
		{"space before colon", "GET /sse?subscribe=a HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"obsolete line folding", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", 400},
		{"folding with a colon", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\r\n b: c\r\n\r\n", 400},
		{"control character in value", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400},
		{"bare CR in value", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
		{"DEL in value", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400},
		{"ESC in an ignored header", "GET /sse?subscribe=a HTTP/1.1\r\nAccept: \x1b[2J\r\n\r\n", 400},
		{"tab in value", "GET /sse?subscribe=a HTTP/1.1\r\nX: a\tb\r\n\r\n", 200},
		{"UTF-8 in value", "GET /sse?subscribe=a HTTP/1.1\r\nUser-Agent: \xc3\xa9\r\n\r\n", 200},
		{"empty value", "GET /sse?subscribe=a HTTP/1.1\r\nX:\r\n\r\n", 200},
		{"bad header on HEAD", "HEAD /sse HTTP/1.1\r\nbad\r\n\r\n", 400},
		{"percent-encoded CR in lastEventId", "GET /sse?subscribe=a&lastEventId=%0D HTTP/1.1\r\n\r\n", 400},
		{"initid neither 0 nor 1", "GET /sse?subscribe=a&initid=no HTTP/1.1\r\n\r\n", 400},

		// Limits (defaults 64 tokens, 256 bytes per token and id, 8192 head).
		{"token of 256 bytes", "GET /sse?subscribe=" + long(256) + " HTTP/1.1\r\n\r\n", 200},
		{"token of 257 bytes", "GET /sse?subscribe=" + long(257) + " HTTP/1.1\r\n\r\n", 400},
		{"long piece between dashes", "GET /sse?subscribe=a-" + long(257) + "-b HTTP/1.1\r\n\r\n", 400},
		{"id of 256 bytes", "GET /sse?subscribe=a&id=" + long(256) + " HTTP/1.1\r\n\r\n", 200},
		{"id of 257 bytes", "GET /sse?subscribe=a&id=" + long(257) + " HTTP/1.1\r\n\r\n", 400},
		{"long id overridden by a later id", "GET /sse?subscribe=a&id=" + long(300) + "&id=b HTTP/1.1\r\n\r\n", 200},
		{"65 duplicates of one token", "GET /sse?subscribe=" + strings.Repeat("t-", 65) + " HTTP/1.1\r\n\r\n", 200},
		{"64 tokens", "GET /sse?subscribe=" + distinct(64) + " HTTP/1.1\r\n\r\n", 200},
		{"65 tokens", "GET /sse?subscribe=" + distinct(65) + " HTTP/1.1\r\n\r\n", 400},
		{"head of 8192 bytes", padHead(8192), 200},
		{"head of 8193 bytes", padHead(8193), 431},
		{"head of 64 KiB", "GET /sse?subscribe=" + long(64<<10) + " HTTP/1.1\r\n\r\n", 431},
		{"431 before anything else", "\x00" + long(9000), 431},
	} {
		_, err := Parse([]byte(c.head), cfg)
		if got := statusOf(t, err); got != c.want {
			t.Errorf("%s: %.80q: status %d (%v), want %d", c.name, c.head, got, err, c.want)
		}
	}
}

// distinct returns n distinct tokens joined by '-'.
func distinct(n int) string {
	toks := make([]string, n)
	for i := range toks {
		toks[i] = fmt.Sprintf("t%d", i)
	}
	return strings.Join(toks, "-")
}

// padHead returns a valid GET head of exactly n bytes.
func padHead(n int) string {
	const pre, post = "GET /sse?subscribe=a HTTP/1.1\r\nX-Pad: ", "\r\n\r\n"
	return pre + strings.Repeat("p", n-len(pre)-len(post)) + post
}

func TestParseFields(t *testing.T) {
	for _, c := range []struct {
		name   string
		head   string
		tokens []string
		id     string
		lastID string
	}{
		{"plain", "GET /sse?subscribe=a-b-c&id=c1 HTTP/1.1\r\n\r\n", []string{"a", "b", "c"}, "c1", ""},
		{"empty pieces skipped", "GET /sse?subscribe=-a-b--c- HTTP/1.1\r\n\r\n", []string{"a", "b", "c"}, "", ""},
		{"empty subscribe: no tokens", "GET /sse?subscribe= HTTP/1.1\r\n\r\n", nil, "", ""},
		{"duplicates removed, first order kept", "GET /sse?subscribe=b-a-b-a-c HTTP/1.1\r\n\r\n", []string{"b", "a", "c"}, "", ""},
		{"star kept as a token", "GET /sse?subscribe=*-room HTTP/1.1\r\n\r\n", []string{"*", "room"}, "", ""},
		{"prefix star kept raw", "GET /sse?subscribe=ro*m HTTP/1.1\r\n\r\n", []string{"ro*m"}, "", ""},
		{"%2D is not a separator, not decoded", "GET /sse?subscribe=pc%2Dx-caf%C3%A9 HTTP/1.1\r\n\r\n", []string{"pc%2Dx", "caf%C3%A9"}, "", ""},
		{"raw UTF-8 kept", "GET /sse?subscribe=caf\xc3\xa9-\xe6\x97\xa5 HTTP/1.1\r\n\r\n", []string{"caf\xc3\xa9", "\xe6\x97\xa5"}, "", ""},
		{"encoded and raw forms differ", "GET /sse?subscribe=caf%C3%A9-caf\xc3\xa9 HTTP/1.1\r\n\r\n", []string{"caf%C3%A9", "caf\xc3\xa9"}, "", ""},
		{"plus and slash kept", "GET /sse?subscribe=a+b-c/d HTTP/1.1\r\n\r\n", []string{"a+b", "c/d"}, "", ""},
		{"last subscribe and id win", "GET /sse?subscribe=old&id=o&x=1&subscribe=new&id=n HTTP/1.1\r\n\r\n", []string{"new"}, "n", ""},
		{"last empty subscribe wins", "GET /sse?subscribe=old&subscribe= HTTP/1.1\r\n\r\n", nil, "", ""},
		{"id raw", "GET /sse?subscribe=a&id=c%2D1 HTTP/1.1\r\n\r\n", []string{"a"}, "c%2D1", ""},
		{"empty parameters between &", "GET /sse?&&subscribe=a&&id=x& HTTP/1.1\r\n\r\n", []string{"a"}, "x", ""},
		{"lastEventId decoded", "GET /sse?subscribe=a&lastEventId=1a%2D7 HTTP/1.1\r\n\r\n", []string{"a"}, "", "1a-7"},
		{"lastEventId bad escape kept raw", "GET /sse?subscribe=a&lastEventId=x%zz HTTP/1.1\r\n\r\n", []string{"a"}, "", "x%zz"},
		{"lastEventId last wins", "GET /sse?subscribe=a&lastEventId=1&lastEventId=2 HTTP/1.1\r\n\r\n", []string{"a"}, "", "2"},
		{"Last-Event-ID header wins", "GET /sse?subscribe=a&lastEventId=q HTTP/1.1\r\nLast-Event-ID: h-1\r\n\r\n", []string{"a"}, "", "h-1"},
		{"header name case-insensitive", "GET /sse?subscribe=a HTTP/1.1\r\nlast-event-id: h-2\r\n\r\n", []string{"a"}, "", "h-2"},
		{"first header of a kind wins", "GET /sse?subscribe=a HTTP/1.1\r\nLast-Event-ID: 1\r\nLast-Event-ID: 2\r\n\r\n", []string{"a"}, "", "1"},
		{"lastEventId is not a prefix match", "GET /sse?subscribe=a&lastEventIdx=9 HTTP/1.1\r\n\r\n", []string{"a"}, "", ""},
		{"bytes after the blank line ignored", "GET /sse?subscribe=a HTTP/1.1\r\n\r\nLast-Event-ID: x\r\n\r\n", []string{"a"}, "", ""},
	} {
		req, err := Parse([]byte(c.head), cfg)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if req.Method != "GET" || !slices.Equal(req.Tokens, c.tokens) || req.ID != c.id || req.LastEventID != c.lastID {
			t.Errorf("%s: got method %q tokens %q id %q lastID %q, want tokens %q id %q lastID %q",
				c.name, req.Method, req.Tokens, req.ID, req.LastEventID, c.tokens, c.id, c.lastID)
		}
	}
}

func TestInitID(t *testing.T) {
	for q, want := range map[string]bool{"": false, "&initid=1": false, "&initid=0": true, "&initid=0&initid=1": false} {
		req, err := Parse([]byte("GET /sse?subscribe=a"+q+" HTTP/1.1\r\n\r\n"), cfg)
		if err != nil || req.NoInitID != want {
			t.Errorf("%q: NoInitID %v, %v; want %v", q, req.NoInitID, err, want)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	head := "GET /sse?subscribe=a&access_token=x.y%2Bz HTTP/1.1\r\n" +
		"Host: x\r\n" +
		"uSER-aGENT: \t UA/1 (X11)\t \r\n" +
		"Origin: https://o.example\r\n" +
		"Cookie: k=v; hasses_token=t\r\n" +
		"AUTHORIZATION: Bearer abc\r\n" +
		"Last-Event-ID:\r\n" + // empty, and first: the parameter may apply
		"Connection: keep-alive\r\n\r\n"
	req, err := Parse([]byte(head), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Method: "GET", Tokens: []string{"a"}, UserAgent: "UA/1 (X11)", Origin: "https://o.example",
		Cookie: "k=v; hasses_token=t", Authorization: "Bearer abc", AccessToken: "x.y+z"}
	if fmt.Sprint(*req) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", *req, want)
	}
	for _, m := range []string{"HEAD", "OPTIONS"} {
		req, err := Parse([]byte(m+" /sse HTTP/1.1\r\nOrigin: https://p\r\nUser-Agent: u\r\n\r\n"), cfg)
		if err != nil || req.Method != m || req.Origin != "https://p" || req.UserAgent != "u" || req.Tokens != nil {
			t.Errorf("%s: %+v %v", m, req, err)
		}
	}
}

// The Request must not alias the head: the epoll loop reuses its read
// buffer for the next connection.
func TestParseDoesNotAliasHead(t *testing.T) {
	head := []byte("GET /sse?subscribe=room-user&id=c1&lastEventId=e1 HTTP/1.1\r\nUser-Agent: ua\r\n" +
		"Origin: o\r\nCookie: c\r\nAuthorization: a\r\n\r\n")
	req, err := Parse(head, cfg)
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(*req)
	for i := range head {
		head[i] = 'X'
	}
	if after := fmt.Sprint(*req); after != before {
		t.Errorf("request changed with the buffer: %s -> %s", before, after)
	}
}

func TestLimitsFromConfig(t *testing.T) {
	c := &Config{Path: "/ev", MaxHeadBytes: 100, MaxTokens: 2, MaxTokenLen: 3, MaxIDLen: 4}
	for _, tc := range []struct {
		target string
		want   int
		reason string
	}{
		{"/ev?subscribe=abc-def&id=1234", 200, ""},
		{"/ev?subscribe=abc-def-abc-def&id=1234", 200, ""}, // duplicates do not count
		{"/ev?subscribe=abc-def-g", 400, "more than 2 tokens"},
		{"/ev?subscribe=abcd", 400, "token longer than 3 bytes"},
		{"/ev?subscribe=a&id=12345", 400, "id longer than 4 bytes"},
		{"/sse?subscribe=a", 404, `no stream at "/sse"`},
		{"/ev?subscribe=a&x=" + strings.Repeat("x", 100), 431, "over 100 bytes"},
	} {
		_, err := Parse([]byte("GET "+tc.target+" HTTP/1.1\r\n\r\n"), c)
		if got := statusOf(t, err); got != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.target, got, err, tc.want)
		} else if err != nil && !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %q does not say %q", tc.target, err, tc.reason)
		}
	}
	if !TooLarge(101, c) || TooLarge(100, c) || !TooLarge(8193, nil) || TooLarge(8192, &Config{}) {
		t.Error("TooLarge does not apply the cap (100, default 8192)")
	}
	neg := &Config{Path: "/sse", MaxTokens: -1, MaxTokenLen: -1, MaxIDLen: -1, MaxHeadBytes: -1}
	if _, err := Parse([]byte("GET /sse?subscribe="+distinct(64)+"&id=x HTTP/1.1\r\n\r\n"), neg); err != nil {
		t.Errorf("negative limits must mean the defaults: %v", err)
	}
}

// Long token lists switch to a set for duplicate detection, and many
// duplicates make the kept string compact; the result must be the same.
func TestManyTokensDedup(t *testing.T) {
	c := &Config{Path: "/sse", MaxTokens: 1000}
	var in, want []string
	for i := range 200 {
		tok := fmt.Sprintf("k%d", i%150)
		in = append(in, tok, "", tok)
		if i < 150 {
			want = append(want, tok)
		}
	}
	req, err := Parse([]byte("GET /sse?subscribe="+strings.Join(in, "-")+"&id=client-1 HTTP/1.1\r\n\r\n"), c)
	if err != nil {
		t.Fatal(err)
	}
	if req.ID != "client-1" {
		t.Errorf("id %q", req.ID)
	}
	if !slices.Equal(req.Tokens, want) {
		t.Errorf("got %d tokens %q..., want %d", len(req.Tokens), req.Tokens[:min(5, len(req.Tokens))], len(want))
	}
	c.MaxTokens = 100
	if _, err := Parse([]byte("GET /sse?subscribe="+strings.Join(in, "-")+" HTTP/1.1\r\n\r\n"), c); statusOf(t, err) != 400 {
		t.Errorf("150 distinct tokens over a cap of 100: %v", err)
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse([]byte("POST\x1b /sse HTTP/1.1\r\n\r\n"), cfg)
	if got := err.Error(); got != "400 Bad Request: malformed request line" {
		t.Errorf("Error() = %q", got)
	}
	_, err = Parse([]byte("GET /sse?subscribe=a HTTP/2.0\r\n\r\n"), cfg)
	if got := err.Error(); got != "501 Not Implemented: only HTTP/1.1 and HTTP/1.0 are served, not HTTP/2.0" {
		t.Errorf("Error() = %q", got)
	}
	// Client bytes are quoted: no control characters reach a log line.
	_, err = Parse([]byte("GET /\x1b[31m HTTP/1.1\r\n\r\n"), cfg)
	if statusOf(t, err) != 400 {
		t.Errorf("escape in target: %v", err)
	}
	_, err = Parse([]byte("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), cfg)
	if got := err.Error(); got != `404 Not Found: no stream at "/café"` {
		t.Errorf("Error() = %q", got)
	}
}

func TestNilConfig(t *testing.T) {
	if _, err := Parse([]byte("GET /sse?subscribe=a HTTP/1.1\r\n\r\n"), nil); statusOf(t, err) != 404 {
		t.Errorf("nil config (empty path): %v", err)
	}
	if _, err := Parse([]byte("OPTIONS * HTTP/1.1\r\n\r\n"), nil); err != nil {
		t.Errorf("OPTIONS * with nil config: %v", err)
	}
	now := fixedNow
	for _, b := range [][]byte{AppendStreamHead(nil, nil, now, ""), AppendHeadResponse(nil, nil, now, ""),
		AppendOptionsResponse(nil, nil, now, ""), AppendError(nil, nil, 400, now)} {
		if !bytes.Contains(b, []byte("Access-Control-Allow-Origin: *\r\n")) {
			t.Errorf("nil config answer: %q", b)
		}
	}
}

// The TLS front end parses with net/http and then FromHTTP: for heads that
// net/http accepts, both paths must agree.
func TestFromHTTPAgreesWithParse(t *testing.T) {
	for _, head := range []string{
		"GET /sse?subscribe=a-b--a&id=c1&lastEventId=x%2D1 HTTP/1.1\r\nHost: h\r\nUser-Agent: u\r\nOrigin: o\r\n\r\n",
		"GET /sse?subscribe=pc%2Dx-caf%C3%A9 HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 5\r\nCookie: c=1\r\nAuthorization: B t\r\n\r\n",
		"GET /sse?subscribe= HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse? HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse?id=1 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse/ HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse?subscribe=" + strings.Repeat("a", 257) + " HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /sse?subscribe=" + distinct(65) + " HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /sse HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS /sse?x HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /sse?subscribe=a HTTP/1.1\r\nHost: h\r\n\r\n",
		"PUT /nope HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("%q: net/http: %v", head, err)
		}
		path := r.URL.EscapedPath()
		if r.RequestURI == "*" {
			path = "*"
		}
		got, gerr := FromHTTP(r.Method, path, r.URL.RawQuery, r.URL.RawQuery != "" || r.URL.ForceQuery, r.Header, cfg)
		want, werr := Parse([]byte(head), cfg)
		if statusOf(t, gerr) != statusOf(t, werr) {
			t.Errorf("%.60q: FromHTTP %v, Parse %v", head, gerr, werr)
			continue
		}
		if gerr == nil && fmt.Sprint(*got) != fmt.Sprint(*want) {
			t.Errorf("%.60q:\nFromHTTP %+v\nParse    %+v", head, *got, *want)
		}
	}
}

// Parse allocates what the stream keeps and little else. A stream on 64
// tokens of its own (per-user style) costs no more than one on a single
// token: a connect storm of them once left a duplicate-check map per
// request for the collector.
func TestParseAllocs(t *testing.T) {
	for _, c := range []struct {
		name string
		head []byte
		max  float64
	}{
		{"a browser request", browserHead(), 5}, // Request, tokens+id string, tokens slice, User-Agent, Origin
		{"a request on 64 tokens", []byte("GET /sse?subscribe=" + distinct(64) + "&id=u1 HTTP/1.1\r\n\r\n"), 3},
	} {
		n := testing.AllocsPerRun(100, func() {
			if _, err := Parse(c.head, cfg); err != nil {
				t.Fatal(err)
			}
		})
		if n > c.max {
			t.Errorf("Parse of %s: %v allocations, want at most %v", c.name, n, c.max)
		}
	}
}

// Duplicates are dropped, first occurrence kept, whichever set finds them:
// the linear scan, the table (up to 127 tokens) or the map (a raised
// -max-tokens).
func TestTokenDuplicates(t *testing.T) {
	for _, n := range []int{5, 64, 127, 128, 300} {
		c := *cfg
		c.MaxTokens = 400
		var pieces, want []string
		for i := range n {
			tok := fmt.Sprintf("t%d", i*7919%1000)
			want = append(want, tok)
			pieces = append(pieces, tok, want[i/2]) // each new token, then an earlier one again
		}
		req, err := Parse([]byte("GET /sse?subscribe="+strings.Join(pieces, "-")+" HTTP/1.1\r\n\r\n"), &c)
		if err != nil {
			t.Fatalf("%d tokens: %v", n, err)
		}
		if !slices.Equal(req.Tokens, want) {
			t.Fatalf("%d tokens: got %d, want %d distinct in order", n, len(req.Tokens), len(want))
		}
	}
}

func TestScriptRequest(t *testing.T) {
	for _, c := range []struct {
		head   string
		script bool
		status int
	}{
		{"GET /hasses.js HTTP/1.1\r\n\r\n", true, 0},
		{"HEAD /hasses.js HTTP/1.1\r\n\r\n", true, 0},
		{"GET /hasses.js?v=2 HTTP/1.0\r\n\r\n", true, 0},
		{"OPTIONS /hasses.js HTTP/1.1\r\n\r\n", false, 404},
		{"GET /hasses.js HTTP/2.0\r\n\r\n", false, 501},
		{"GET /other.js HTTP/1.1\r\n\r\n", false, 404},
	} {
		req, err := Parse([]byte(c.head), cfg)
		var he *Error
		if errors.As(err, &he) && he.Status != c.status || err == nil && (c.status != 0 || req.Script != c.script) {
			t.Errorf("%q: %+v, %v; want script %v, status %d", c.head, req, err, c.script, c.status)
		}
	}
	// The stream path wins over the helper's.
	if req, err := Parse([]byte("GET /hasses.js?subscribe=a HTTP/1.1\r\n\r\n"), &Config{Path: "/hasses.js"}); err != nil || req.Script {
		t.Errorf("stream at /hasses.js: %+v, %v", req, err)
	}
}
