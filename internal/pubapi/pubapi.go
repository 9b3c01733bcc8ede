// Package pubapi is the HTTP publish API on its own listener (-pub):
// POST /publish with a JSON object or form fields, GET /history, POST
// /disconnect and POST or GET /revoke. All are guarded by the publisher secret or the network allow-list, and rate
// limited per publisher.
package pubapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/publish"
)

// Handler serves the publish API. Publications, and the requests refused,
// are counted by the Pipeline.
type Handler struct {
	Pipeline *pipeline.Pipeline // its Limits bound the request body too
	History  HistoryReader
	Presence PresenceReader
	Revoker  Revoker
	Policy   *access.Policy
	Rate     *access.RateLimiter // nil: unlimited
	Throttle *access.Throttle    // wrong secrets per address; nil: none
	Refusals *refusal.Log        // logs wrong secrets; nil: none
	Logger   *slog.Logger
}

// ServeHTTP routes the publish API's endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := http.MethodPost
	switch r.URL.Path {
	case "/publish", "/disconnect":
	case "/history", "/presence":
		method = http.MethodGet
	case "/revoke":
		if r.Method == http.MethodGet {
			method = http.MethodGet
		}
	default:
		h.fail(w, http.StatusNotFound, "not found: the publish API is POST /publish, GET /history, GET /presence, POST /disconnect and POST or GET /revoke")
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		h.fail(w, http.StatusMethodNotAllowed, "use "+method)
		return
	}
	if !h.admit(w, r) {
		return
	}
	switch r.URL.Path {
	case "/history":
		h.serveHistory(w, r)
		return
	case "/presence":
		h.servePresence(w, r)
		return
	case "/disconnect":
		h.serveDisconnect(w, r)
		return
	case "/revoke":
		h.serveRevoke(w, r)
		return
	}
	m, status, err := h.decode(w, r)
	if err != nil {
		if status == http.StatusRequestEntityTooLarge {
			h.Pipeline.Refuse(pipeline.HTTP, pipeline.TooLarge)
		} else {
			h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		}
		h.fail(w, status, err.Error())
		return
	}
	if k := r.Header.Get("Idempotency-Key"); k != "" && m.IdempotencyKey == "" {
		m.IdempotencyKey = k // the IETF draft's header, as an alternative to the field
	}
	res, err := h.Pipeline.Publish(pipeline.FromJSON(m, true), pipeline.HTTP)
	switch {
	case errors.Is(err, hub.ErrUnavailable): // a cluster node without Redis
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, hub.ErrTooLarge):
		h.fail(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	case err != nil:
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	json.NewEncoder(w).Encode(publish.Result{IDs: []string{res.ID}, Receivers: res.Receivers, Duplicate: res.Duplicate})
}

// admit applies the publishers' policy, secret and rate to a request of
// any endpoint, and answers a refusal.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	addr := access.Peer(r)
	if !h.Policy.Permits(addr) {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.Forbidden)
		h.fail(w, http.StatusForbidden, "publishing is not allowed from "+addr.String())
		return false
	}
	if retry, blocked := h.Throttle.Blocked(addr, time.Now()); blocked {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.RateLimited)
		h.Refusals.Refused(refusal.Guessing, http.StatusTooManyRequests, addr.String(), nil)
		w.Header().Set("Retry-After", access.RetryAfter(retry))
		h.fail(w, http.StatusTooManyRequests, "too many wrong secrets: try again later")
		return false
	}
	if !h.Policy.CheckSecret(access.Bearer(r)) {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.Unauthorized)
		h.Throttle.Fail(addr, time.Now())
		h.Refusals.Refused(refusal.WrongSecret, http.StatusUnauthorized, addr.String(), nil)
		w.Header().Set("WWW-Authenticate", `Bearer realm="hasses publish"`)
		h.fail(w, http.StatusUnauthorized, "missing or wrong secret: send Authorization: Bearer <secret>")
		return false
	}
	if !h.Rate.Allow(addr, time.Now()) {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.RateLimited)
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusTooManyRequests, "publish rate limit exceeded")
		return false
	}
	return true
}

// decode reads a JSON object or form fields (token, repeatable; data;
// event; exclude); the pipeline validates them. A body over the limit is
// 413 in every encoding; a body without Content-Type is JSON if it starts
// with '{'.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request) (*publish.Message, int, error) {
	limit := h.bodyLimit()
	overLimit := fmt.Errorf("request body over %d bytes", limit)
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, overLimit
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, http.StatusUnsupportedMediaType, errors.New("unsupported Content-Encoding " + strconv.Quote(ce) + ": send the body uncompressed")
	}
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, limit))
	first, err := firstByte(body)
	if tooLarge(err) {
		return nil, http.StatusRequestEntityTooLarge, overLimit
	}
	var m publish.Message
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "" && r.Header.Get("Content-Type") == "" && first == '{' {
		ct = "application/json"
	}
	switch ct {
	case "application/json":
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, overLimit
			}
			return nil, http.StatusBadRequest, fmt.Errorf("bad JSON: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, overLimit
			}
			return nil, http.StatusBadRequest, errors.New("bad JSON: more than one object")
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		// ParseForm and ParseMultipartForm each for its own type:
		// ParseMultipartForm drops ParseForm's errors (the size limit
		// among them) when the body is not multipart.
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
		if ct == "multipart/form-data" {
			err = r.ParseMultipartForm(limit)
			if r.MultipartForm != nil {
				defer r.MultipartForm.RemoveAll()
			}
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, overLimit
			}
			return nil, http.StatusBadRequest, fmt.Errorf("bad form: %w", err)
		}
		m.Tokens = r.PostForm["token"]
		m.Data = r.PostForm.Get("data")
		m.Event = r.PostForm.Get("event")
		m.Exclude = r.PostForm.Get("exclude")
		m.IdempotencyKey = r.PostForm.Get("idempotency_key")
		if len(m.Tokens) == 0 && first == '{' {
			return nil, http.StatusBadRequest, errors.New("no token given (the body looks like JSON: send Content-Type: application/json)")
		}
		// A JSON string is text by construction; a form field is bytes.
		if !utf8.ValidString(m.Data) {
			return nil, http.StatusBadRequest, errors.New("data is not valid UTF-8")
		}
	default:
		return nil, http.StatusUnsupportedMediaType, errors.New("send application/json or form fields")
	}
	return &m, http.StatusOK, nil
}

// bodyLimit is the largest body read: the data limit plus room for the
// other fields and for escaping.
func (h *Handler) bodyLimit() int64 {
	data := h.Pipeline.Limits.MaxData
	if data <= 0 {
		data = hub.DefaultMaxData
	}
	return int64(data) + 64<<10
}

// firstByte skips JSON whitespace and returns the next byte without
// consuming it; 0 and the read error at the end of the body.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func (h *Handler) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the body is JSON, never HTML: keep "<secret>" readable
	enc.Encode(map[string]string{"error": msg})
}
