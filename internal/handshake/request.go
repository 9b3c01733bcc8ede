// Package handshake parses the HTTP/1.1 request head an SSE client sends and
// builds the answers, byte for byte as hasses 1.30 did where clients depend
// on it, with its defects fixed (spec section 9.5).
//
// It works on bytes because the epoll front end has no net/http: a head is
// parsed straight from the loop's read buffer. Everything here is a pure
// function of its input, never panics (it is fuzzed), and allocates only the
// strings a Request keeps.
package handshake

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/hasses-go/hasses/web"
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

// Defaults for Config's zero (or negative) fields. They bound what one
// client can make the server store: hasses cut tokens to 30 bytes and ids
// to 61 silently; we refuse instead, so that a cut never changes routing.
const (
	DefaultMaxHeadBytes = 8192
	DefaultMaxTokens    = 64
	DefaultMaxTokenLen  = 256
	DefaultMaxIDLen     = 256
)

var zeroConfig Config

// orZero lets every entry point accept a nil *Config instead of panicking.
func orZero(c *Config) *Config {
	if c == nil {
		return &zeroConfig
	}
	return c
}

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// HeadLimit returns the effective request head size cap.
func (c *Config) HeadLimit() int {
	return orDefault(orZero(c).MaxHeadBytes, DefaultMaxHeadBytes)
}

// TooLarge reports whether n bytes of request head, complete or still
// without its blank line, exceed the cap. The caller answers 431 and stops
// reading: hasses lost its shared buffer to heads this long (spec 2.10).
// Parse itself also returns 431 when len(head) is over the cap.
func TooLarge(n int, cfg *Config) bool { return n > cfg.HeadLimit() }

// Request is what an SSE client asked for. Its strings do not share memory
// with the head passed to Parse, so the read buffer can be reused at once.
type Request struct {
	Method        string   // GET, HEAD or OPTIONS
	Tokens        []string // subscribe= tokens, raw (still percent-encoded), unique; "*" is every token
	ID            string   // id=, raw
	LastEventID   string   // Last-Event-ID header, else the lastEventId= parameter (percent-decoded)
	Origin        string
	UserAgent     string
	Authorization string
	Cookie        string
	AccessToken   string // access_token= (a JWT for clients that cannot set headers), percent-decoded
	// User is who the subscriber token says the client is (its "sub"),
	// set by the authorization; empty without one.
	User string
	// NoInitID is initid=0: the opening id of a stream without
	// Last-Event-ID is not a block of its own, for client libraries that
	// hand a data-less block to the application as an empty message.
	NoInitID bool
	// Script: a GET or HEAD of web.ScriptPath, the page helper, not a
	// stream.
	Script bool
	// HTTP10 marks an HTTP/1.0 request (nginx's default towards upstreams):
	// its stream is close-delimited, without chunks or keep-alive.
	HTTP10 bool
	// Close: the client sent "Connection: close", so the connection is not
	// kept for another request once the stream ends.
	Close bool
	// Forwarded is the client address chain a proxy reported in
	// X-Forwarded-For, Forwarded or X-Real-IP, the original client first,
	// at most MaxForwarded (the rightmost); nil without such a header. An
	// entry that is not an address is the zero Addr. It is only to be read
	// for a connection from a trusted proxy (access.Proxies.Client): any
	// client can send these headers.
	Forwarded []netip.Addr
}

// Error is a request the server refuses, with the status to answer.
type Error struct {
	Status int
	Reason string // for the log: may quote the request
	// Hint, when set, is told to the client in the error body: a fixed
	// text (never the request's bytes), for mistakes a developer makes
	// while wiring a page, such as a URL without ?subscribe=.
	Hint string
}

// HintMissingSubscribe answers a request to the SSE path without tokens.
const HintMissingSubscribe = "missing the subscribe parameter: add ?subscribe=TOKEN (several tokens: ?subscribe=a-b)"

// Hint returns the hint of err, a *Error, or "".
func Hint(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Hint
	}
	return ""
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, statusText(e.Status), e.Reason)
}

