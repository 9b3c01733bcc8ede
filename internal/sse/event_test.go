package sse

import (
	"bytes"
	"strings"
	"testing"
)

func TestAppendEventWire(t *testing.T) {
	got := string(AppendEvent(nil, []byte("1795331136"), "", []byte("hello")))
	want := "id: 1795331136\ndata: hello\n\n" // hasses' payload, spec 7.1
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got = string(AppendEvent(nil, []byte("a-1"), "news", []byte("l1\r\nl2\rl3\nl4")))
	want = "id: a-1\nevent: news\ndata: l1\ndata: l2\ndata: l3\ndata: l4\n\n"
	if got != want {
		t.Fatalf("got %q, want payload %q", got, want)
	}
}

func TestLongBodiesAreNeverCut(t *testing.T) {
	for _, n := range []int{2000, 2020, 2100, 4000, 70000} { // spec 7.4's table
		body := bytes.Repeat([]byte("b"), n)
		frame := AppendEvent(nil, []byte("x-1"), "", body)
		payload := string(frame)
		if want := "id: x-1\ndata: " + string(body) + "\n\n"; payload != want {
			t.Fatalf("body of %d bytes: payload of %d bytes, want %d", n, len(payload), len(want))
		}
	}
}

// The stream's own bytes never end a data-less block, except the opening id
// when it is meant to be dispatched.
func TestOwnLines(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{string(AppendComment(nil, "")), ":\n"},
		{string(AppendComment(nil, "x")), ":x\n"},
		{string(AppendRetry(nil, 2500)), "retry: 2500\n"},
		{string(AppendID(nil, []byte("a-0"), false)), "id: a-0\n"},
		{string(AppendID(nil, []byte("a-0"), true)), "id: a-0\n\n"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("a-1", "", []byte("hello"))
	f.Add("z-99", "update", []byte("a\nb\r\nc\rd"))
	f.Add("1", "", []byte("\x00nul\r"))
	f.Add("1", "e", []byte(""))
	f.Fuzz(func(t *testing.T, id, event string, data []byte) {
		if strings.ContainsAny(id+event, "\r\n\x00") {
			return // validated by the caller
		}
		frame := AppendEvent(nil, []byte(id), event, data)
		payload := string(frame)
		// The payload must parse back, as EventSource would, to exactly the
		// fields put in, with every line break turned into "\n".
		if !strings.HasSuffix(payload, "\n\n") {
			t.Fatalf("payload does not end the event: %q", payload)
		}
		var gotID, gotEvent string
		var lines []string
		for _, line := range strings.Split(strings.TrimSuffix(payload, "\n\n"), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				gotID = v
			case "event":
				gotEvent = v
			case "data":
				lines = append(lines, v)
			default:
				t.Fatalf("unexpected line %q in %q", line, payload)
			}
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "").Replace(string(data))
		if gotID != id || gotEvent != event || strings.Join(lines, "\n") != want {
			t.Fatalf("round trip: id %q event %q data %q; want %q %q %q", gotID, gotEvent, lines, id, event, want)
		}
	})
}

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(strings.Repeat("x", 64))
	id := []byte("mhq0x2kb-123456")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], id, "", data)
	}
}

func BenchmarkAppendEventMultiline(b *testing.B) {
	data := []byte(strings.Repeat("line of text\n", 20))
	id := []byte("mhq0x2kb-123456")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], id, "update", data)
	}
}
