// Package pubapi is the HTTP publish API: POST /publish with a JSON object
// or form fields, on its own listener (-pub), guarded by the publisher
// secret or the network allow-list, and rate limited per publisher.
package pubapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
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
	addr := remoteAddr(r)
	if !h.Policy.Permits(addr) {
		h.Forbidden.Add(1)
		h.fail(w, http.StatusForbidden, "publishing is not allowed from "+addr.String())
		return
	}
	if !h.Policy.CheckSecret(bearer(r)) {
		h.Unauthorized.Add(1)
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
// event; exclude) and validates them.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request) (*publish.Message, int, error) {
	limit := int64(h.Limits.MaxData) + 64<<10 // room for the other fields and escaping
	if h.Limits.MaxData <= 0 {
		limit = 1 << 20
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var m publish.Message
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
			}
			return nil, http.StatusBadRequest, fmt.Errorf("bad JSON: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, http.StatusBadRequest, errors.New("bad JSON: more than one object")
		}
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(limit); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			if tooLarge(err) {
				return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit)
			}
			return nil, http.StatusBadRequest, fmt.Errorf("bad form: %w", err)
		}
		m.Tokens = r.PostForm["token"]
		m.Data = r.PostForm.Get("data")
		m.Event = r.PostForm.Get("event")
		m.Exclude = r.PostForm.Get("exclude")
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

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func (h *Handler) fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a
	}
	return ap.Addr()
}
