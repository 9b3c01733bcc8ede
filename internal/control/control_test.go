package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
)

func units(f *Framer, parts ...string) []string {
	var out []string
	emit := func(u Unit) {
		if !u.Oversized {
			out = append(out, string(u.Data))
		}
	}
	for _, p := range parts {
		f.Feed([]byte(p), emit)
	}
	f.Flush(emit)
	return out
}

func TestFramer(t *testing.T) {
	for _, c := range []struct {
		name  string
		parts []string
		want  []string
	}{
		{"newline-terminated", []string{"room=hi\n"}, []string{"room=hi"}},
		{"no newline (PHP)", []string{"room=hi"}, []string{"room=hi"}},
		{"separator", []string{"a=1;b=2;"}, []string{"a=1", "b=2"}},
		{"newline between messages", []string{"a=1\nb=2\n"}, []string{"a=1", "b=2"}},
		{"multi-line body", []string{"a=line1\nline2\nline3\n"}, []string{"a=line1\nline2\nline3"}},
		{"CRLF", []string{"a=1\r\nb=2\r\n"}, []string{"a=1", "b=2"}},
		{"split inside a unit", []string{"a=first;a=sec", "ond;a=third"}, []string{"a=first", "a=second", "a=third"}},
		{"split after newline", []string{"a=1\nb", "=2\n"}, []string{"a=1", "b=2"}},
		{"command after newline", []string{"a=x\ntcpstatus\n"}, []string{"a=x", "tcpstatus"}},
		{"body line with spaces and =", []string{"a=x\nkey = value\n"}, []string{"a=x\nkey = value"}},
		{"empty units dropped", []string{";;\n;a=1;;"}, []string{"a=1"}},
		{"custom separator", []string{"a=1|b=2"}, []string{"a=1", "b=2"}},
	} {
		f := &Framer{}
		if c.name == "custom separator" {
			f.Sep = '|'
		}
		if got := units(f, c.parts...); strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// Cutting the input anywhere but right after a newline must give the same
// units as feeding it at once. (A newline that ends the bytes received so
// far ends the unit: spec 9.1.)
func TestFramerSplitsAnywhere(t *testing.T) {
	input := "a=1;b=two words\nc=3\nmore of c\ntcpstatus\nd-x=4;e*=5\n"
	want := units(&Framer{}, input)
	if len(want) != 6 {
		t.Fatalf("whole input: %q", want)
	}
	for cut := 1; cut < len(input); cut++ {
		if input[cut-1] == '\n' {
			continue
		}
		if got := units(&Framer{}, input[:cut], input[cut:]); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("cut at %d: %q, want %q", cut, got, want)
		}
	}
	input = "a=1;b=two words\nc=3\ntcpstatus\nd-x=4;e*=5\n"
	want = units(&Framer{}, input)
	var parts []string
	for i := range input {
		parts = append(parts, input[i:i+1])
	}
	if got := units(&Framer{}, parts...); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("byte by byte: %q, want %q", got, want)
	}
}

func TestFramerRejectsOversizedWhole(t *testing.T) {
	rejected := 0
	count := func(u Unit) {
		if u.Oversized {
			rejected++
		}
	}
	f := &Framer{MaxBody: 100}
	big := "t=" + strings.Repeat("x", 300)
	got := units(f, big[:150], big[150:]+"\nline2 of big\nok=after;", "next=1")
	rejected = len(oversized(&Framer{MaxBody: 100}, big[:150], big[150:]+"\nline2 of big\nok=after;", "next=1"))
	if strings.Join(got, "|") != "ok=after|next=1" || rejected != 1 {
		t.Fatalf("got %q, %d rejected; want the two small units and 1 rejection", got, rejected)
	}
	rejected = 0
	got = units(&Framer{MaxBody: 100}, big+";small=1")
	(&Framer{MaxBody: 100}).Feed([]byte(big+";small=1"), count)
	if strings.Join(got, "|") != "small=1" || rejected != 1 {
		t.Fatalf("in one piece: got %q, %d rejected", got, rejected)
	}
}

