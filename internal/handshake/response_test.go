package handshake

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A day below 10, where hasses dropped the leading zero (spec 3.1).
var fixedNow = time.Date(2026, 11, 2, 7, 5, 27, 0, time.UTC)

const (
	goldenDate = "Date: Mon, 02 Nov 2026 07:05:27 GMT\r\n"
	goldenCORS = "Access-Control-Allow-Methods: GET\r\n" +
		"Access-Control-Allow-Headers: cache-control, last-event-id, X-Requested-With\r\n"
)

func TestStreamHeadGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   *Config
		extra []string
		want  string
	}{
		{"default origin", &Config{Path: "/sse"}, nil,
			"HTTP/1.1 200 OK\r\n" + goldenDate + "Server: hasses-go\r\n" +
				"Access-Control-Allow-Origin: *\r\n" + goldenCORS +
				"Cache-Control: no-cache\r\nKeep-Alive: timeout=300, max=100\r\nConnection: Keep-Alive\r\n" +
				"X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"},
		{"cors base and extra lines", &Config{Path: "/sse", CORSBase: "https://a"},
			[]string{"X-Extra: 1", "", "X-Bad: a\r\nInjected: 1", "X-Two: 2"},
			"HTTP/1.1 200 OK\r\n" + goldenDate + "Server: hasses-go\r\n" +
				"Access-Control-Allow-Origin: https://a\r\n" + goldenCORS +
				"Cache-Control: no-cache\r\nKeep-Alive: timeout=300, max=100\r\nConnection: Keep-Alive\r\n" +
				"X-Accel-Buffering: no\r\nX-Extra: 1\r\nX-Two: 2\r\n" +
				"Transfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"},
	} {
		if got := string(AppendStreamHead(nil, c.cfg, fixedNow, "https://ignored", c.extra...)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestHeadAndOptionsGolden(t *testing.T) {
	c := &Config{Path: "/sse", CORSBase: "https://a"}
	common := "HTTP/1.1 200 OK\r\n" + goldenDate + "Accept: text/*\r\nServer: hasses-go\r\nCache-control: no-cache\r\n" +
		"Access-Control-Allow-Origin: https://a\r\n" + goldenCORS + "Allow: GET, HEAD, OPTIONS\r\n"
	if got, want := string(AppendHeadResponse(nil, c, fixedNow, "")),
		common+"Keep-Alive: timeout=300, max=100\r\nContent-Type: text/event-stream\r\n\r\n"; got != want {
		t.Errorf("HEAD:\n got %q\nwant %q", got, want)
	}
	if got, want := string(AppendOptionsResponse(nil, c, fixedNow, "")),
		common+"Accept-Encoding:\r\nKeep-Alive: timeout=300, max=100\r\n\r\n"; got != want {
		t.Errorf("OPTIONS:\n got %q\nwant %q", got, want)
	}
}

func TestErrorGolden(t *testing.T) {
	body404 := "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n"
	want404 := "HTTP/1.1 404 Not Found\r\n" + goldenDate + "Server: hasses-go\r\n" +
		"Access-Control-Allow-Origin: *\r\n" + goldenCORS +
		"Content-Length: " + strconv.Itoa(len(body404)) + "\r\nConnection: close\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n" + body404
	if got := string(AppendError(nil, cfg, 404, fixedNow)); got != want404 {
		t.Errorf("404:\n got %q\nwant %q", got, want404)
	}
	body501 := "<html><head><title>501 Not Implemented</title></head><body><h1>501 Not Implemented</h1></body></html>\n"
	want501 := "HTTP/1.1 501 Not Implemented\r\n" + goldenDate + "Server: hasses-go\r\n" +
		"Allow: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Origin: *\r\n" + goldenCORS +
		"Content-Length: " + strconv.Itoa(len(body501)) + "\r\nConnection: close\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n" + body501
	if got := string(AppendError(nil, cfg, 501, fixedNow)); got != want501 {
		t.Errorf("501:\n got %q\nwant %q", got, want501)
	}
}

// Every error answer is a valid HTTP/1.1 response that net/http reads with
// the right status, body length, and close.
func TestErrorAnswersParse(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 405, 413, 429, 431, 500, 501, 503, 599, 0, -1, 1000} {
		b := AppendError(nil, cfg, status, fixedNow)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
		if err != nil {
			t.Errorf("%d: %v in %q", status, err, b)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		want := status
		if status < 100 || status > 999 {
			want = 500
		}
		text := http.StatusText(want)
		if text == "" {
			text = "Error"
		}
		switch {
		case err != nil:
			t.Errorf("%d: body: %v", status, err)
		case resp.StatusCode != want || resp.Status != strconv.Itoa(want)+" "+text:
			t.Errorf("%d: status %q", status, resp.Status)
		case !resp.Close || !bytes.Contains(b, []byte("\r\nConnection: close\r\n")):
			t.Errorf("%d: not closing: %q", status, b)
		case resp.ContentLength != int64(len(body)) || !bytes.Contains(body, []byte(strconv.Itoa(want)+" "+text)):
			t.Errorf("%d: Content-Length %d, body %q", status, resp.ContentLength, body)
		case bytes.Count(body, []byte("\n")) != 1 || body[len(body)-1] != '\n':
			t.Errorf("%d: body is not one line: %q", status, body)
		case resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Server") != ServerName:
			t.Errorf("%d: headers %v", status, resp.Header)
		case resp.Header.Get("Access-Control-Allow-Origin") != "*":
			t.Errorf("%d: no CORS header: %v", status, resp.Header)
		case (want == 501 || want == 405) != (resp.Header.Get("Allow") == "GET, HEAD, OPTIONS"):
			t.Errorf("%d: Allow %q", status, resp.Header.Get("Allow"))
		}
		if d, err := http.ParseTime(resp.Header.Get("Date")); err != nil || !d.Equal(fixedNow) {
			t.Errorf("%d: Date %q: %v", status, resp.Header.Get("Date"), err)
		}
	}
}

// The 200 answers are valid too: a stream head opens a chunked body, HEAD
// and OPTIONS bodies are empty.
func TestSuccessAnswersParse(t *testing.T) {
	c := &Config{Path: "/sse", CORSBase: "https://a"}
	stream := AppendStreamHead(nil, c, fixedNow, "")
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(stream),
		strings.NewReader("6\r\ndata: \r\n0\r\n\r\n"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "data: " || resp.TransferEncoding[0] != "chunked" ||
		resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("stream head: %v %q %v", err, body, resp.Header)
	}

	head := AppendHeadResponse(nil, c, fixedNow, "")
	resp, err = http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: "HEAD"})
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "" || bytes.Contains(head, []byte("Connection")) {
		t.Errorf("HEAD answer: %v %v", err, resp)
	}

	opt := AppendOptionsResponse(nil, c, fixedNow, "")
	resp, err = http.ReadResponse(bufio.NewReader(bytes.NewReader(opt)), &http.Request{Method: "OPTIONS"})
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://a" {
		t.Fatalf("OPTIONS answer: %v %v", err, resp)
	}
	if body, err := io.ReadAll(resp.Body); err != nil || len(body) != 0 {
		t.Errorf("OPTIONS body %q %v (ends at close)", body, err)
	}
	if _, ok := resp.Header["Accept-Encoding"]; !ok || resp.Header.Get("Content-Length") != "" {
		t.Errorf("OPTIONS headers: %v", resp.Header)
	}
}