func fail(status int, reason string) error { return &Error{Status: status, Reason: reason} }

// HeadEnd returns the length of the request head at the start of buf,
// through the blank line that ends it (CRLF CRLF, LF LF, or a mix), or -1
// if the blank line has not arrived yet. hasses judged whatever one read
// returned (spec 2.1); a head split over TCP segments is only complete here.
// A leading empty line ends a head with no request line, which Parse refuses.
// While it returns -1, the caller checks TooLarge on what it has buffered.
func HeadEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		if j == 0 || (j == 1 && buf[i] == '\r') {
			return i + j + 1
		}
		i += j + 1
	}
}

// Parse parses a complete request head, as delimited by HeadEnd (bytes
// after the blank line are ignored). A refusal is an *Error whose Status is
// the answer to send: 400 malformed, 403 origin not allowed, 404 wrong
// path, 431 head over MaxHeadBytes, 501 other method or HTTP version.
//
// The checks run in hasses' order where it had one (spec 2.5): request line
// (501 for an unknown method), path (404), version (501), parameters (400).
// Keep-alive is not required (hasses' 400 for its absence turned away curl
// and Go clients), and a bare GET without "?" is 400, never served with a
// previous client's parameters (spec 2.8).
func Parse(head []byte, cfg *Config) (*Request, error) {
	cfg = orZero(cfg)
	if TooLarge(len(head), cfg) {
		return nil, fail(431, fmt.Sprintf("request head over %d bytes", cfg.HeadLimit()))
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return nil, fail(400, "NUL byte in request head")
	}
	line, rest := cutLine(head)
	method, target, version, err := requestLine(line)
	if err != nil {
		return nil, err
	}
	var h fields
	if err := h.parse(rest); err != nil {
		return nil, err
	}
	req := &Request{Method: method, HTTP10: string(version) == "HTTP/1.0"}
	h.fill(req)
	if _, _, ok := cfg.AllowOrigin(req.Origin); !ok {
		return nil, fail(403, "origin not allowed: "+quoteCut(req.Origin, 64))
	}
	if method == "OPTIONS" && string(target) == "*" {
		// hasses answered "OPTIONS * HTTP/1.1" with 404 and only matched
		// it with two spaces (spec 3.5); it is a valid preflight (9.5).
		if err := checkVersion(version); err != nil {
			return nil, err
		}
		return req, nil
	}
	path, query, hasQuery := bytes.Cut(target, []byte("?"))
	if string(path) != cfg.Path && isScript(method, string(path)) {
		req.Script = true
		return req, checkVersion(version)
	}
	if string(path) != cfg.Path {
		return nil, fail(404, "no stream at "+quoteCut(string(path), 64))
	}
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	if method != "GET" {
		return req, nil // HEAD and OPTIONS need no parameters
	}
	if !hasQuery {
		return nil, &Error{Status: 400, Hint: HintMissingSubscribe, Reason: "missing subscribe parameter (no query string)"}
	}
	if err := parseQuery(req, query, cfg); err != nil {
		return nil, err
	}
	return req, nil
}

// isScript reports a request for the page helper (the stream path wins).
func isScript(method, path string) bool {
	return path == web.ScriptPath && (method == "GET" || method == "HEAD")
}

// checkVersion keeps hasses' 501 for anything but HTTP/1.1 and HTTP/1.0
// (hasses refused 1.0 too, but nginx speaks it to upstreams unless told
// otherwise; HTTP/2 is served by the TLS front end).
func checkVersion(version []byte) error {
	if string(version) != "HTTP/1.1" && string(version) != "HTTP/1.0" {
		return fail(501, "only HTTP/1.1 and HTTP/1.0 are served, not "+string(version))
	}
	return nil
}

