package hub

import (
	"bytes"

	"github.com/hasses-go/hasses/internal/sse"
)

// HistoryEvent is one retained event, decoded for a reader of the history.
type HistoryEvent struct {
	ID     string
	Event  string   // empty for an unnamed event
	Data   []byte   // the data lines joined by "\n", as EventSource gives them
	Tokens []string // the requested tokens whose log holds it ("*" for a publication to everyone)
}

// HistoryQuery says what History reads: the events a stream subscribed
// to Tokens, with client id ID, would replay after the id After.
type HistoryQuery struct {
	Tokens []string
	ID     string // a stream's client id: events that exclude it are left out
	After  string // empty: the newest Limit events
	// Limit bounds the events returned; 0 asks only for the position
	// (LastID, Replay). MaxBytes, when positive, bounds their data (the
	// event that crosses it is kept).
	Limit    int
	MaxBytes int
}

// HistoryResult is History's answer.
type HistoryResult struct {
	Events []HistoryEvent
	// LastID is the position the answer brings a reader to: the id of the
	// last event returned when the limit cut the answer short (ask again
	// with After set to it), else the id of the newest event now. A stream
	// opened with Last-Event-ID LastID receives exactly what follows.
	LastID string
	// Replay is what a stream opened with Last-Event-ID After would be
	// told (X-Hasses-Replay); ReplayNone without After.
	Replay Replay
	// More reports that the limit cut the answer short.
	More bool
}

// History reads the retained events q selects, without subscribing: the
// same events, in the same order and with the same meaning of Replay, as
// a stream subscribed to q.Tokens replays after q.After. The lock is held
// for at most q.Limit events.
func (h *Hub) History(q HistoryQuery) HistoryResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	type src struct {
		t    *topic
		name string
		next uint64
	}
	// The topics a stream subscribed to q.Tokens reads; a token without a
	// topic has no events, and may have lost those up to h.lostSeq.
	var srcs []src
	floor := uint64(0)
	star := false
	for _, tok := range q.Tokens {
		star = star || tok == "*"
	}
	if star {
		srcs = append(srcs, src{t: h.all})
	} else {
		srcs = append(srcs, src{t: h.bcast, name: "*"})
		for _, tok := range q.Tokens {
			if t := h.topics[tok]; t != nil {
				srcs = append(srcs, src{t: t, name: tok})
			} else {
				floor = max(floor, h.lostSeq)
			}
		}
	}
	for _, s := range srcs {
		floor = max(floor, h.replayFloor(s.t))
	}

	res := HistoryResult{Replay: ReplayNone}
	cursor := uint64(0)
	if q.After != "" {
		// As Subscribe decides it.
		res.Replay = ReplayUnknown
		cursor = h.seq
		ahead := uint64(0)
		if h.replica {
			ahead = clusterAhead
		}
		if lid, ok := sse.ParseID(q.After); ok && lid.Epoch == h.cfg.Epoch && lid.Seq <= h.seq+ahead {
			res.Replay = ReplayComplete
			cursor = lid.Seq
			if floor > lid.Seq {
				res.Replay = ReplayGap
				cursor = floor
			}
		}
	}
	limit := max(q.Limit, 0)

	// Without After, start where the newest limit events begin: walk the
	// merge backwards once to find that cursor.
	if q.After == "" && limit > 0 {
		idx := make([]uint64, len(srcs))
		for i, s := range srcs {
			idx[i] = s.t.head()
		}
		for n := 0; n < limit; n++ {
			var ev *Event
			for i, s := range srcs {
				if idx[i] > s.t.base {
					if e := s.t.entries[idx[i]-1-s.t.base].ev; ev == nil || e.Seq > ev.Seq {
						ev = e
					}
				}
			}
			if ev == nil {
				break
			}
			for i, s := range srcs {
				if idx[i] > s.t.base && s.t.entries[idx[i]-1-s.t.base].ev == ev {
					idx[i]--
				}
			}
			if (ev.Exclude != "" && ev.Exclude == q.ID) || ev.end != nil {
				n--
			}
			cursor = ev.Seq - 1
		}
	}

	for i := range srcs {
		srcs[i].next = srcs[i].t.after(cursor)
	}
	size := 0
	last := cursor
	for limit > 0 {
		var ev *Event
		for _, s := range srcs {
			if s.next < s.t.head() {
				if e := s.t.entries[s.next-s.t.base].ev; ev == nil || e.Seq < ev.Seq {
					ev = e
				}
			}
		}
		if ev == nil {
			break
		}
		if len(res.Events) == limit || (q.MaxBytes > 0 && size >= q.MaxBytes) {
			res.More = true
			break
		}
		var names []string
		for i, s := range srcs {
			if s.next < s.t.head() && s.t.entries[s.next-s.t.base].ev == ev {
				srcs[i].next++
				if s.name != "" {
					names = append(names, s.name)
				}
			}
		}
		last = ev.Seq
		if (ev.Exclude != "" && ev.Exclude == q.ID) || ev.end != nil { // a disconnection is no one's history
			continue
		}
		he := decodeEvent(ev.Text())
		if star {
			names = holders(ev)
		}
		he.Tokens = names
		size += len(he.Data)
		res.Events = append(res.Events, he)
	}
	if !res.More {
		last = max(last, h.seq)
	}
	if last > 0 {
		res.LastID = sse.ID{Epoch: h.cfg.Epoch, Seq: last}.String()
	}
	return res
}

// holders names, for a "*" reader, the topics that hold ev.
func holders(ev *Event) []string {
	var names []string
	for _, t := range ev.topics {
		switch {
		case t.name == "*all":
		case t.special:
			names = append(names, "*")
		default:
			names = append(names, t.name)
		}
	}
	return names
}

// decodeEvent reads back the fields sse.AppendEvent wrote.
func decodeEvent(text []byte) HistoryEvent {
	var e HistoryEvent
	var data [][]byte
	for _, line := range bytes.Split(bytes.TrimSuffix(text, []byte("\n\n")), []byte("\n")) {
		name, value, _ := bytes.Cut(line, []byte(": "))
		switch string(name) {
		case "id":
			e.ID = string(value)
		case "event":
			e.Event = string(value)
		case "data":
			data = append(data, value)
		}
	}
	e.Data = bytes.Join(data, []byte("\n"))
	if e.Data == nil {
		e.Data = []byte{}
	}
	return e
}
