package cluster

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/sse"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, m := range []hub.Message{
		{Targets: []string{"a"}, Data: []byte("x")},
		{Targets: []string{"room*", "*", "x"}, Exclude: "c1", Event: "upd", Data: []byte("two\nlines")},
		{Targets: []string{"with\nnewline", "nul\x00", string(make([]byte, 300))}, Data: make([]byte, 70000)},
		{Targets: []string{"*"}, Event: "hasses-disconnect", Data: []byte("{}"), Disconnect: &hub.Match{User: "alice"}},
		{Targets: []string{"room1"}, Event: "hasses-disconnect", Data: []byte("{}"), Disconnect: &hub.Match{ID: "tab1"}},
		hub.PresenceMessage(hub.Change{Token: "room1", ID: "tab1", User: "alice", Join: true}),
		hub.PresenceMessage(hub.Change{Token: "room1", ID: "tab1"}),
	} {
		origin, got, err := decodeBody(encodeBody("node", m))
		want := m.Targets
		if err != nil || origin != "node" || !slices.Equal(got.Targets, want) || got.Exclude != m.Exclude ||
			got.Event != m.Event || string(got.Data) != string(m.Data) || (got.Disconnect == nil) != (m.Disconnect == nil) ||
			(m.Disconnect != nil && *got.Disconnect != *m.Disconnect) || (got.Presence == nil) != (m.Presence == nil) ||
			(m.Presence != nil && *got.Presence != *m.Presence) {
			t.Errorf("%+v: got %q %+v, %v", m, origin, got, err)
		}
	}
	for _, bad := range []string{"", "\x00\x00\x00\x00", "\x00\x00\x00\x05ab", "\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if _, _, err := decodeBody(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestParseEntry(t *testing.T) {
	body := encodeBody("node", hub.Message{Targets: []string{"room1", "room*"}, Exclude: "c1", Event: "upd", Data: []byte("hi")})
	en, err := parseEntry("1005-0", "77 1000", body)
	if err != nil {
		t.Fatal(err)
	}
	if en.seq != 1005 || en.prev != 1000 || en.epoch != 77 || en.origin != "node" ||
		!slices.Equal(en.msg.Targets, []string{"room1", "room*"}) || en.msg.Exclude != "c1" || en.msg.Event != "upd" || string(en.msg.Data) != "hi" {
		t.Fatalf("parsed %+v", en)
	}
	for _, c := range [][2]string{
		{"1005-1", "77 1000"}, {"x-0", "77 1000"}, {"0-0", "77 1000"},
		{"1005-0", "77 1005"}, // a predecessor must be older
		{"1005-0", "0 1000"}, {"1005-0", "77"}, {"1005-0", "771000"},
	} {
		if _, err := parseEntry(c[0], c[1], body); err == nil {
			t.Errorf("%q %q accepted", c[0], c[1])
		}
	}
	bad := encodeBody("", hub.Message{Targets: []string{"room1"}, Event: "bad\nname"})
	if _, err := parseEntry("1005-0", "77 1000", bad); err == nil {
		t.Error("an event name with a line break accepted")
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add("1005-0", "77 1000", encodeBody("", hub.Message{Targets: []string{"room1"}, Data: []byte("data")}))
	f.Add("18446744073709551615-0", "1 0", encodeBody("n", hub.Message{Targets: []string{"*"}, Exclude: "x", Event: "ev"}))
	f.Add("1006-0", "77 1005", encodeBody("", hub.Message{Targets: []string{"*"}, Event: "hasses-disconnect", Data: []byte("{}"), Disconnect: &hub.Match{ID: "a", User: "b"}}))
	f.Add("1007-0", "77 1006", encodeBody("", hub.PresenceMessage(hub.Change{Token: "room1", ID: "tab1", User: "alice", Join: true})))
	f.Fuzz(func(t *testing.T, id, h, m string) {
		en, err := parseEntry(id, h, m)
		if err != nil {
			return
		}
		if en.prev >= en.seq || en.epoch == 0 || en.msg.Validate(hub.Limits{}) != nil {
			t.Fatalf("accepted an invalid entry: %+v", en)
		}
		origin, again, err := decodeBody(encodeBody(en.origin, en.msg))
		if err != nil || origin != en.origin || !slices.Equal(again.Targets, en.msg.Targets) || string(again.Data) != string(en.msg.Data) {
			t.Fatalf("body does not round-trip: %+v", en)
		}
	})
}

func TestParseURL(t *testing.T) {
	opt, err := parseURL("redis://:pw@10.0.0.1:6380/2")
	if err != nil || opt.InitAddress[0] != "10.0.0.1:6380" || opt.SelectDB != 2 || opt.Password != "pw" || !opt.DisableRetry {
		t.Fatalf("redis URL: %+v %v", opt, err)
	}
	opt, err = parseURL("rediss://r.example:6379/0")
	if err != nil || opt.TLSConfig == nil || opt.TLSConfig.ServerName != "r.example" {
		t.Fatalf("rediss URL: %+v %v", opt, err)
	}
	opt, err = parseURL("redis+sentinel://s1:26379,s2:26379/1?master=main")
	if err != nil || !slices.Equal(opt.InitAddress, []string{"s1:26379", "s2:26379"}) || opt.Sentinel.MasterSet != "main" || opt.SelectDB != 1 || opt.Sentinel.TopologyRefreshInterval <= 0 {
		t.Fatalf("sentinel URL: %+v %v", opt, err)
	}
	for _, bad := range []string{"http://x", "redis+sentinel://s1:26379/0", "redis://h/x", "::"} {
		if _, err := parseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Issue 16, item 12: an error never carries the password.
	for _, bad := range []string{"redis://u:Pa55word@[::1/0", "redis://u:Pa55word@h:port/0", "redis://u:Pa55word@h/x",
		"redis+sentinel://u:Pa55word@s1/0", "ftp://u:Pa55word@h", "redis://u:Pa55word@h:6379/zz", "redis://u:Pa%55word@h%/0"} {
		_, err := parseURL(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "Pa55word") || strings.Contains(err.Error(), "Pa%55word") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:pw@h:6379/0":              "redis://u:REDACTED@h:6379/0",
		"redis://:p@w@h/0":                   "redis://:REDACTED@h/0",
		"rediss+sentinel://u:pw@a,b/0?m=x@y": "rediss+sentinel://u:REDACTED@a,b/0?m=x@y",
		"redis://u@h/0":                      "redis://u@h/0",
		"redis://h:6379/0":                   "redis://h:6379/0",
		"redis://u:pw@[::1/0":                "redis://u:REDACTED@[::1/0",
		"no url":                             "no url",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// redisForTest starts a redis-server on a loopback port for the test.
func redisForTest(t *testing.T) rueidis.Client {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	for range 20 {
		port := strconv.Itoa(20000 + rand.IntN(12000))
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln.Close()
		cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"127.0.0.1:" + port}, DisableCache: true})
			if err == nil {
				t.Cleanup(c.Close)
				return c
			}
		}
	}
	t.Fatal("could not start redis-server")
	return nil
}

