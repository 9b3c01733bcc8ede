package handshake

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServerName is the Server header of every answer.
const ServerName = "hasses-go"

// corsHeaders is hasses' fixed Access-Control-Allow-Headers value: the
// headers an EventSource polyfill may send.
const corsHeaders = "cache-control, last-event-id, X-Requested-With"

// DefaultCORSBase is hasses' Access-Control-Allow-Origin (-cors-base).
const DefaultCORSBase = "*"

func (c *Config) origin() string {
	if c.CORSBase == "" {
		return DefaultCORSBase
	}
	return c.CORSBase
}

// AllowOrigin decides the CORS answer to a request from origin. Without a
// list of origins it is hasses' fixed -cors-base value. With a list, a
// listed origin is echoed and may send credentials (cookies, for a JWT in
// a cookie); "*" in the list echoes any origin, without credentials. A
// request without an Origin header is not a cross-origin browser request
// and passes.
func (c *Config) AllowOrigin(origin string) (allow string, credentials, ok bool) {
	c = orZero(c)
	if len(c.Origins) == 0 {
		return c.origin(), false, true
	}
	if origin == "" {
		return "", false, true
	}
	for _, o := range c.Origins {
		if o == origin {
			return origin, true, true
		}
	}
	for _, o := range c.Origins {
		if o == "*" {
			return origin, false, true
		}
	}
	return "", false, false
}

func appendLine(dst []byte, parts ...string) []byte {
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return append(dst, '\r', '\n')
}

func appendStatus(dst []byte, status int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	return appendLine(dst, " ", statusText(status))
}

// appendDate writes the Date header in RFC 9110 form. hasses wrote the day
// without its leading zero (spec 3.1), which strict parsers reject.
func appendDate(dst []byte, now time.Time) []byte {
	dst = append(dst, "Date: "...)
	dst = now.UTC().AppendFormat(dst, http.TimeFormat)
	return append(dst, '\r', '\n')
}

func appendServer(dst []byte) []byte { return appendLine(dst, "Server: ", ServerName) }

// appendCORS writes hasses' three CORS headers; with an origin list the
// allowed origin is echoed, with Vary and, for a listed one, credentials.
func appendCORS(dst []byte, cfg *Config, origin string) []byte {
	allow, creds, _ := cfg.AllowOrigin(origin)
	if allow != "" {
		dst = appendLine(dst, "Access-Control-Allow-Origin: ", allow)
	}
	if len(cfg.Origins) > 0 {
		dst = appendLine(dst, "Vary: Origin")
	}
	if creds {
		dst = appendLine(dst, "Access-Control-Allow-Credentials: true")
	}
	dst = appendLine(dst, "Access-Control-Allow-Methods: GET")
	return appendLine(dst, "Access-Control-Allow-Headers: ", corsHeaders)
}

// AppendStreamHead appends the 200 head that opens an event stream, in
// hasses' header order (spec 3.1). origin is the request's Origin header
// (it matters only with Config.Origins). extra are complete header lines
// without CRLF, written before Transfer-Encoding; a line that is empty or
// holds a CR or LF is skipped, so that no caller can split the head.
// X-Accel-Buffering stops nginx from holding events back.
func AppendStreamHead(dst []byte, cfg *Config, now time.Time, origin string, extra ...string) []byte {
	return appendStreamHead(dst, cfg, now, origin, false, extra)
}

// AppendStreamHeadClose is AppendStreamHead for an HTTP/1.0 client: the
// body is close-delimited, with neither chunks nor keep-alive.
func AppendStreamHeadClose(dst []byte, cfg *Config, now time.Time, origin string, extra ...string) []byte {
	return appendStreamHead(dst, cfg, now, origin, true, extra)
}

