package hub

import (
	"errors"
	"strings"
	"testing"

	"github.com/hasses-go/hasses/internal/sse"
)

func TestValidate(t *testing.T) {
	l := Limits{MaxData: 10, MaxTokenLen: 8, MaxIDLen: 4, MaxTargets: 2}
	msg := func(targets ...string) Message { return Message{Targets: targets, Data: []byte("x")} }
	for _, c := range []struct {
		m    Message
		want error // nil: valid
		why  string
	}{
		{msg("a"), nil, ""},
		{msg("*"), nil, ""},
		{msg("room*"), nil, ""},
		{msg("a", "b*"), nil, ""},
		{Message{Targets: []string{"a"}, Data: []byte("l1\r\nl2\rl3\n")}, nil, ""},
		{Message{Targets: []string{"a"}, Event: "upd", Exclude: "ab-c", Data: []byte("x")}, nil, ""},
		{Message{Data: []byte("x")}, ErrNoTarget, ""},
		{msg("a", "b", "c"), ErrTooManyTok, ""},
		{msg(""), ErrBadToken, "empty"},
		{msg("toolongtok"), ErrBadToken, "longer than 8"},
		{msg("user-42"), ErrBadToken, "separates tokens"},
		{msg("a#b"), ErrBadToken, "fragment"},
		{msg("a*b"), ErrBadToken, "may only end"},
		{msg("a b"), ErrBadToken, "blank"},
		{msg("a\r\nb"), ErrBadToken, "control"},
		{msg("a\x00"), ErrBadToken, "control"},
		{msg("a\x7f"), ErrBadToken, "control"},
		{Message{Targets: []string{"a"}, Event: "e\nid: 1", Data: []byte("x")}, ErrInjection, ""},
		{Message{Targets: []string{"a"}, Exclude: "c\r", Data: []byte("x")}, ErrInjection, ""},
		{Message{Targets: []string{"a"}, Event: "longevent", Data: []byte("x")}, ErrBadEvent, ""},
		{Message{Targets: []string{"a"}, Exclude: "12345", Data: []byte("x")}, ErrBadExclude, ""},
		{Message{Targets: []string{"a"}}, ErrEmptyData, ""},
		{Message{Targets: []string{"a"}, Data: []byte("0123456789a")}, ErrTooLarge, ""},
		{Message{Targets: []string{"a"}, Data: []byte("a\x00b")}, ErrNULData, ""},
	} {
		err := c.m.Validate(l)
		if c.want == nil {
			if err != nil {
				t.Errorf("%+v: %v, want valid", c.m, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%+v: %v, want %v (%q)", c.m, err, c.want, c.why)
		}
	}
	// Zero limits keep the guarantee and bound nothing else.
	big := Message{Targets: []string{strings.Repeat("t", 1000)}, Event: strings.Repeat("e", 1000), Data: make([]byte, 1<<20)}
	for i := range big.Data {
		big.Data[i] = 'd'
	}
	if err := big.Validate(Limits{}); err != nil {
		t.Errorf("zero limits: %v", err)
	}
	if err := (&Message{Targets: []string{"a"}, Event: "a\n", Data: []byte("x")}).Validate(Limits{}); !errors.Is(err, ErrInjection) {
		t.Errorf("zero limits must still refuse injection: %v", err)
	}
}

// FuzzValidate checks the guarantee: whatever passes encodes to exactly
// one event with the given name, id and data lines.
func FuzzValidate(f *testing.F) {
	f.Add("room", "upd", "x", []byte("hello\nworld"))
	f.Add("a*", "", "", []byte("\r\n"))
	f.Add("*", "e\nid: 9", "c", []byte("data"))
	f.Fuzz(func(t *testing.T, target, event, exclude string, data []byte) {
		m := Message{Targets: []string{target}, Event: event, Exclude: exclude, Data: data}
		if m.Validate(Limits{}) != nil {
			return
		}
		h := New(Config{Epoch: 1})
		ev := h.encode(sse.ID{Epoch: 1, Seq: 1}, m, 0)
		text := string(ev.Text())
		if !strings.HasSuffix(text, "\n\n") || strings.Count(text, "\n\n") != 1 {
			t.Fatalf("not exactly one event: %q", text)
		}
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n\n"), "\n") {
			name, _, _ := strings.Cut(line, ":")
			switch name {
			case "id", "data":
			case "event":
				if event == "" {
					t.Fatalf("event field without a name: %q", text)
				}
			default:
				t.Fatalf("unexpected field %q in %q", name, text)
			}
		}
	})
}
