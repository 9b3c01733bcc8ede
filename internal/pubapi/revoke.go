package pubapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
	"github.com/hasses-go/hasses/internal/subauth"
)

// Revoker keeps the revocations of subscriber tokens: the server's list,
// stored in Redis too in a cluster.
type Revoker interface {
	// Revoke records r on this node (and where every node finds it).
	Revoke(ctx context.Context, r subauth.Revocation) error
	Revocations(now time.Time) []subauth.Revocation
}

type revokeRequest struct {
	User  string    `json:"user"`
	Until time.Time `json:"until"` // RFC 3339; zero: subauth.MaxRevokeFor from now
}

// serveRevoke answers GET /revoke with the revocations in force, and POST
// /revoke {"user":"alice"[,"until":"RFC 3339"]} by refusing alice's
// subscriber tokens issued until now, until then, and ending her streams
// on every node as POST /disconnect does.
func (h *Handler) serveRevoke(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.Method == http.MethodGet {
		list := h.Revoker.Revocations(now)
		if list == nil {
			list = []subauth.Revocation{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"revocations": list})
		return
	}
	var q revokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	err := dec.Decode(&q)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("more than one object")
		}
	}
	switch {
	case err != nil:
		err = fmt.Errorf("bad JSON: %w", err)
	case q.User == "" || len(q.User) > maxMatchLen:
		err = errors.New(`give the user, as the tokens' "sub" says it: {"user":"..."} (at most 256 bytes)`)
	case q.Until.IsZero():
		q.Until = now.Add(subauth.MaxRevokeFor)
	case !q.Until.After(now) || q.Until.After(now.Add(subauth.MaxRevokeFor)):
		err = fmt.Errorf("until must be in the next %v", subauth.MaxRevokeFor)
	}
	if err != nil {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	// Tokens carry whole seconds: those issued in this second go too.
	rev := subauth.Revocation{User: q.User, At: now.Truncate(time.Second).Add(time.Second), Until: q.Until}
	if err := h.Revoker.Revoke(r.Context(), rev); err != nil {
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	m := hub.Message{Targets: []string{"*"}, Event: DisconnectEvent, Data: []byte(`{"reason":"revoked"}`), Reply: true,
		Disconnect: &hub.Match{User: q.User, Revoke: &hub.Revocation{At: rev.At.UnixMilli(), Until: rev.Until.UnixMilli()}}}
	res, err := h.Pipeline.Publish(m, pipeline.HTTP)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"streams": res.Receivers, "until": rev.Until.UTC().Format(time.RFC3339)})
}