func TestPublishScript(t *testing.T) {
	c := redisForTest(t)
	ctx := context.Background()
	run := func(n, minSeq uint64, lookup bool) []string {
		t.Helper()
		l := "0"
		if lookup {
			l = "1"
		}
		v, err := c.Do(ctx, c.B().Eval().Script(publishScript).Numkeys(5).Key("{t}:meta", "{t}:log", "{t}:pub:n1", "{t}:idem", "{t}:idemv").
			Arg("42", "1000", strconv.FormatUint(minSeq, 10), "n1", "300000", "65536", strconv.FormatUint(n, 10),
				encodeBody("n1", hub.Message{Targets: []string{"room1"}, Data: []byte("data-" + strconv.FormatUint(n, 10))}), l, "").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := run(1, 0, false)
	if first[0] != "42" {
		t.Fatalf("new dataset: epoch %q, want the one given", first[0])
	}
	if again := run(1, 0, false); !slices.Equal(again, first) {
		t.Fatalf("a retried unit must return its first id: %q vs %q", again, first)
	}
	if skipped := run(2, 0, true); !slices.Equal(skipped, []string{"0", "0", "0", "0"}) {
		t.Fatalf("lookup of a unit never run: %q", skipped)
	}
	s1, _ := strconv.ParseUint(first[1], 10, 64)
	third := run(3, s1+5_000_000_000, false) // a min seq far ahead wins over the clock
	s3, _ := strconv.ParseUint(third[1], 10, 64)
	if s3 != s1+5_000_000_001 {
		t.Fatalf("seq %d, want min seq + 1 = %d", s3, s1+5_000_000_001)
	}
	if again := run(2, 0, false); !slices.Equal(again, []string{"0", "0", "0", "0"}) {
		t.Fatalf("an old unit number must never run: %q", again)
	}
	msgs, err := c.Do(ctx, c.B().Xrange().Key("{t}:log").Start("-").End("+").Build()).ToArray()
	entries, err2 := rawEntries(msgs)
	if err != nil || err2 != nil || len(entries) != 2 {
		t.Fatalf("log: %d entries, %v %v; want 2 (units 1 and 3)", len(entries), err, err2)
	}
	e1, err1 := parseEntry(entries[0].id, entries[0].h, entries[0].m)
	e3, err3 := parseEntry(entries[1].id, entries[1].h, entries[1].m)
	if err1 != nil || err3 != nil || e3.prev != e1.seq || e1.seq != s1 || e3.seq != s3 || string(e3.msg.Data) != "data-3" ||
		e1.tag != "n1:1" || e1.prevTag != "" || e3.tag != "n1:3" || e3.prevTag != "n1:1" {
		t.Fatalf("entries %+v %+v (%v %v): each must link to the previous one, by seq and tag", e1, e3, err1, err3)
	}
	// A lost mark (lostScript) far ahead: new numbers go above it, and the
	// link stays the dataset's head.
	if err := c.Do(ctx, c.B().Eval().Script(lostScript).Numkeys(1).Key("{t}:meta").Arg(strconv.FormatUint(s3+5_000_000_000, 10)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	fourth := run(4, 0, false)
	if s4, _ := strconv.ParseUint(fourth[1], 10, 64); s4 != s3+5_000_000_001 {
		t.Fatalf("seq %d after a lost mark, want mark + 1 = %d", s4, s3+5_000_000_001)
	}
	msgs, err = c.Do(ctx, c.B().Xrevrange().Key("{t}:log").End("+").Start("-").Count(1).Build()).ToArray()
	head, err2 := rawEntries(msgs)
	if err != nil || err2 != nil || len(head) != 1 {
		t.Fatalf("log head: %v %v", err, err2)
	}
	if e4, err := parseEntry(head[0].id, head[0].h, head[0].m); err != nil || e4.prev != s3 || e4.prevTag != "n1:3" {
		t.Fatalf("entry after a lost mark: %+v %v, want it linked to %d", e4, err, s3)
	}

	// The join script finds the dataset, or makes a new one.
	join := func() []string {
		v, err := c.Do(ctx, c.B().Eval().Script(joinScript).Numkeys(1).Key("{t}:meta").Arg("99", "0").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := join(); v[0] != "42" || v[1] != fourth[1] || v[2] != strconv.FormatUint(e1.prev, 10) || v[3] != strconv.FormatUint(s3+5_000_000_000, 10) {
		t.Fatalf("join = %q, want epoch 42, head %s, since %d, lost %d", v, fourth[1], e1.prev, s3+5_000_000_000)
	}
	c.Do(ctx, c.B().Flushall().Build())
	if v := join(); v[0] != "99" || v[1] != v[2] {
		t.Fatalf("join after a flush = %q, want a new epoch 99", v)
	}
}

// engineForTest runs an engine on c's Redis under prefix, joined, with a
// hub and an owner for streams; it stops with the test.
func engineForTest(t *testing.T, c rueidis.Client, prefix string) (*Engine, *hub.Hub, *hub.Owner) {
	t.Helper()
	var url string
	for a := range c.Nodes() {
		url = "redis://" + a + "/0"
	}
	h := hub.New(hub.Config{})
	o := h.NewOwner(func() {})
	e, err := New(Config{URL: url, Prefix: prefix, Logger: slog.New(slog.DiscardHandler)}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-e.Joined():
	case <-time.After(5 * time.Second):
		t.Fatal("not joined")
	}
	return e, h, o
}

func TestEngineThroughTheHub(t *testing.T) {
	c := redisForTest(t)
	e, h, o := engineForTest(t, c, "engine")
	s, _ := h.Subscribe(o, []string{"room1"}, "", "", nil)

	// An answered publication: the id Redis gave, and this node's receivers
	// once it applied the event from the log.
	r, err := e.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte("x"), Reply: true})
	if err != nil || r.ID == "" || r.Receivers != 1 {
		t.Fatalf("publish: %+v %v; want an id and 1 receiver", r, err)
	}
	epoch, seq := h.Head()
	if want := (sse.ID{Epoch: epoch, Seq: seq}).String(); r.ID != want {
		t.Fatalf("id %s, but the hub's head is %s", r.ID, want)
	}
	// A line-protocol unit is fire and forget, delivered in order after it.
	if r, err := e.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte("y")}); err != nil || r.ID != "" {
		t.Fatalf("line unit: %+v %v", r, err)
	}
	var b hub.Batch
	var got []string
	for end := time.Now().Add(5 * time.Second); len(got) < 2 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		h.Collect(o, nil) // as a woken owner does
		h.Fill(s, &b, 16, 1<<20)
		for _, buf := range b.Bufs {
			got = append(got, string(buf))
		}
		s.Wrote(&b, b.Bytes)
	}
	if len(got) != 2 || !strings.Contains(got[0], "id: "+r.ID+"\n") || !strings.Contains(got[1], "data: y\n") {
		t.Fatalf("frames %q", got)
	}
	if st := e.Stats(); !st.Ready || st.Queued != 0 || st.Seq <= seq {
		t.Fatalf("stats %+v", st)
	}
}

// TestPublishScriptBatch sends three units in one call, the middle one
// only looked up: the others are numbered in order and linked, and the
// same call resent (its reply lost) answers the same ids and adds nothing.
func TestPublishScriptBatch(t *testing.T) {
	c := redisForTest(t)
	ctx := context.Background()
	body := func(d string) string { return encodeBody("", hub.Message{Targets: []string{"room1"}, Data: []byte(d)}) }
	call := func() []string {
		t.Helper()
		v, err := c.Do(ctx, c.B().Eval().Script(publishScript).Numkeys(5).Key("{b}:meta", "{b}:log", "{b}:pub:n1", "{b}:idem", "{b}:idemv").
			Arg("7", "1000", "0", "n1", "300000", "65536", "1", body("a"), "0", "", "2", body("b"), "1", "", "3", body("c"), "0", "").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := call()
	if len(first) != 12 || first[0] != "7" || first[4] != "0" || first[5] != "0" || first[8] != "7" {
		t.Fatalf("batch reply %q: want units 1 and 3 published in epoch 7, unit 2 not", first)
	}
	s1, _ := strconv.ParseUint(first[1], 10, 64)
	s3, _ := strconv.ParseUint(first[9], 10, 64)
	if s3 != s1+1 {
		t.Fatalf("seqs %d and %d, want consecutive", s1, s3)
	}
	if again := call(); !slices.Equal(again, first) {
		t.Fatalf("resent batch answered %q, want %q", again, first)
	}
	msgs, err := c.Do(ctx, c.B().Xrange().Key("{b}:log").Start("-").End("+").Build()).ToArray()
	entries, err2 := rawEntries(msgs)
	if err != nil || err2 != nil || len(entries) != 2 {
		t.Fatalf("log: %d entries, %v %v; want 2", len(entries), err, err2)
	}
	e1, _ := parseEntry(entries[0].id, entries[0].h, entries[0].m)
	e3, err := parseEntry(entries[1].id, entries[1].h, entries[1].m)
	if err != nil || e1.seq != s1 || e3.seq != s3 || e3.prev != s1 || string(e1.msg.Data) != "a" || string(e3.msg.Data) != "c" ||
		e1.tag != "n1:1" || e3.tag != "n1:3" || e3.prevTag != "n1:1" {
		t.Fatalf("entries %+v %+v: %v", e1, e3, err)
	}
}

// TestEngineSeesRollbackInTheLinks: Redis goes back one entry (a failover
// to a replica that lagged) and another node, which had not read that
// entry, publishes before this engine rejoins. The new entry links below
// this engine's position: the engine cannot tell what it missed below the
// link, so its stream gets a hasses-reset before the new entry, and it
// marks what it read past the link lost. Likewise when the new entry links
// to this engine's position from another entry numbered alike (two
// masters, for a moment after a failover).
func TestEngineSeesRollbackInTheLinks(t *testing.T) {
	t.Run("below", func(t *testing.T) { testRollbackInTheLinks(t, false) })
	t.Run("same-seq", func(t *testing.T) { testRollbackInTheLinks(t, true) })
}

func testRollbackInTheLinks(t *testing.T, sameSeq bool) {
	c := redisForTest(t)
	e, h, o := engineForTest(t, c, "rb")
	s, _ := h.Subscribe(o, []string{"room1"}, "", "", nil)
	var seqs []uint64
	for _, d := range []string{"one", "two"} {
		r, err := e.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte(d), Reply: true})
		id, ok := sse.ParseID(r.ID)
		if err != nil || !ok {
			t.Fatalf("publish %s: %+v %v", d, r, err)
		}
		seqs = append(seqs, id.Seq)
	}
	if st := e.Stats(); st.Seq != seqs[1] {
		t.Fatalf("engine at %d, want %d", st.Seq, seqs[1])
	}
	// A failover takes seconds: the clock is past "two" when "three" is
	// numbered (were it not, the hybrid clock could give "three" a number
	// at or below "two", which a node past it never reads).
	time.Sleep(2 * time.Millisecond)
	one, two := strconv.FormatUint(seqs[0], 10), strconv.FormatUint(seqs[1], 10)
	cmds := rueidis.Commands{c.B().Multi().Build(),
		c.B().Xdel().Key("{rb}:log").Id(two + "-0").Build(),
		c.B().Hset().Key("{rb}:meta").FieldValue().FieldValue("s", one).Build()}
	if sameSeq {
		// The new master numbered another entry like "two": three links to
		// this node's position, from an entry it never read.
		cmds = append(cmds, c.B().Xadd().Key("{rb}:log").Id(two+"-0").FieldValue().
			FieldValue("h", strconv.FormatUint(e.Stats().Epoch, 10)+" "+one+" other:1 ").
			FieldValue("m", encodeBody("", hub.Message{Targets: []string{"room9"}, Data: []byte("other")})).Build(),
			c.B().Hset().Key("{rb}:meta").FieldValue().FieldValue("s", two).FieldValue("u", "other:1").Build())
	}
	// In one step: "two" is gone from Redis, and a node that had not read
	// it publishes "three".
	cmds = append(cmds, c.B().Eval().Script(publishScript).Numkeys(5).Key("{rb}:meta", "{rb}:log", "{rb}:pub:other", "{rb}:idem", "{rb}:idemv").
		Arg("1", "1000", one, "other", "300000", "65536", "2", encodeBody("", hub.Message{Targets: []string{"room1"}, Data: []byte("three")}), "0", "").Build(),
		c.B().Exec().Build())
	resps := c.DoMulti(context.Background(), cmds...)
	for _, r := range resps {
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	var b hub.Batch
	var got []string
	for end := time.Now().Add(5 * time.Second); len(got) < 4 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		h.Collect(o, nil) // as a woken owner does
		h.Fill(s, &b, 16, 1<<20)
		for _, buf := range b.Bufs {
			got = append(got, string(buf))
		}
		s.Wrote(&b, b.Bytes)
	}
	if len(got) != 4 || !strings.Contains(got[2], "event: hasses-reset\ndata: gap\n") || !strings.Contains(got[3], "data: three\n") {
		t.Fatalf("frames %q: want one, two, a hasses-reset, three", got)
	}
	var lost string
	for end := time.Now().Add(5 * time.Second); (lost != two || e.Stats().Rollbacks != 1) && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		lost, _ = c.Do(context.Background(), c.B().Hget().Key("{rb}:meta").Field("lost").Build()).ToString()
	}
	if lost != two || e.Stats().Rollbacks != 1 {
		t.Fatalf("lost mark %q (want %s), rollbacks %d (want 1)", lost, two, e.Stats().Rollbacks)
	}
}

