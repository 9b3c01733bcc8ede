package pubapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hasses-go/hasses/internal/hub"
)

// PresenceReader lists who is subscribed to tokens: this node's streams,
// or, in a cluster, every node's.
type PresenceReader interface {
	Presence(ctx context.Context, tokens []string) ([]hub.TokenPresence, error)
}

// servePresence answers GET /presence?token=T[&token=...].
func (h *Handler) servePresence(w http.ResponseWriter, r *http.Request) {
	tokens := r.URL.Query()["token"]
	if err := h.checkTokens(tokens, "GET /presence?token=T"); err != nil {
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := h.Presence.Presence(r.Context(), tokens)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	ans := struct {
		Presence []hub.TokenPresence `json:"presence"`
	}{list}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(ans)
}

// checkTokens bounds the tokens a read request names, as a publication's.
func (h *Handler) checkTokens(tokens []string, usage string) error {
	l := h.Pipeline.Limits
	switch {
	case len(tokens) == 0:
		return fmt.Errorf("no token given: %s", usage)
	case l.MaxTargets > 0 && len(tokens) > l.MaxTargets:
		return fmt.Errorf("too many tokens: %d, limit %d", len(tokens), l.MaxTargets)
	}
	for _, t := range tokens {
		if t == "" || (l.MaxTokenLen > 0 && len(t) > l.MaxTokenLen) {
			return fmt.Errorf("malformed token %q: empty or longer than %d bytes", t, l.MaxTokenLen)
		}
	}
	return nil
}