func TestParseMessage(t *testing.T) {
	for _, c := range []struct {
		in                    string
		target, exclude, data string
		ok                    bool
	}{
		{"room=hello", "room", "", "hello", true},
		{"t=a=b=c", "t", "", "a=b=c", true},
		{"t==x", "t", "", "=x", true},
		{"room*zzz=m", "room*", "", "m", true},
		{"*=all", "*", "", "all", true},
		{"t-A-x=m", "t", "A-x", "m", true},
		{"*-id=m", "*", "id", "m", true},
		{"pre*-id=m", "pre*", "id", "m", true},
		{"pre-id*=m", "", "", "", false},
		{"t=", "", "", "", false},
		{"=x", "", "", "", false},
		{"noequals", "", "", "", false},
		{"t=ab\x00cd", "t", "", "ab", true},
		{"t#update=x", "t", "", "x", true},
		{"t-me#update=x", "t", "me", "x", true},
		{"pre*#ev=x", "pre*", "", "x", true},
		{"t=\x00", "", "", "", false},
		{strings.Repeat("k", 257) + "=m", "", "", "", false},
	} {
		// Published as the handler does it: the line syntax, then the one
		// validation of every input.
		m, err := ParseMessage([]byte(c.in))
		if err == nil {
			err = m.Validate(hub.Limits{MaxTokenLen: 256, MaxIDLen: 256})
		}
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && strings.Contains(c.in, "#") && m.Event == "" {
			t.Errorf("%q: no event name", c.in)
		}
		if c.ok && (m.Targets[0] != c.target || m.Exclude != c.exclude || string(m.Data) != c.data) {
			t.Errorf("%q: got %+v", c.in, m)
		}
	}
}

type fakeBackend struct {
	mu     sync.Mutex
	msgs   []hub.Message
	reinit bool
}

func (b *fakeBackend) Publish(m hub.Message) (hub.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, m)
	return hub.Result{ID: "x-1"}, nil
}
func (b *fakeBackend) Counters() Counters {
	return Counters{AllConn: 4, SSEConn: 3, MaxConn: 5, MsgSend: 15}
}
func (b *fakeBackend) SubscribedClients(tok string) int { return len(tok) }
func (b *fakeBackend) Clients() []ClientInfo            { return nil }
func (b *fakeBackend) Presence(_ context.Context, toks []string) ([]hub.TokenPresence, error) {
	return []hub.TokenPresence{{Token: toks[0], Streams: 2, Count: 1, Clients: []hub.Member{{ID: "tab1", User: "alice", Streams: 2}}}}, nil
}
func (b *fakeBackend) SetReinit(on bool) { b.reinit = on }
func (b *fakeBackend) Info() Info {
	return Info{Version: "2.0", Mode: "unencrypted (http)", Started: time.Now().Add(-21 * time.Second)}
}

func (b *fakeBackend) data() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		out = append(out, strings.Join(m.Targets, ",")+"="+string(m.Data))
	}
	return out
}

// backend is a Backend that also takes the pipeline's publications.
type backend interface {
	Backend
	pipeline.Sink
}

func newHandler(b backend) *Handler {
	lv := new(slog.LevelVar)
	return &Handler{Backend: b, Pipeline: &pipeline.Pipeline{Hub: b}, Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: lv})), Level: lv,
		IdleGap: 50 * time.Millisecond}
}