func appendStreamHead(dst []byte, cfg *Config, now time.Time, origin string, close bool, extra []string) []byte {
	cfg = orZero(cfg)
	dst = appendStatus(dst, 200)
	dst = appendDate(dst, now)
	dst = appendServer(dst)
	dst = appendCORS(dst, cfg, origin)
	dst = appendLine(dst, "Cache-Control: no-cache")
	if close {
		dst = appendLine(dst, "Connection: close")
	} else {
		dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
		dst = appendLine(dst, "Connection: Keep-Alive")
	}
	dst = appendLine(dst, "X-Accel-Buffering: no")
	for _, h := range extra {
		if h != "" && !strings.ContainsAny(h, "\r\n") {
			dst = appendLine(dst, h)
		}
	}
	if !close {
		dst = appendLine(dst, "Transfer-Encoding: chunked")
	}
	dst = appendLine(dst, "Content-Type: text/event-stream")
	return append(dst, '\r', '\n')
}

// appendPreflight writes the part the HEAD and OPTIONS answers share, in
// hasses' order (Accept before Server, "Cache-control" spelt as hasses did:
// scripts that compared the answers byte for byte keep working).
func appendPreflight(dst []byte, cfg *Config, now time.Time, origin string) []byte {
	dst = appendStatus(dst, 200)
	dst = appendDate(dst, now)
	dst = appendLine(dst, "Accept: text/*")
	dst = appendServer(dst)
	dst = appendLine(dst, "Cache-control: no-cache")
	dst = appendCORS(dst, cfg, origin)
	return appendLine(dst, "Allow: GET, HEAD, OPTIONS")
}

// AppendHeadResponse appends the answer to HEAD (spec 3.3). It has no
// Content-Length (a HEAD answer has no body) and no Connection header; the
// caller closes the connection after it, as hasses did.
func AppendHeadResponse(dst []byte, cfg *Config, now time.Time, origin string) []byte {
	cfg = orZero(cfg)
	dst = appendPreflight(dst, cfg, now, origin)
	dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
	dst = appendLine(dst, "Content-Type: text/event-stream")
	return append(dst, '\r', '\n')
}

// AppendOptionsResponse appends the answer to OPTIONS (spec 3.4), a fixed
// CORS preflight answer. Without Content-Length its (empty) body ends when
// the caller closes the connection, so no client tries to reuse it.
func AppendOptionsResponse(dst []byte, cfg *Config, now time.Time, origin string) []byte {
	cfg = orZero(cfg)
	dst = appendPreflight(dst, cfg, now, origin)
	dst = appendLine(dst, "Accept-Encoding:")
	dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
	return append(dst, '\r', '\n')
}

// AppendScriptResponse appends the answer to a GET (with body) or HEAD of
// the page helper: JavaScript any origin may load, cached for an hour, then
// the connection closes.
func AppendScriptResponse(dst []byte, cfg *Config, now time.Time, body []byte, withBody bool) []byte {
	dst = appendStatus(dst, 200)
	dst = appendDate(dst, now)
	dst = appendServer(dst)
	dst = appendLine(dst, "Access-Control-Allow-Origin: *")
	dst = appendLine(dst, "Cache-Control: public, max-age=3600")
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, '\r', '\n')
	dst = appendLine(dst, "Connection: close")
	dst = appendLine(dst, "Content-Type: text/javascript; charset=utf-8")
	dst = append(dst, '\r', '\n')
	if withBody {
		dst = append(dst, body...)
	}
	return dst
}

// Pieces of the error body: one line of HTML naming the status.
const (
	bodyOpen  = "<html><head><title>"
	bodyMid   = "</title></head><body><h1>"
	bodyHead  = "</h1>" // the hint, if any, follows the heading
	bodyClose = "</body></html>\n"
	hintOpen  = "<p>"
	hintClose = "</p>"
)

// AppendError appends a complete error answer for status (400, 401, 403,
// 404, 405, 413, 429, 431, 501, 503, ...); the caller closes the connection
// after it. A status outside 100-999 is answered as 500.
//
// Unlike hasses, every error carries the CORS headers (hasses: only 501),
// so that a cross-origin page using fetch can read a 401 or 429 instead of
// a network error; the TLS front end does the same. 501 and 405 also list
// the methods served (hasses said "GET, HEAD" while serving OPTIONS too).
func AppendError(dst []byte, cfg *Config, status int, now time.Time) []byte {
	return AppendErrorHint(dst, cfg, status, "", now)
}

