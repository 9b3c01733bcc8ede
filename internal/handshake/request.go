// Package handshake parses the HTTP/1.1 request head an SSE client sends and
// builds the answers, byte for byte as hasses did where clients depend on
// it. It works on bytes (the epoll front end has no net/http), never panics,
// and allocates little.
package handshake

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// Config holds what the parser and the answers depend on.
type Config struct {
	Path         string // the -murl value, e.g. "/sse"
	CORSBase     string // -cors-base; empty means "*"
	MaxHeadBytes int    // request head size cap; 0 means 8192
	MaxTokens    int    // tokens per subscriber; 0 means 64
	MaxTokenLen  int    // bytes per token; 0 means 256
	MaxIDLen     int    // bytes of id=; 0 means 256
	// Origins, if set, lists the origins allowed to open streams (CORS);
	// a request from another origin gets 403.
	Origins []string
}

// Defaults for Config's zero fields.
const (
	DefaultMaxHeadBytes = 8192
	DefaultMaxTokens    = 64
	DefaultMaxTokenLen  = 256
	DefaultMaxIDLen     = 256
)

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// HeadLimit returns the effective request head size cap.
func (c *Config) HeadLimit() int { return orDefault(c.MaxHeadBytes, DefaultMaxHeadBytes) }

// Request is what an SSE client asked for.
type Request struct {
	Method        string   // GET, HEAD or OPTIONS
	Tokens        []string // subscribe= tokens, raw (still percent-encoded); "*" is every token
	ID            string   // id=, raw
	LastEventID   string   // Last-Event-ID header, else the lastEventId= parameter
	Origin        string
	UserAgent     string
	Authorization string
	Cookie        string
	AccessToken   string // access_token= (a JWT for clients that cannot set headers)
}

// Error is a request the server refuses, with the status to answer.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, statusText(e.Status), e.Reason)
}

func fail(status int, reason string) error { return &Error{Status: status, Reason: reason} }

// HeadEnd returns the length of the request head at the start of buf,
// through the blank line that ends it (CRLF CRLF, or LF LF), or -1 if the
// blank line has not arrived yet. A head may arrive in several TCP segments;
// the caller keeps reading until this is not -1.
func HeadEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		lineStart := i
		i += j + 1
		line := buf[lineStart : i-1]
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return i // a leading empty line ends a head with no request line: 400
		}
	}
}

// Parse parses a complete request head, as delimited by HeadEnd.
func Parse(head []byte, cfg *Config) (*Request, error) {
	if len(head) > cfg.HeadLimit() {
		return nil, fail(431, "request head too large")
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, fail(400, "NUL byte in request")
	}
	line, rest := cutLine(head)
	method, target, version, err := requestLine(line)
	if err != nil {
		return nil, err
	}
	req := &Request{Method: method}
	if err := headers(rest, req); err != nil {
		return nil, err
	}
	if _, _, ok := cfg.AllowOrigin(req.Origin); !ok {
		return nil, fail(403, "origin not allowed: "+truncate(req.Origin, 64))
	}
	if method == "OPTIONS" && target == "*" {
		return checkVersion(req, version)
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if path != cfg.Path {
		return nil, fail(404, "no stream at "+truncate(path, 64))
	}
	if _, err := checkVersion(req, version); err != nil {
		return nil, err
	}
	if method != "GET" {
		return req, nil // HEAD and OPTIONS need no parameters
	}
	if !hasQuery {
		return nil, fail(400, "missing subscribe parameter")
	}
	return req, parseQuery(req, query, cfg)
}

func checkVersion(req *Request, version string) (*Request, error) {
	if version != "HTTP/1.1" {
		return nil, fail(501, "only HTTP/1.1 is served: "+truncate(version, 16))
	}
	return req, nil
}

// cutLine splits off the first line, dropping its LF and a CR before it.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.TrimSuffix(b, []byte("\r")), nil
	}
	return bytes.TrimSuffix(b[:i], []byte("\r")), b[i+1:]
}

// requestLine parses "METHOD SP target SP HTTP/x.y". A well-formed line with
// a method other than GET, HEAD and OPTIONS gets 501 (as hasses); anything
// that is not a request line gets 400.
func requestLine(line []byte) (method, target, version string, err error) {
	s := string(line)
	m, rest, ok := strings.Cut(s, " ")
	if !ok || m == "" || !isToken(m) {
		return "", "", "", fail(400, "malformed request line")
	}
	rest = strings.TrimLeft(rest, " ") // hasses tolerated repeated spaces
	target, version, ok = strings.Cut(rest, " ")
	version = strings.TrimSpace(version)
	if !ok || target == "" || !strings.HasPrefix(version, "HTTP/") || len(version) != 8 ||
		strings.ContainsAny(target, " \t\r") || hasCtl(target) {
		return "", "", "", fail(400, "malformed request line")
	}
	switch m {
	case "GET", "HEAD", "OPTIONS":
	default:
		return "", "", "", fail(501, "method "+truncate(m, 16)+" not implemented")
	}
	return m, target, version, nil
}