func TestReplies(t *testing.T) {
	h := newHandler(&fakeBackend{})
	reply := func(u string) string { return string(h.Handle(nil, []byte(u), true, "test")) }
	h.Handle(nil, []byte("t=1"), true, "test")
	h.Handle(nil, []byte("t="), true, "test") // not counted
	if got := reply("tcpnumberofclients"); got != `{"numberofclients": 4}` {
		t.Errorf("got %s", got)
	}
	if got := reply("tcpsubscribedclients:room1"); got != `{"subscribedclients": 5, "subscribedfor": "room1"}` {
		t.Errorf("got %s", got)
	}
	if got, want := reply("tcppresence:room1"), `{"presence":[{"token":"room1","streams":2,"count":1,"clients":[{"id":"tab1","user":"alice","streams":2}]}]}`; got != want {
		t.Errorf("tcppresence: %s, want %s", got, want)
	}
	if got := reply(`tcpsubscribedclients:a"b`); got != `{"subscribedclients": 3, "subscribedfor": "a\"b"}` {
		t.Errorf("got %s", got)
	}
	want := `{"version": "2.0","runningtime": "00:00:21","mode": "unencrypted (http)","loglevel": 1,"allconncli": 4,"sseconncli": 3,"maxconncli": 5,"msgproccnt": 1,"msgsendcnt": 15}`
	if got := reply("tcpstatus"); got != want {
		t.Errorf("tcpstatus\n%s\nwant\n%s", got, want)
	}
	if got := string(h.Handle(nil, []byte("tcpstatus"), false, "fifo")); got != "" {
		t.Errorf("tcp command answered on the fifo: %s", got)
	}
	for _, bad := range []string{" tcpstatus", "tcpstatus ", "TCPSTATUS", "tcpsubscribedclients:"} {
		if got := reply(bad); got != "" {
			t.Errorf("%q answered %s", bad, got)
		}
	}
	reply("loglevel_debug")
	if !strings.Contains(reply("tcpstatus"), `"loglevel": 2`) {
		t.Error("loglevel_debug not applied")
	}
	if runningTime(26*time.Hour+3*time.Minute+4*time.Second) != "1day 02:03:04" {
		t.Errorf("runningTime %q", runningTime(26*time.Hour+3*time.Minute+4*time.Second))
	}
}

func TestTCP(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeTCP(ctx, ln) }()
	defer func() { cancel(); <-done }()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Held open, no newline: answered at once.
	c := dial()
	io.WriteString(c, "tcpnumberofclients")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != `{"numberofclients": 4}` {
		t.Fatalf("held-open command: %q %v", buf[:n], err)
	}
	// A message split over two writes, then an idle gap.
	io.WriteString(c, "a=hel")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(c, "lo")
	// Half-close after a message without newline; a second client at once.
	c2 := dial()
	io.WriteString(c2, "b=php")
	c2.(*net.TCPConn).CloseWrite()
	io.ReadAll(c2)
	c2.Close()
	// Oversized line, then a good one.
	c3 := dial()
	io.WriteString(c3, "c="+strings.Repeat("x", 70<<10)+"\nc=ok\n")
	c3.Close()
	want := map[string]bool{"a=hello": true, "b=php": true, "c=ok": true}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && len(b.data()) < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	got := b.data()
	if len(got) != 3 {
		t.Fatalf("published %q", got)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected message %q (all: %q)", g, got)
		}
	}
	c.Close()
}

func TestFIFO(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	path := filepath.Join(t.TempDir(), "ctl")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeFIFO(ctx, path) }()
	var f *os.File
	for i := 0; i < 100; i++ {
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f == nil {
		t.Fatal("fifo not created")
	}
	fi, _ := os.Stat(path)
	if fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("fifo mode %v", fi.Mode())
	}
	io.WriteString(f, "x=1;tcpstatus;y=2")
	f.Close()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && len(b.data()) < 2; {
		time.Sleep(10 * time.Millisecond)
	}
	if got := strings.Join(b.data(), ","); got != "x=1,y=2" {
		t.Errorf("got %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeFIFO: %v", err)
	}
}

