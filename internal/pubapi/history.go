package pubapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/publish"
)

// HistoryReader reads a node's retained events: the hub (in a cluster, the
// node's replica of the log, so that every node answers alike).
type HistoryReader interface {
	History(q hub.HistoryQuery) hub.HistoryResult
}

// Bounds of a history answer.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	maxHistoryBytes     = 1 << 20 // data per answer; the rest is another page
)

// serveHistory answers GET /history?token=T[&token=...][&after=ID][&limit=N][&id=CLIENT]:
// the events a stream subscribed to those tokens (with that client id)
// replays after ID.
func (h *Handler) serveHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	hq := hub.HistoryQuery{Tokens: q["token"], ID: q.Get("id"), After: q.Get("after"), Limit: DefaultHistoryLimit, MaxBytes: maxHistoryBytes}
	if err := h.checkHistory(&hq, q.Get("limit")); err != nil {
		h.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	res := h.History.History(hq)
	ans := publish.History{Events: make([]publish.HistoryEvent, 0, len(res.Events)), LastID: res.LastID, More: res.More}
	if hq.After != "" {
		ans.Replay = res.Replay.String()
	}
	for _, e := range res.Events {
		ans.Events = append(ans.Events, publish.HistoryEvent{ID: e.ID, Event: e.Event, Tokens: e.Tokens, Data: string(e.Data)})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(ans)
}

func (h *Handler) checkHistory(q *hub.HistoryQuery, limit string) error {
	if err := h.checkTokens(q.Tokens, "GET /history?token=T"); err != nil {
		return err
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 0 || n > MaxHistoryLimit {
			return fmt.Errorf("limit must be a number from 0 to %d", MaxHistoryLimit)
		}
		q.Limit = n
	}
	return nil
}