// TestSettleSkipsUnitsSeenInTheLog: a batch whose reply was lost is not
// resent past the units the bus has already seen in the log with this
// node's tag (after Redis lost its data, resending would publish them
// twice); an answered one gets the id the log gave it.
func TestSettleSkipsUnitsSeenInTheLog(t *testing.T) {
	c := redisForTest(t)
	e, _, _ := engineForTest(t, c, "settle")
	r, err := e.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte("answered"), Reply: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte("fire-and-forget")}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.mu.Lock()
		done := e.unitsDone
		e.mu.Unlock()
		if done == 2 && e.q.len() == 0 { // and the send loop is through with them
			break
		}
		if time.Now().After(end) {
			t.Fatalf("units seen in the log: %d (want 2), queued %d (want 0)", done, e.q.len())
		}
	}
	// Both again, as a resent batch, and a new unit behind them.
	again := &unit{n: 1, done: make(chan reply, 1)}
	m := hub.Message{Targets: []string{"room1"}, Data: []byte("x")}
	again.m = m
	batch := []*unit{again, {n: 2, async: true, m: m}, {n: 3, async: true, m: m}}
	e.q.mu.Lock()
	e.q.units = append(e.q.units, batch...)
	e.q.sync++
	e.q.async += 2
	e.q.mu.Unlock()
	rest := e.settle(batch)
	if len(rest) != 1 || rest[0].n != 3 || e.q.len() != 1 {
		t.Fatalf("left %d units (queue %d), want only unit 3", len(rest), e.q.len())
	}
	if got := <-again.done; (sse.ID{Epoch: got.epoch, Seq: got.seq}).String() != r.ID {
		t.Fatalf("settled unit answered %+v, want its id %s", got, r.ID)
	}
}

