// Package pubapi is the HTTP publish API: POST /publish with a JSON object
// or form fields, on its own listener (-pub), guarded by the publisher
// secret or the network allow-list, and rate limited per publisher.
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
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/refusal"
	"github.com/hasses-go/hasses/publish"
)

// Publisher is where messages go: the hub.
type Publisher interface {
	Publish(m hub.Message) (hub.Result, error)
}

// Handler serves the publish API.
type Handler struct {
	Publisher Publisher
	Policy    *access.Policy
	Limits    publish.Limits
	Rate      *access.RateLimiter // nil: unlimited
	Throttle  *access.Throttle    // wrong secrets per address; nil: none
	Refusals  *refusal.Log        // logs wrong secrets; nil: none
	Logger    *slog.Logger

	// Counters of refused requests, by reason.
	Unauthorized, Forbidden, TooLarge, RateLimited, BadRequest, Published atomic.Int64
}

// ServeHTTP routes /publish.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/publish" {
		h.fail(w, http.StatusNotFound, "not found: the publish API is POST /publish")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		h.fail(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	addr := access.Peer(r)
	if !h.Policy.Permits(addr) {
		h.Forbidden.Add(1)
		h.fail(w, http.StatusForbidden, "publishing is not allowed from "+addr.String())
		return
	}
	if retry, blocked := h.Throttle.Blocked(addr, time.Now()); blocked {
		h.RateLimited.Add(1)
		h.Refusals.Refused(refusal.Guessing, http.StatusTooManyRequests, addr.String(), nil)
		w.Header().Set("Retry-After", access.RetryAfter(retry))
		h.fail(w, http.StatusTooManyRequests, "too many wrong secrets: try again later")
		return
	}
	if !h.Policy.CheckSecret(access.Bearer(r)) {
		h.Unauthorized.Add(1)
		h.Throttle.Fail(addr, time.Now())
		h.Refusals.Refused(refusal.WrongSecret, http.StatusUnauthorized, addr.String(), nil)
		w.Header().Set("WWW-Authenticate", `Bearer realm="hasses publish"`)
		h.fail(w, http.StatusUnauthorized, "missing or wrong secret: send Authorization: Bearer <secret>")
		return
	}
	if !h.Rate.Allow(addr, time.Now()) {
		h.RateLimited.Add(1)
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusTooManyRequests, "publish rate limit exceeded")
		return
	}
	m, status, err := h.decode(w, r)
	if err != nil {
		if status == http.StatusRequestEntityTooLarge {
			h.TooLarge.Add(1)
		} else {
			h.BadRequest.Add(1)
		}
		h.fail(w, status, err.Error())
		return
	}
	res, err := h.Publisher.Publish(hub.Message{Targets: m.Targets(), Exclude: m.Exclude, Event: m.Event, Data: []byte(m.Data)})
	if errors.Is(err, hub.ErrUnavailable) { // a cluster node without Redis
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if err != nil {
		h.BadRequest.Add(1)
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	h.Published.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(publish.Result{IDs: []string{res.ID}, Receivers: res.Receivers})
}

// decode reads a JSON object or form fields (token, repeatable; data;
// event; exclude) and validates them. A body over the limit is 413 in every
// encoding; a body without Content-Type is JSON if it starts with '{'.
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
		if len(m.Tokens) == 0 && first == '{' {
			return nil, http.StatusBadRequest, errors.New("no token given (the body looks like JSON: send Content-Type: application/json)")
		}
	default:
		return nil, http.StatusUnsupportedMediaType, errors.New("send application/json or form fields")
	}
	if err := m.Validate(h.Limits); err != nil {
		if errors.Is(err, publish.ErrTooLarge) {
			return nil, http.StatusRequestEntityTooLarge, err
		}
		return nil, http.StatusBadRequest, err
	}
	return &m, http.StatusOK, nil
}

// bodyLimit is the largest body read: the data limit plus room for the
// other fields and for escaping.
func (h *Handler) bodyLimit() int64 {
	if h.Limits.MaxData <= 0 {
		return 1 << 20
	}
	return int64(h.Limits.MaxData) + 64<<10
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