func FuzzFramer(f *testing.F) {
	f.Add([]byte("a=1;b=2\nc=3\nline\ntcpstatus"), uint8(3))
	f.Add([]byte("t="+strings.Repeat("x", 200)+";u=1"), uint8(50))
	f.Add([]byte(`{"token":"a","data":"x;y"}`+"\nb=1;"+`{"tokens":["c"],"data":"q"}`), uint8(9))
	f.Add([]byte("auth test-secret-0123456789\n{\"token\":\"a\",\"data\":\"x\"}\n"), uint8(12))
	f.Add([]byte(`{"token":"a","data":"`+strings.Repeat("x;y=1;", 20)+`"}`+"\nb=2"), uint8(40))
	f.Add([]byte("a=x\n  {\"j\":1;x}\nsubscribedclients:a b=c\ntcpstatus\r\nq=1"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		// Small limits, so that every bound is reached.
		const tok, body, maxJSON, maxAuth = 4, 16, 64, 24
		limited := func() *Framer {
			return &Framer{MaxBody: body, MaxTokenLen: tok, MaxIDLen: tok, MaxJSON: maxJSON, MaxAuth: maxAuth}
		}
		c := int(cut) % (len(in) + 1)
		var got []Unit
		fr := limited()
		collect := func(u Unit) {
			u.Data = bytes.Clone(u.Data)
			got = append(got, u)
		}
		fr.Feed(in[:c], collect)
		fr.Feed(in[c:], collect)
		fr.Flush(collect)
		for _, u := range got {
			if u.Oversized {
				continue
			}
			d := u.Data
			if len(bytes.TrimLeft(d, " \t\r")) == 0 || bytes.HasSuffix(d, []byte("\n")) || bytes.HasSuffix(d, []byte("\r")) {
				t.Fatalf("unit %q: blank, or not trimmed", d)
			}
			if u.Kind == KindJSON && bytes.IndexByte(d, '\n') >= 0 || u.Kind != KindJSON && bytes.IndexByte(d, ';') >= 0 {
				t.Fatalf("%v unit %q holds its terminator", u.Kind, d)
			}
			if over(u, tok, body, maxJSON, maxAuth) {
				t.Fatalf("%v unit of %d bytes passed: %q", u.Kind, len(d), d)
			}
		}
		// Rejected whole: with the limits lifted, the same units come out,
		// and exactly the ones over a limit were rejected. Nothing inside
		// a rejected unit ever comes out as a unit of its own.
		var all, free []Unit
		fa := limited()
		fa.Feed(in, func(u Unit) { u.Data = bytes.Clone(u.Data); all = append(all, u) })
		fa.Flush(func(u Unit) { u.Data = bytes.Clone(u.Data); all = append(all, u) })
		ff := &Framer{MaxBody: 1 << 30, MaxTokenLen: tok, MaxIDLen: tok, MaxJSON: 1 << 30, MaxAuth: 1 << 30}
		ff.Feed(in, func(u Unit) { u.Data = bytes.Clone(u.Data); free = append(free, u) })
		ff.Flush(func(u Unit) { u.Data = bytes.Clone(u.Data); free = append(free, u) })
		if len(all) != len(free) {
			t.Fatalf("limits change the framing: %d units, %d without limits\n%+v\n%+v", len(all), len(free), all, free)
		}
		for i, u := range all {
			ref := free[i]
			if (u.Kind == KindJSON) != (ref.Kind == KindJSON) {
				t.Fatalf("unit %d: %v, %v without limits", i, u.Kind, ref.Kind)
			}
			if ref.Oversized { // the head limit is the same
				if !u.Oversized || u.Size != ref.Size {
					t.Fatalf("unit %d: %+v, without limits %+v", i, u, ref)
				}
				continue
			}
			if u.Oversized != over(ref, tok, body, maxJSON, maxAuth) || u.Oversized && u.Size != len(ref.Data) ||
				!u.Oversized && !bytes.Equal(u.Data, ref.Data) {
				t.Fatalf("unit %d: %+v, without limits %q", i, u, ref.Data)
			}
		}
		// How the input was cut must not matter, unless the cut follows a
		// newline, which ends a unit (spec 9.1).
		if c > 0 && in[c-1] == '\n' {
			return
		}
		if fmt.Sprint(got) != fmt.Sprint(all) {
			t.Fatalf("cut at %d: %+v, whole: %+v", c, got, all)
		}
	})
}