// cutLine splits off the first line at LF, dropping a CR before the LF.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// requestLine parses "METHOD SP target SP HTTP/x.y". A well-formed line
// with a method other than GET, HEAD and OPTIONS gets 501 as in hasses, but
// anything that is not a request line at all (binary, a TLS ClientHello, an
// empty line, no version) gets 400: hasses' 501 for garbage told scanners
// and misconfigured TLS clients the wrong thing (spec 9.5).
func requestLine(line []byte) (method string, target, version []byte, err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return "", nil, nil, fail(400, "malformed request line")
	}
	m := line[:sp]
	rest := trimLeftSP(line[sp+1:]) // hasses tolerated repeated spaces here
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return "", nil, nil, fail(400, "malformed request line: no target or no HTTP version")
	}
	target = rest[:sp]
	version = trimLeftSP(rest[sp+1:])
	for len(version) > 0 && version[len(version)-1] == ' ' {
		version = version[:len(version)-1]
	}
	if !validVersion(version) {
		return "", nil, nil, fail(400, "malformed request line: bad HTTP version")
	}
	if hasCtl(target) {
		return "", nil, nil, fail(400, "control character in request target")
	}
	switch string(m) { // constant strings: no allocation
	case "GET":
		method = "GET"
	case "HEAD":
		method = "HEAD"
	case "OPTIONS":
		method = "OPTIONS"
	default:
		return "", nil, nil, fail(501, "method "+quoteCut(string(m), 16)+" not implemented")
	}
	return method, target, version, nil
}

