package handshake

import (
	"net/http"
	"strconv"
	"time"
)

// ServerName is the Server header of every answer.
const ServerName = "hasses-go"

func (c *Config) origin() string {
	if c.CORSBase == "" {
		return "*"
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

func appendCommon(dst []byte, cfg *Config, status int, now time.Time) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = appendLine(dst, " ", statusText(status))
	dst = append(dst, "Date: "...)
	dst = now.UTC().AppendFormat(dst, http.TimeFormat)
	dst = append(dst, '\r', '\n')
	return appendLine(dst, "Server: ", ServerName)
}

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
	return appendLine(dst, "Access-Control-Allow-Headers: cache-control, last-event-id, X-Requested-With")
}

// AppendStreamHead appends the 200 head that opens an event stream, in
// hasses' header order. extra are complete header lines (without CRLF).
// X-Accel-Buffering stops nginx from buffering the stream.
func AppendStreamHead(dst []byte, cfg *Config, now time.Time, origin string, extra ...string) []byte {
	dst = appendCommon(dst, cfg, 200, now)
	dst = appendCORS(dst, cfg, origin)
	dst = appendLine(dst, "Cache-Control: no-cache")
	dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
	dst = appendLine(dst, "Connection: Keep-Alive")
	dst = appendLine(dst, "X-Accel-Buffering: no")
	for _, h := range extra {
		dst = appendLine(dst, h)
	}
	dst = appendLine(dst, "Transfer-Encoding: chunked")
	dst = appendLine(dst, "Content-Type: text/event-stream")
	return append(dst, '\r', '\n')
}

// AppendHeadResponse appends the answer to HEAD (spec 3.3).
func AppendHeadResponse(dst []byte, cfg *Config, now time.Time, origin string) []byte {
	dst = appendCommon(dst, cfg, 200, now)
	dst = appendLine(dst, "Accept: text/*")
	dst = appendLine(dst, "Cache-Control: no-cache")
	dst = appendCORS(dst, cfg, origin)
	dst = appendLine(dst, "Allow: GET, HEAD, OPTIONS")
	dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
	dst = appendLine(dst, "Content-Type: text/event-stream")
	return append(dst, '\r', '\n')
}

// AppendOptionsResponse appends the answer to OPTIONS (spec 3.4): a fixed
// CORS preflight answer.
func AppendOptionsResponse(dst []byte, cfg *Config, now time.Time, origin string) []byte {
	dst = appendCommon(dst, cfg, 200, now)
	dst = appendLine(dst, "Accept: text/*")
	dst = appendLine(dst, "Accept-Encoding:")
	dst = appendLine(dst, "Cache-Control: no-cache")
	dst = appendCORS(dst, cfg, origin)
	dst = appendLine(dst, "Allow: GET, HEAD, OPTIONS")
	dst = appendLine(dst, "Keep-Alive: timeout=300, max=100")
	dst = appendLine(dst, "Content-Length: 0")
	return append(dst, '\r', '\n')
}

// AppendError appends a complete error answer; the connection is closed
// after it.
func AppendError(dst []byte, cfg *Config, status int, now time.Time) []byte {
	text := statusText(status)
	body := "<html><head><title>" + text + "</title></head><body><h1>" +
		strconv.Itoa(status) + " " + text + "</h1></body></html>\n"
	dst = appendCommon(dst, cfg, status, now)
	if status == 501 || status == 405 {
		dst = appendLine(dst, "Allow: GET, HEAD, OPTIONS")
	}
	dst = appendCORS(dst, cfg, "") // so that a browser can read the error
	dst = appendLine(dst, "Content-Length: ", strconv.Itoa(len(body)))
	dst = appendLine(dst, "Connection: close")
	dst = appendLine(dst, "Content-Type: text/html; charset=utf-8")
	dst = append(dst, '\r', '\n')
	return append(dst, body...)
}

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
	setCORS(h, cfg, origin)
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
	h["Access-Control-Allow-Headers"] = []string{"cache-control, last-event-id, X-Requested-With"}
}

// SetPreflightHeaders sets the headers of the HEAD and OPTIONS answers.
func SetPreflightHeaders(h map[string][]string, cfg *Config, method, origin string) {
	setCORS(h, cfg, origin)
	h["Accept"] = []string{"text/*"}
	h["Cache-Control"] = []string{"no-cache"}
	h["Allow"] = []string{"GET, HEAD, OPTIONS"}
	if method == "HEAD" {
		h["Content-Type"] = []string{"text/event-stream"}
	}
}