// over says whether an unlimited framer's unit breaks the limits.
func over(u Unit, tok, body, maxJSON, maxAuth int) bool {
	d := u.Data
	switch {
	case u.Kind == KindJSON:
		return len(d) > maxJSON
	case bytes.HasPrefix(d, []byte("auth ")):
		return len(d) > maxAuth
	}
	i := bytes.IndexByte(d, '=')
	if i < 0 {
		return len(d) > 3*tok+2
	}
	return i > 3*tok+2 || len(d)-i-1 > body
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"room=hi", "t-A-x=m", "pre*-id=m", "*=x", "=x", "t=\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseMessage(in)
		if err != nil {
			return
		}
		if len(m.Targets) != 1 || m.Targets[0] == "" || strings.Contains(m.Targets[0], "-") ||
			strings.Contains(m.Targets[0], "#") || strings.Contains(m.Exclude, "*") || bytes.IndexByte(m.Data, 0) >= 0 {
			t.Fatalf("bad message %+v from %q", m, in)
		}
		if m.Validate(hub.Limits{MaxTokenLen: 32, MaxIDLen: 32}) == nil && (len(m.Targets[0]) > 32 || len(m.Exclude) > 32 || len(m.Data) == 0) {
			t.Fatalf("validated %+v from %q", m, in)
		}
	})
}

func TestJSONUnits(t *testing.T) {
	got := units(&Framer{}, `{"token":"a","data":"x;y\nz"}`+"\n"+`b=1;{"tokens":["c"],"data":"q"}`)
	if strings.Join(got, "|") != `{"token":"a","data":"x;y\nz"}|b=1|{"tokens":["c"],"data":"q"}` {
		t.Fatalf("framing: %q", got)
	}
	b := &fakeBackend{}
	h := newHandler(b)
	h.Pipeline.Limits.MaxData = 10
	for unit, want := range map[string]string{
		`{"token":"a","data":"hello","event":"ev"}`: `{"ids":["x-1"],"receivers":0}`,
		`{"tokens":["a","b*"],"data":"x"}`:          `{"ids":["x-1"],"receivers":0}`,
		`{"token":"a","data":"far too long data"}`:  `{"error":"data larger than the limit: 17 bytes, limit 10"}`,
		`{"token":"a","data":"x","event":"a\nb"}`:   `{"error":"CR, LF or NUL in the event name or client id"}`,
		`{"data":"x"}`:                       `{"error":"no token given"}`,
		`{"token":"a","data":"x","bogus":1}`: `{"error":"bad JSON: json: unknown field \"bogus\""}`,
		`{not json`:                          "error",
	} {
		got := string(h.Handle(nil, []byte(unit), true, "test"))
		if !strings.Contains(got, want) || !strings.HasSuffix(got, "\n") {
			t.Errorf("%s: reply %q, want %q", unit, got, want)
		}
	}
	events, multi := 0, 0
	for _, m := range b.msgs {
		if m.Event == "ev" {
			events++
		}
		if len(m.Targets) == 2 {
			multi++
		}
	}
	if len(b.msgs) != 2 || events != 1 || multi != 1 {
		t.Errorf("published %+v", b.msgs)
	}
}

func TestTCPSecret(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	h.Policy = &access.Policy{Secret: "test-secret-0123456789"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeTCP(ctx, ln) }()
	defer func() { cancel(); <-done }()
	talk := func(payload string) string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, payload)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		out, _ := io.ReadAll(c)
		return string(out)
	}
	if got := talk("a=no secret\n"); !strings.Contains(got, "authentication required") {
		t.Errorf("without auth: %q", got)
	}
	if got := talk("auth wrong\na=x\n"); !strings.Contains(got, "authentication required") {
		t.Errorf("wrong secret: %q", got)
	}
	if got := talk("auth test-secret-0123456789\na=yes\ntcpnumberofclients"); got != `{"auth": "ok"}`+"\n"+`{"numberofclients": 4}` {
		t.Errorf("with the secret: %q", got)
	}
	if d := b.data(); len(d) != 1 || d[0] != "a=yes" {
		t.Errorf("published %q", d)
	}
}

