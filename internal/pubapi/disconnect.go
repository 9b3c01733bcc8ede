package pubapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
)

// DisconnectEvent is the event a disconnected stream receives last.
const DisconnectEvent = "hasses-disconnect"

// maxMatchLen bounds the id and the user a disconnection names (a client
// id is at most 256 bytes).
const maxMatchLen = 256

// disconnectRequest selects the streams POST /disconnect ends: those of a
// client id, of a user (a subscriber token's "sub"), of a token, or of
// several of these at once (all must match).
type disconnectRequest struct {
	ID    string `json:"id,omitempty"`
	User  string `json:"user,omitempty"`
	Token string `json:"token,omitempty"`
}

// serveDisconnect ends the matching streams on every node: each receives
// an event named hasses-disconnect, then its stream ends. They may
// reconnect (a kick, not a ban). It answers {"streams":N}, the streams of
// this node it ended.
func (h *Handler) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	var q disconnectRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		h.fail(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		h.fail(w, http.StatusBadRequest, "bad JSON: more than one object")
		return
	}
	if q.ID == "" && q.User == "" && q.Token == "" {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		h.fail(w, http.StatusBadRequest, `say whose streams: {"id":"..."}, {"user":"..."} or {"token":"..."}`)
		return
	}
	m := hub.Message{Targets: []string{"*"}, Event: DisconnectEvent, Data: []byte(`{"reason":"disconnect"}`),
		Disconnect: &hub.Match{ID: q.ID, User: q.User}, Reply: true}
	if q.Token != "" {
		m.Targets = []string{q.Token}
	}
	if len(q.ID) > maxMatchLen || len(q.User) > maxMatchLen {
		h.Pipeline.Refuse(pipeline.HTTP, pipeline.BadRequest)
		h.fail(w, http.StatusBadRequest, "id or user longer than 256 bytes")
		return
	}
	res, err := h.Pipeline.Publish(m, pipeline.HTTP)
	switch {
	case errors.Is(err, hub.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		h.fail(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"streams": res.Receivers})
}
