package hub

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hasses-go/hasses/internal/sse"
)

// History answers exactly what a stream subscribed to the same tokens
// replays after the same id: the same events, in the same order, with the
// same replay verdict, including gaps at the history bound.
func TestHistoryEqualsReplay(t *testing.T) {
	h, o, _ := newHub(t, Config{Epoch: 7, HistoryCount: 5})
	var ids []string
	for i, m := range []Message{
		{Targets: []string{"a"}},
		{Targets: []string{"b"}, Event: "upd"},
		{Targets: []string{"*"}},
		{Targets: []string{"a", "b"}},
		{Targets: []string{"a*"}},
		{Targets: []string{"a"}, Exclude: "me"},
		{Targets: []string{"c"}},
		{Targets: []string{"ab"}},
		{Targets: []string{"a"}},
		{Targets: []string{"b"}},
		{Targets: []string{"a"}},
		{Targets: []string{"a"}},
		{Targets: []string{"a"}},
	} {
		m.Data = []byte(fmt.Sprintf("m%d\nline2", i))
		r, err := h.Publish(m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	for _, tokens := range [][]string{{"a"}, {"b"}, {"a", "b"}, {"ab"}, {"*"}, {"c", "nothing"}, {"nothing"}} {
		for _, id := range []string{"", "me"} {
			for _, after := range append([]string{"7-0", "8-3", "garbage"}, ids...) {
				got := h.History(HistoryQuery{Tokens: tokens, ID: id, After: after, Limit: 100})
				s, replay := h.Subscribe(o, tokens, id, after, nil)
				r := &reader{h: h, s: s}
				r.drain(t, -1)
				h.Unsubscribe(s)
				var data []string
				for _, e := range got.Events {
					data = append(data, string(e.Data))
				}
				if got.Replay != replay || !slices.Equal(data, r.got) {
					t.Errorf("%v id %q after %s: history %v %q, replay %v %q", tokens, id, after, got.Replay, data, replay, r.got)
				}
				if _, head := h.Head(); got.LastID != (sse.ID{Epoch: 7, Seq: head}).String() || got.More {
					t.Errorf("%v after %s: last id %s (more %v), want the head", tokens, after, got.LastID, got.More)
				}
			}
		}
	}
}

func TestHistoryFieldsAndPaging(t *testing.T) {
	h, _, _ := newHub(t, Config{Epoch: 7})
	var ids []string
	for i, m := range []Message{
		{Targets: []string{"a"}},
		{Targets: []string{"b"}, Event: "upd"},
		{Targets: []string{"*"}},
		{Targets: []string{"a", "b"}},
		{Targets: []string{"a"}},
	} {
		m.Data = []byte(fmt.Sprintf("m%d\nline2", i))
		r, _ := h.Publish(m)
		ids = append(ids, r.ID)
	}
	// Fields: the event name, the data lines, the tokens that hold it.
	got := h.History(HistoryQuery{Tokens: []string{"a", "b"}, After: ids[0], Limit: 3})
	if len(got.Events) != 3 || !got.More || got.LastID != ids[3] {
		t.Fatalf("limit 3: %+v", got)
	}
	if e := got.Events[0]; e.ID != ids[1] || e.Event != "upd" || string(e.Data) != "m1\nline2" || !slices.Equal(e.Tokens, []string{"b"}) {
		t.Errorf("event 1: %+v", e)
	}
	if e := got.Events[1]; !slices.Equal(e.Tokens, []string{"*"}) {
		t.Errorf("event 2 (to everyone): %+v", e)
	}
	if e := got.Events[2]; !slices.Equal(e.Tokens, []string{"a", "b"}) {
		t.Errorf("event 3 (to a and b): %+v", e)
	}
	// Paging with LastID reads the rest, once.
	next := h.History(HistoryQuery{Tokens: []string{"a", "b"}, After: got.LastID, Limit: 100})
	if next.Replay != ReplayComplete || len(next.Events) != 1 || next.Events[0].ID != ids[4] || next.More {
		t.Errorf("next page: %+v", next)
	}
}

func TestHistoryNewestAndPosition(t *testing.T) {
	h, _, _ := newHub(t, Config{Epoch: 3})
	if got := h.History(HistoryQuery{Tokens: []string{"a"}}); got.LastID != "" || len(got.Events) != 0 || got.Replay != ReplayNone {
		t.Fatalf("empty hub: %+v", got)
	}
	for i := range 10 {
		tok := "a"
		if i%2 == 1 {
			tok = "b"
		}
		pub(t, h, tok, fmt.Sprint(i))
	}
	// limit=0: only the position now.
	if got := h.History(HistoryQuery{Tokens: []string{"a"}}); got.LastID != "3-10" || len(got.Events) != 0 {
		t.Fatalf("position: %+v", got)
	}
	// Without After: the newest events, oldest first.
	got := h.History(HistoryQuery{Tokens: []string{"a"}, Limit: 3})
	var data []string
	for _, e := range got.Events {
		data = append(data, string(e.Data))
	}
	if strings.Join(data, ",") != "4,6,8" || got.LastID != "3-10" || got.More {
		t.Fatalf("newest 3 of a: %q %+v", data, got)
	}
	// MaxBytes cuts the answer after the event that crosses it.
	got = h.History(HistoryQuery{Tokens: []string{"a", "b"}, After: "3-1", Limit: 100, MaxBytes: 2})
	if len(got.Events) != 2 || !got.More || got.LastID != "3-3" || got.Replay != ReplayComplete {
		t.Fatalf("max bytes: %+v", got)
	}
}