func FuzzJSONUnit(f *testing.F) {
	f.Add([]byte(`{"token":"a","data":"x"}`))
	f.Add([]byte(`{"tokens":["a","b*"],"data":"x\ny","event":"e","exclude":"c"}`))
	f.Add([]byte(`{"token":"a","data":"x","event":"a\r\nb"}`))
	f.Fuzz(func(t *testing.T, unit []byte) {
		b := &fakeBackend{}
		h := newHandler(b)
		h.Pipeline.Limits.MaxData = 64
		reply := h.Handle(nil, append([]byte("{"), unit...), true, "fuzz")
		if len(reply) == 0 || reply[len(reply)-1] != '\n' {
			t.Fatalf("reply %q", reply)
		}
		var v map[string]any
		if err := json.Unmarshal(reply, &v); err != nil {
			t.Fatalf("reply is not JSON: %q", reply)
		}
		for _, m := range b.msgs {
			if strings.ContainsAny(m.Event+m.Exclude+strings.Join(m.Targets, ""), "\r\n\x00") || len(m.Data) == 0 || len(m.Data) > 64 {
				t.Fatalf("published an invalid message %+v", m)
			}
		}
	})
}

// Each writer's open, write and close ends its unit: with an idle gap far
// too long to help, two writers give two messages (it was one,
// "firstx=second").
func TestFIFOWriterCloseEndsUnit(t *testing.T) {
	b := &fakeBackend{}
	h := newHandler(b)
	h.IdleGap = time.Hour
	path := filepath.Join(t.TempDir(), "ctl")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.ServeFIFO(ctx, path) }()
	defer func() { cancel(); <-done }()
	write := func(s string) {
		for i := 0; ; i++ {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				io.WriteString(f, s)
				f.Close()
				return
			}
			if i == 100 {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait := func(n int) {
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && len(b.data()) < n; {
			time.Sleep(5 * time.Millisecond)
		}
	}
	write("x=first")
	wait(1)
	write("x=second")
	wait(2)
	if got := strings.Join(b.data(), ","); got != "x=first,x=second" {
		t.Fatalf("got %q", got)
	}
}

// An existing FIFO is served only if this process's user owns it and its
// mode is within -fifo-mode: another local user could pre-create it open to
// all in a shared directory and publish to any token.
func TestFIFORefusesForeignOrWide(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	mk := func(name string, mode uint32) string {
		p := filepath.Join(dir, name)
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		if err := syscall.Mkfifo(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serve := func(path string) error {
		h := newHandler(&fakeBackend{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.ServeFIFO(ctx, path) }()
		select {
		case err := <-done:
			cancel()
			return err
		case <-time.After(300 * time.Millisecond): // serving: it would have refused at once
			cancel()
			return <-done
		}
	}
	wide := mk("wide", 0o666)
	if err := serve(wide); err == nil || !strings.Contains(err.Error(), "wider than -fifo-mode") {
		t.Errorf("FIFO 0666 with -fifo-mode 0660: %v", err)
	}
	if err := serve(mk("narrow", 0o600)); err != nil {
		t.Errorf("FIFO 0600 refused: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("a FIFO of another user needs root to make")
	}
	foreign := mk("foreign", 0o600)
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := serve(foreign); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("FIFO of another user: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(foreign, link)
	h := newHandler(&fakeBackend{})
	if f, err := h.OpenFIFO(link); err == nil {
		f.Close()
		t.Error("FIFO through a symlink opened")
	}
}