// validVersion reports whether v is "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3).
func validVersion(v []byte) bool {
	return len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimLeftSP(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

// fields holds the header values Parse keeps, as slices of the head until
// fill copies them into strings.
type fields struct {
	lastEventID, origin, userAgent, authorization, cookie []byte
	close                                                 bool // "Connection: close"

	xff, fwd forwardLines[[]byte] // X-Forwarded-For, Forwarded: every line counts
	realIP   []byte
}

// parse reads the header lines up to the blank line. Names are matched
// case-insensitively (hasses required "Connection: keep-alive" spelled just
// so); the first of a repeated header wins, as with net/http's Header.Get,
// so both front ends see the same value.
func (f *fields) parse(b []byte) error {
	for len(b) > 0 {
		var line []byte
		line, b = cutLine(b)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return fail(400, "header line without a colon")
		}
		name := line[:colon]
		if len(name) == 0 || !isToken(name) {
			// Also catches obsolete line folding and "Name :" (RFC 9112 5.1).
			return fail(400, "malformed header name")
		}
		v := trimOWS(line[colon+1:])
		if hasCtl(v) {
			return fail(400, "control character in header "+quoteCut(string(name), 32))
		}
		var dst *[]byte
		switch {
		case equalFold(name, "last-event-id"):
			dst = &f.lastEventID
		case equalFold(name, "origin"):
			dst = &f.origin
		case equalFold(name, "user-agent"):
			dst = &f.userAgent
		case equalFold(name, "authorization"):
			dst = &f.authorization
		case equalFold(name, "cookie"):
			dst = &f.cookie
		case equalFold(name, "connection"):
			f.close = f.close || containsFold(v, "close")
			continue
		case equalFold(name, "x-forwarded-for"):
			f.xff.add(v)
			continue
		case equalFold(name, "forwarded"):
			f.fwd.add(v)
			continue
		case equalFold(name, "x-real-ip"):
			dst = &f.realIP
		default:
			continue
		}
		if *dst == nil {
			*dst = v[:len(v):len(v)] // never nil, so "seen" even when empty
		}
	}
	return nil
}

// containsFold reports whether lower (lower-case) occurs in b, ignoring
// ASCII case.
func containsFold(b []byte, lower string) bool {
	for i := 0; i+len(lower) <= len(b); i++ {
		if equalFold(b[i:i+len(lower)], lower) {
			return true
		}
	}
	return false
}

// fill copies the kept values; each string is allocated on its own so that
// a long-lived one (the user agent, kept for clientlist) does not pin the
// short-lived ones (cookie, authorization).
func (f *fields) fill(req *Request) {
	req.LastEventID = string(f.lastEventID)
	req.Origin = string(f.origin)
	req.UserAgent = string(f.userAgent)
	req.Authorization = string(f.authorization)
	req.Cookie = string(f.cookie)
	req.Close = f.close
	if f.xff.n > 0 || f.fwd.n > 0 || f.realIP != nil {
		req.Forwarded = forwardedChain(f.xff.lines(), f.fwd.lines(), f.realIP)
	}
}

// trimOWS trims spaces and tabs on both sides (RFC 9110 5.5).
func trimOWS[T string | []byte](b T) T {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares an ASCII name with a lower-case constant.
func equalFold[T string | []byte](name T, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseQuery reads subscribe=, id=, lastEventId=, access_token= and initid=; the
// last of each wins, as in hasses. Tokens and ids are not percent-decoded:
// backends push the same encoded bytes the browser sent, and hasses
// compared them raw (spec 2.7, 9.3).
func parseQuery(req *Request, query []byte, cfg *Config) error {
	var sub, id, lastID, access []byte
	hasSub := false
	for len(query) > 0 {
		var p []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			p, query = query[:i], query[i+1:]
		} else {
			p, query = query, nil
		}
		switch {
		case hasPrefix(p, "subscribe="):
			sub, hasSub = p[len("subscribe="):], true
		case hasPrefix(p, "id="):
			id = p[len("id="):]
		case hasPrefix(p, "lastEventId="):
			lastID = p[len("lastEventId="):]
		case hasPrefix(p, "access_token="):
			access = p[len("access_token="):]
		case hasPrefix(p, "initid="):
			switch string(p[len("initid="):]) {
			case "0":
				req.NoInitID = true
			case "1":
				req.NoInitID = false
			default:
				return fail(400, "initid must be 0 or 1")
			}
		}
	}
	if !hasSub {
		return &Error{Status: 400, Hint: HintMissingSubscribe, Reason: "missing subscribe parameter"}
	}
	if maxID := orDefault(cfg.MaxIDLen, DefaultMaxIDLen); len(id) > maxID {
		return fail(400, fmt.Sprintf("id longer than %d bytes", maxID))
	}
	maxTokens := orDefault(cfg.MaxTokens, DefaultMaxTokens)
	maxLen := orDefault(cfg.MaxTokenLen, DefaultMaxTokenLen)
	pieces := 0
	for rest := sub; len(rest) > 0; {
		var tok []byte
		if i := bytes.IndexByte(rest, '-'); i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		} else {
			tok, rest = rest, nil
		}
		if len(tok) > maxLen {
			return fail(400, fmt.Sprintf("token longer than %d bytes", maxLen))
		}
		if len(tok) > 0 {
			pieces++
		}
	}

	// The subscription keeps the tokens and the id for the stream's life:
	// one allocation holds both, and nothing else of the head.
	var sb strings.Builder
	sb.Grow(len(sub) + len(id))
	sb.Write(sub)
	sb.Write(id)
	kept := sb.String()
	subs := kept[:len(sub)]
	req.ID = kept[len(sub):]

	if pieces > 0 {
		req.Tokens = make([]string, 0, min(pieces, maxTokens))
	}
	var seen tokenSet // for long lists, where a linear scan would be quadratic
	for subs != "" {
		var tok string
		tok, subs, _ = strings.Cut(subs, "-")
		if tok == "" {
			continue // hasses skipped empty pieces: a--b is a, b
		}
		if seen.on() {
			if seen.has(req.Tokens, tok) {
				continue
			}
		} else if slices.Contains(req.Tokens, tok) {
			continue
		}
		if len(req.Tokens) == maxTokens {
			return fail(400, fmt.Sprintf("more than %d tokens", maxTokens))
		}
		req.Tokens = append(req.Tokens, tok)
		if seen.on() {
			seen.add(req.Tokens, len(req.Tokens)-1)
		} else if len(req.Tokens) == 8 {
			seen.start(req.Tokens, min(pieces, maxTokens))
		}
	}

	// Many repeated pieces would leave the subscription holding bytes it
	// does not need; keep only the distinct tokens and the id then.
	if total := len(req.ID) + sumLen(req.Tokens); len(kept)-total > 256 {
		sb = strings.Builder{}
		sb.Grow(total)
		sb.WriteString(req.ID)
		for _, t := range req.Tokens {
			sb.WriteString(t)
		}
		s := sb.String()
		req.ID, s = s[:len(req.ID)], s[len(req.ID):]
		for i, t := range req.Tokens {
			req.Tokens[i], s = s[:len(t)], s[len(t):]
		}
	}

	// The header wins: EventSource sends it on reconnect; the parameter
	// is for polyfills that cannot set headers.
	if req.LastEventID == "" && len(lastID) > 0 {
		v := unescape(lastID)
		if hasCtl(v) {
			return fail(400, "control character in lastEventId")
		}
		req.LastEventID = v
	}
	if len(access) > 0 {
		req.AccessToken = unescape(access)
	}
	return nil
}

// unescape percent-decodes a query value, keeping it raw if it is not
// valid percent-encoding.
func unescape(b []byte) string {
	s := string(b)
	if bytes.IndexByte(b, '%') < 0 && bytes.IndexByte(b, '+') < 0 {
		return s
	}
	if dec, err := url.QueryUnescape(s); err == nil {
		return dec
	}
	return s
}

func sumLen(ss []string) (n int) {
	for _, s := range ss {
		n += len(s)
	}
	return n
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// isToken reports whether b is an RFC 9110 token (a method or header name).
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// hasCtl reports control characters other than tab. Bytes of 0x80 and up
// pass: hasses accepted raw UTF-8 in targets and values.
func hasCtl[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// quoteCut quotes a piece of client input for an error reason, cut to n
// bytes, so that a reason never carries control characters into a log.
func quoteCut(s string, n int) string {
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// FromHTTP applies the same rules to a request parsed by net/http, for the
// standard-library front end (TLS, HTTP/2). net/http has already refused
// malformed requests; the method, path and parameters are checked here.
// rawPath is the escaped path, or "*" for an asterisk-form target.
func FromHTTP(method, rawPath, rawQuery string, hasQuery bool, header map[string][]string, cfg *Config) (*Request, error) {
	cfg = orZero(cfg)
	get := func(k string) string {
		if v := header[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch method {
	case "GET", "HEAD", "OPTIONS":
	default:
		return nil, fail(501, "method "+quoteCut(method, 16)+" not implemented")
	}
	req := &Request{Method: method, LastEventID: get("Last-Event-Id"), Origin: get("Origin"),
		UserAgent: get("User-Agent"), Authorization: get("Authorization"), Cookie: get("Cookie")}
	xff, fwd := lastLines(header["X-Forwarded-For"]), lastLines(header["Forwarded"])
	if _, realIP := header["X-Real-Ip"]; len(xff) > 0 || len(fwd) > 0 || realIP {
		req.Forwarded = forwardedChain(xff, fwd, get("X-Real-Ip"))
	}
	if _, _, ok := cfg.AllowOrigin(req.Origin); !ok {
		return nil, fail(403, "origin not allowed: "+quoteCut(req.Origin, 64))
	}
	if method == "OPTIONS" && rawPath == "*" {
		return req, nil
	}
	if rawPath != cfg.Path && isScript(method, rawPath) {
		req.Script = true
		return req, nil
	}
	if rawPath != cfg.Path {
		return nil, fail(404, "no stream at "+quoteCut(rawPath, 64))
	}
	if method != "GET" {
		return req, nil
	}
	if !hasQuery {
		return nil, &Error{Status: 400, Hint: HintMissingSubscribe, Reason: "missing subscribe parameter (no query string)"}
	}
	if err := parseQuery(req, []byte(rawQuery), cfg); err != nil {
		return nil, err
	}
	return req, nil
}

// lastLines keeps the last maxForwardLines values of a repeated header, as
// Parse does.
func lastLines(v []string) []string { return v[max(0, len(v)-maxForwardLines):] }