// A keyed publication publishes once in the window, cluster-wide: the
// same key through another node answers the first id and receivers.
func TestIdempotentPublishAcrossNodes(t *testing.T) {
	c := redisForTest(t)
	e1, h1, o1 := engineForTest(t, c, "idem")
	e2, _, _ := engineForTest(t, c, "idem")
	s, _ := h1.Subscribe(o1, []string{"room1"}, "", "", nil)
	m := hub.Message{Targets: []string{"room1"}, Data: []byte("once"), Reply: true, Key: "order-7"}
	first, err := e1.Publish(m)
	if err != nil || first.Duplicate || first.Receivers != 1 {
		t.Fatalf("first: %+v %v", first, err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		again, err := e2.Publish(m)
		if err != nil || !again.Duplicate || again.ID != first.ID {
			t.Fatalf("again on another node: %+v %v; first %+v", again, err, first)
		}
		if again.Receivers == first.Receivers { // recorded once the first node applied it
			break
		}
		if time.Now().After(end) {
			t.Fatalf("duplicate answers %d receivers, the first %d", again.Receivers, first.Receivers)
		}
	}
	other, err := e2.Publish(hub.Message{Targets: []string{"room1"}, Data: []byte("other"), Reply: true, Key: "order-8"})
	if err != nil || other.Duplicate || other.ID == first.ID {
		t.Fatalf("another key: %+v %v", other, err)
	}
	var b hub.Batch
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h1.Collect(o1, nil) // as a woken owner does
		h1.Fill(s, &b, 16, 1<<20)
		if len(b.Bufs) >= 2 || time.Now().After(end) {
			break
		}
	}
	var text strings.Builder
	for _, buf := range b.Bufs {
		text.Write(buf)
	}
	if strings.Count(text.String(), "data: once") != 1 || strings.Count(text.String(), "data: other") != 1 {
		t.Fatalf("delivered %q, want each once", text.String())
	}
}