// AppendErrorHint is AppendError with a hint (see Error.Hint) in the body.
func AppendErrorHint(dst []byte, cfg *Config, status int, hint string, now time.Time) []byte {
	cfg = orZero(cfg)
	if status < 100 || status > 999 {
		status = 500
	}
	text := statusText(status)
	// "NNN Text" twice, in the title and in the heading.
	bodyLen := len(bodyOpen) + len(bodyMid) + len(bodyHead) + len(bodyClose) + 2*(3+1+len(text))
	if hint != "" {
		bodyLen += len(hintOpen) + len(hint) + len(hintClose)
	}
	dst = appendStatus(dst, status)
	dst = appendDate(dst, now)
	dst = appendServer(dst)
	if status == 501 || status == 405 {
		dst = appendLine(dst, "Allow: GET, HEAD, OPTIONS")
	}
	dst = appendCORS(dst, cfg, "")
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(bodyLen), 10)
	dst = append(dst, '\r', '\n')
	dst = appendLine(dst, "Connection: close")
	dst = appendLine(dst, "Content-Type: text/html; charset=utf-8")
	dst = append(dst, '\r', '\n')
	return AppendErrorBodyHint(dst, status, hint)
}

// AppendErrorBody appends the body of an error answer: one line of HTML
// naming the status, never the reason (that goes to the debug log).
func AppendErrorBody(dst []byte, status int) []byte { return AppendErrorBodyHint(dst, status, "") }

// AppendErrorBodyHint is AppendErrorBody with a hint (a fixed text, see
// Error.Hint) after the heading.
func AppendErrorBodyHint(dst []byte, status int, hint string) []byte {
	if status < 100 || status > 999 {
		status = 500
	}
	text := statusText(status)
	dst = append(dst, bodyOpen...)
	dst = appendStatusText(dst, status, text)
	dst = append(dst, bodyMid...)
	dst = appendStatusText(dst, status, text)
	dst = append(dst, bodyHead...)
	if hint != "" {
		dst = append(append(append(dst, hintOpen...), hint...), hintClose...)
	}
	return append(dst, bodyClose...)
}

// SetErrorHeaders sets the end-to-end headers of an error answer on a
// net/http header map, as AppendError writes them.
func SetErrorHeaders(h map[string][]string, cfg *Config, status int) {
	setCORS(h, orZero(cfg), "")
	if status == 501 || status == 405 {
		h["Allow"] = []string{"GET, HEAD, OPTIONS"}
	}
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
}

func appendStatusText(dst []byte, status int, text string) []byte {
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	return append(dst, text...)
}

// statusText is the standard reason phrase, or "Error" for codes without
// one, so that a status line always has a phrase.
func statusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Error"
}

// SetStreamHeaders sets the end-to-end headers of a stream answer on a
// net/http header map (the hop-by-hop ones are net/http's business, and are
// forbidden in HTTP/2).
func SetStreamHeaders(h map[string][]string, cfg *Config, origin string) {
	setCORS(h, orZero(cfg), origin)
	h["Cache-Control"] = []string{"no-cache"}
	h["X-Accel-Buffering"] = []string{"no"}
	h["Content-Type"] = []string{"text/event-stream"}
}

func setCORS(h map[string][]string, cfg *Config, origin string) {
	allow, creds, _ := cfg.AllowOrigin(origin)
	if allow != "" {
		h["Access-Control-Allow-Origin"] = []string{allow}
	}
	if len(cfg.Origins) > 0 {
		h["Vary"] = []string{"Origin"}
	}
	if creds {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
	h["Access-Control-Allow-Methods"] = []string{"GET"}
	h["Access-Control-Allow-Headers"] = []string{corsHeaders}
}

// SetPreflightHeaders sets the headers of the HEAD and OPTIONS answers.
func SetPreflightHeaders(h map[string][]string, cfg *Config, method, origin string) {
	setCORS(h, orZero(cfg), origin)
	h["Accept"] = []string{"text/*"}
	h["Cache-Control"] = []string{"no-cache"}
	h["Allow"] = []string{"GET, HEAD, OPTIONS"}
	if method == "HEAD" {
		h["Content-Type"] = []string{"text/event-stream"}
	}
}