// headers reads the header lines that matter to an SSE server.
func headers(b []byte, req *Request) error {
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isToken(string(name)) {
			return fail(400, "malformed header line")
		}
		v := strings.Trim(string(value), " \t")
		if hasCtl(v) {
			return fail(400, "control character in header "+truncate(string(name), 32))
		}
		switch strings.ToLower(string(name)) {
		case "last-event-id":
			req.LastEventID = v
		case "origin":
			req.Origin = v
		case "user-agent":
			req.UserAgent = v
		case "authorization":
			req.Authorization = v
		case "cookie":
			req.Cookie = v
		}
	}
	return nil
}

// parseQuery reads subscribe=, id= and lastEventId=; the last of each wins,
// as in hasses. Tokens and ids are not percent-decoded: backends push the
// same encoded bytes the browser sent (spec 2.7).
func parseQuery(req *Request, query string, cfg *Config) error {
	var subscribe, lastID string
	hasSubscribe := false
	for query != "" {
		var p string
		p, query, _ = strings.Cut(query, "&")
		switch {
		case strings.HasPrefix(p, "subscribe="):
			subscribe, hasSubscribe = p[len("subscribe="):], true
		case strings.HasPrefix(p, "id="):
			req.ID = p[len("id="):]
		case strings.HasPrefix(p, "lastEventId="):
			lastID = p[len("lastEventId="):]
		case strings.HasPrefix(p, "access_token="):
			req.AccessToken, _ = url.QueryUnescape(p[len("access_token="):])
		}
	}
	if !hasSubscribe {
		return fail(400, "missing subscribe parameter")
	}
	if len(req.ID) > orDefault(cfg.MaxIDLen, DefaultMaxIDLen) {
		return fail(400, "id too long")
	}
	if req.LastEventID == "" && lastID != "" {
		if dec, err := url.QueryUnescape(lastID); err == nil {
			lastID = dec
		}
		if hasCtl(lastID) {
			return fail(400, "control character in lastEventId")
		}
		req.LastEventID = lastID
	}
	maxTokens := orDefault(cfg.MaxTokens, DefaultMaxTokens)
	maxLen := orDefault(cfg.MaxTokenLen, DefaultMaxTokenLen)
	for subscribe != "" {
		var tok string
		tok, subscribe, _ = strings.Cut(subscribe, "-")
		if tok == "" {
			continue
		}
		if len(tok) > maxLen {
			return fail(400, fmt.Sprintf("token longer than %d bytes", maxLen))
		}
		dup := false
		for _, t := range req.Tokens {
			if t == tok {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		if len(req.Tokens) == maxTokens {
			return fail(400, fmt.Sprintf("more than %d tokens", maxTokens))
		}
		req.Tokens = append(req.Tokens, tok)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (method or header name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// hasCtl reports control characters other than tab.
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// FromHTTP applies the same rules to a request parsed by net/http, for the
// standard-library front end (TLS, HTTP/2). net/http has already rejected
// malformed requests; the path, method and parameters are checked here.
func FromHTTP(method, rawPath, rawQuery string, hasQuery bool, header map[string][]string, cfg *Config) (*Request, error) {
	get := func(k string) string {
		if v := header[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch method {
	case "GET", "HEAD", "OPTIONS":
	default:
		return nil, fail(501, "method "+truncate(method, 16)+" not implemented")
	}
	req := &Request{Method: method, LastEventID: get("Last-Event-Id"), Origin: get("Origin"),
		UserAgent: get("User-Agent"), Authorization: get("Authorization"), Cookie: get("Cookie")}
	if _, _, ok := cfg.AllowOrigin(req.Origin); !ok {
		return nil, fail(403, "origin not allowed: "+truncate(req.Origin, 64))
	}
	if method == "OPTIONS" && rawPath == "*" {
		return req, nil
	}
	if rawPath != cfg.Path {
		return nil, fail(404, "no stream at "+truncate(rawPath, 64))
	}
	if method != "GET" {
		return req, nil
	}
	if !hasQuery {
		return nil, fail(400, "missing subscribe parameter")
	}
	return req, parseQuery(req, rawQuery, cfg)
}