// FuzzParseURLHidesPassword: whatever the URL, an error of parseURL does
// not carry its password, and Redact removes it.
func FuzzParseURLHidesPassword(f *testing.F) {
	for _, s := range []string{"redis://u:Pa55word9@[::1/0", "redis://u:Pa55word9@h:port/0", "redis://:Pa55word9@h/0?master=x",
		"redis+sentinel://u:Pa55word9@a,b/0", "rediss://u:Pa%55word9@h%zz/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, j := passwordAt(s)
		if i < 0 {
			return
		}
		pw := s[i:j]
		if len(pw) < 9 || strings.ContainsAny(pw, "REDACT") {
			return // too short to tell from the error's own words
		}
		if strings.Contains(Redact(s), pw) && !strings.Contains(s[:i]+s[j:], pw) {
			t.Fatalf("Redact(%q) = %q", s, Redact(s))
		}
		if _, err := parseURL(s); err != nil && strings.Contains(err.Error(), pw) && !strings.Contains(s[:i]+s[j:], pw) {
			t.Fatalf("parseURL(%q): %v", s, err)
		}
	})
}

// The presence queue keeps the latest operation per field, in the order
// the fields first came, and a failed batch goes back in front unless a
// later operation for its field came meanwhile.
func TestPresenceQueue(t *testing.T) {
	q := presenceQueue{sig: make(chan struct{}, 1)}
	op := func(field string, join bool) presenceOp {
		return presenceOp{field: field, c: hub.Change{Token: field, ID: "x", Join: join}}
	}
	q.push(op("a", true))
	q.push(op("b", true))
	q.push(op("a", false)) // a joined and left before anything was sent: only the leave
	got := q.take(10)
	if len(got) != 2 || got[0].field != "a" || got[0].c.Join || got[1].field != "b" || !got[1].c.Join {
		t.Fatalf("took %+v", got)
	}
	q.push(op("c", true))
	q.push(op("b", false)) // newer than the failed b
	q.putBack(got)
	got = q.take(10)
	var fields []string
	for _, o := range got {
		fields = append(fields, o.field+":"+strconv.FormatBool(o.c.Join))
	}
	if want := "a:false c:true b:false"; strings.Join(fields, " ") != want {
		t.Fatalf("after a failed send: %s, want %s", strings.Join(fields, " "), want)
	}
	if len(q.take(10)) != 0 {
		t.Fatal("the queue is not empty")
	}
}