func TestDate(t *testing.T) {
	tz := time.FixedZone("X", -7*3600)
	now := time.Date(2026, 1, 5, 23, 30, 0, 0, tz) // 06:30 UTC the next day
	b := string(AppendError(nil, cfg, 400, now))
	if !strings.Contains(b, "\r\nDate: Tue, 06 Jan 2026 06:30:00 GMT\r\n") {
		t.Errorf("Date not in UTC RFC 9110 form: %q", b)
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	pre := []byte("prefix")
	for name, b := range map[string][]byte{
		"stream":  AppendStreamHead(bytes.Clone(pre), cfg, fixedNow, ""),
		"head":    AppendHeadResponse(bytes.Clone(pre), cfg, fixedNow, ""),
		"options": AppendOptionsResponse(bytes.Clone(pre), cfg, fixedNow, ""),
		"error":   AppendError(bytes.Clone(pre), cfg, 400, fixedNow),
	} {
		if !bytes.HasPrefix(b, []byte("prefixHTTP/1.1 ")) {
			t.Errorf("%s: %q", name, b)
		}
	}
}

func TestOriginList(t *testing.T) {
	c := &Config{Path: "/sse", Origins: []string{"https://a.example"}}
	head := string(AppendStreamHead(nil, c, fixedNow, "https://a.example"))
	if !strings.Contains(head, "Access-Control-Allow-Origin: https://a.example\r\nVary: Origin\r\n"+
		"Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Methods: GET\r\n") {
		t.Errorf("listed origin: %q", head)
	}
	if s := string(AppendOptionsResponse(nil, c, fixedNow, "https://a.example")); !strings.Contains(s,
		"Access-Control-Allow-Origin: https://a.example\r\n") {
		t.Errorf("preflight from a listed origin: %q", s)
	}
	if s := string(AppendError(nil, c, 403, fixedNow)); strings.Contains(s, "Access-Control-Allow-Origin") {
		t.Errorf("error answers must not allow an arbitrary origin: %q", s)
	}
	_, err := Parse([]byte("GET /sse?subscribe=a HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n"), c)
	if statusOf(t, err) != 403 {
		t.Errorf("unlisted origin: %v", err)
	}
	if _, err := Parse([]byte("OPTIONS /sse HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n"), c); statusOf(t, err) != 403 {
		t.Errorf("preflight from an unlisted origin: %v", err)
	}
	if _, err := Parse([]byte("GET /sse?subscribe=a HTTP/1.1\r\n\r\n"), c); err != nil {
		t.Errorf("no Origin (not a browser): %v", err)
	}
	star := &Config{Path: "/sse", Origins: []string{"*"}}
	if allow, creds, ok := star.AllowOrigin("https://x"); allow != "https://x" || creds || !ok {
		t.Errorf("* in the list: %q %v %v", allow, creds, ok)
	}
}

func TestNetHTTPHeaders(t *testing.T) {
	h := http.Header{}
	SetStreamHeaders(h, &Config{CORSBase: "https://a"}, "")
	if h.Get("Content-Type") != "text/event-stream" || h.Get("X-Accel-Buffering") != "no" ||
		h.Get("Access-Control-Allow-Origin") != "https://a" || h.Get("Connection") != "" {
		t.Errorf("stream headers %v", h)
	}
	h = http.Header{}
	SetPreflightHeaders(h, nil, "HEAD", "")
	if h.Get("Allow") != "GET, HEAD, OPTIONS" || h.Get("Content-Type") != "text/event-stream" ||
		h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("HEAD headers %v", h)
	}
}

func TestAnswersDoNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for name, f := range map[string]func(){
		"stream":  func() { AppendStreamHead(buf, cfg, fixedNow, "", "X-A: 1") },
		"head":    func() { AppendHeadResponse(buf, cfg, fixedNow, "") },
		"options": func() { AppendOptionsResponse(buf, cfg, fixedNow, "") },
		"error":   func() { AppendError(buf, cfg, 431, fixedNow) },
	} {
		if n := testing.AllocsPerRun(50, f); n != 0 {
			t.Errorf("%s: %v allocations into a large enough buffer", name, n)
		}
	}
}

// A hint is in the body, after the heading, and counted in Content-Length;
// only the missing subscribe parameter carries one.
func TestErrorHint(t *testing.T) {
	_, err := Parse([]byte("GET /sse?id=x HTTP/1.1\r\nHost: x\r\n\r\n"), cfg)
	if Hint(err) != HintMissingSubscribe {
		t.Fatalf("hint of %v: %q", err, Hint(err))
	}
	_, err = Parse([]byte("GET /nope?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n"), cfg)
	if err == nil || Hint(err) != "" {
		t.Fatalf("a 404 has hint %q (%v)", Hint(err), err)
	}
	b := AppendErrorHint(nil, cfg, 400, HintMissingSubscribe, fixedNow)
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	want := "<html><head><title>400 Bad Request</title></head><body><h1>400 Bad Request</h1><p>" + HintMissingSubscribe + "</p></body></html>\n"
	if err != nil || string(body) != want || resp.ContentLength != int64(len(want)) {
		t.Errorf("body %q (length %d), want %q", body, resp.ContentLength, want)
	}
	if got := string(AppendErrorBodyHint(nil, 400, HintMissingSubscribe)); got != want {
		t.Errorf("AppendErrorBodyHint: %q", got)
	}
}
