package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParserSplitAnywhere(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" +
		"1c\r\nid: a-1\ndata: 1 100 xx\n\n\r\n" + "e\r\n: \n\n\r\n" + "1c\r\nid: a-2\ndata: 2 200\n\n\r\n"
	for cut := 0; cut <= len(stream); cut++ {
		p := streamParser{inHead: true}
		var got []string
		on := func(ev event) { got = append(got, string(ev.data)) }
		p.feed([]byte(stream[:cut]), on)
		p.feed([]byte(stream[cut:]), on)
		if strings.Join(got, "|") != "1 100 xx|2 200" || p.status != 200 || string(p.lastID) != "a-2" {
			t.Fatalf("cut %d: %q status %d id %q", cut, got, p.status, p.lastID)
		}
	}
}

// TestParserIDOnDispatch: the last id is the last complete event's, as in
// EventSource; a reconnection that claimed an event whose data had not
// arrived yet would miss it.
func TestParserIDOnDispatch(t *testing.T) {
	p := streamParser{}
	var got []string
	on := func(ev event) { got = append(got, string(ev.data)) }
	p.feed([]byte("1c\r\nid: a-1\ndata: 1 100\n\n\r\n1c\r\nid: a-2\ndata: 2 200\n"), on)
	if string(p.lastID) != "a-1" || len(got) != 1 {
		t.Fatalf("mid-event: last id %q, data %q; want a-1 and one event (the second's data is not yet an event)", p.lastID, got)
	}
	p.feed([]byte("\n\r\n"), on)
	if string(p.lastID) != "a-2" || len(got) != 2 {
		t.Fatalf("after the event: last id %q, data %q; want a-2 and two events", p.lastID, got)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 64} {
		b := appendPayload(nil, 42, 1234567, 1151999, size)
		if len(b) < size {
			t.Errorf("payload of %d bytes, want %d", len(b), size)
		}
		p, ok := parsePayload(b)
		if !ok || p.seq != 42 || p.sentNs != 1234567 || p.tok != 1151999 {
			t.Errorf("parsed %+v %v from %q", p, ok, b)
		}
	}
	for _, bad := range []string{"", "1 2", "x 2 3", "1 x 3", "1 2 -3", `{"token":"room1"}`} {
		if p, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("%q parsed as %+v", bad, p)
		}
	}
}

// TestParserEventsAndReplay: the X-Hasses-Replay header, named events (a
// hasses-reset) and the payload events, whatever the cuts.
func TestParserEventsAndReplay(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nx-hasses-replay: gap\r\n\r\n" +
		"2a\r\nid: a-7\nevent: hasses-reset\ndata: gap\n\n\r\n" + "1c\r\nid: a-8\ndata: 1 100 3\n\n\r\n"
	for cut := 0; cut <= len(stream); cut++ {
		p := streamParser{inHead: true}
		var got []string
		on := func(ev event) { got = append(got, string(ev.name)+"/"+string(ev.data)) }
		p.feed([]byte(stream[:cut]), on)
		p.feed([]byte(stream[cut:]), on)
		if strings.Join(got, "|") != "hasses-reset/gap|/1 100 3" || p.replay != "gap" || string(p.lastID) != "a-8" {
			t.Fatalf("cut %d: %q replay %q id %q", cut, got, p.replay, p.lastID)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h, other Histogram
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	other.Add(5 * time.Second)
	h.Merge(&other)
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.99, 990}} {
		if got := h.Quantile(c.q); got < c.want*0.93 || got > c.want*1.07 {
			t.Errorf("q%.2f = %.1f ms, want about %.0f", c.q, got, c.want)
		}
	}
	if h.Max != 5_000_000 || h.N != 1001 {
		t.Errorf("max %d n %d", h.Max, h.N)
	}
	for us := int64(0); us < 1<<20; us = us*3/2 + 1 {
		if b := bucketOf(us); lowerBound(b) > us || lowerBound(b+1) <= us {
			t.Fatalf("%d µs in bucket %d = [%d, %d)", us, b, lowerBound(b), lowerBound(b+1))
		}
	}
}

// ev is a load event of token tok as the worker gets it.
func ev(seq uint64, tok int) event {
	return event{data: appendPayload(nil, seq, time.Now().UnixNano(), tok, 0)}
}

func TestAccounting(t *testing.T) {
	w := &worker{cfg: WorkerConfig{Tokens: 1, PerStream: 1}}
	s := &subscriber{state: streaming, accepted: true, toks: make([]tokState, 1)}
	for _, seq := range []uint64{1, 2, 2, 4, 3, 5} {
		w.event(s, ev(seq, 0), time.Now().UnixNano())
	}
	if a := w.rep.Stable; a.Received != 6 || a.Duplicated != 1 || a.Reordered != 1 || s.toks[0].got != 5 {
		t.Errorf("report %+v got %d", a, s.toks[0].got)
	}
	refused := &subscriber{state: closed, toks: make([]tokState, 1)}
	w.subs = []*subscriber{s, refused}
	w.finish([]uint64{6, 0}, time.Now())
	if a := w.rep.Stable; a.Lost != 1 || a.Expected != 6 || a.Streams != 1 {
		t.Errorf("lost %d expected %d streams %d, want 1, 6 and 1 (the refused subscriber expects nothing)", a.Lost, a.Expected, a.Streams)
	}
}

// TestTokenAssignment: every stream gets k distinct tokens, the same in
// its request and in the accounting; with -tokens 0 no two streams share
// one; with k = 1 stream i has token i mod n, as before; and shared tokens
// are evenly loaded.
func TestTokenAssignment(t *testing.T) {
	for _, c := range []struct{ subs, k, n int }{{300, 1, 7}, {300, 8, 100}, {50, 8, 400}, {10, 64, 64}, {7, 3, 5}} {
		subscribers := make([]int, c.n)
		for idx := range c.subs {
			sub := string(appendSubscribe(nil, idx, c.k, c.n, "room"))
			toks := strings.Split(sub, "-")
			seen := map[int]bool{}
			for j, name := range toks {
				var tok int
				if _, err := fmt.Sscanf(name, "room%d", &tok); err != nil || tok < 0 || tok >= c.n {
					t.Fatalf("%+v stream %d: token %q", c, idx, name)
				}
				if seen[tok] || tokenSlot(idx, c.k, c.n, tok) != j {
					t.Fatalf("%+v stream %d: token %d twice, or slot %d not %d", c, idx, tok, tokenSlot(idx, c.k, c.n, tok), j)
				}
				seen[tok] = true
				subscribers[tok]++
			}
			if len(toks) != c.k {
				t.Fatalf("%+v stream %d: %d tokens", c, idx, len(toks))
			}
			for tok := range c.n {
				if (tokenSlot(idx, c.k, c.n, tok) >= 0) != seen[tok] {
					t.Fatalf("%+v stream %d: tokenSlot(%d) disagrees with the request", c, idx, tok)
				}
			}
			if tokenSlot(idx, c.k, c.n, c.n) != -1 || tokenSlot(idx, c.k, c.n, -1) != -1 {
				t.Fatalf("%+v: the broadcast index or -1 is a token", c)
			}
			if c.k == 1 && sub != fmt.Sprintf("room%d", idx%c.n) {
				t.Fatalf("k=1 stream %d: %s", idx, sub)
			}
		}
		lo, hi := c.subs*c.k/c.n, (c.subs*c.k+c.n-1)/c.n
		for tok, m := range subscribers {
			if m < lo || m > hi {
				t.Errorf("%+v: token %d has %d subscribers, want %d..%d", c, tok, m, lo, hi)
			}
		}
	}
	// Per-user style: n = subs × k, every token one stream's.
	subs, k := 1000, 64
	owner := make([]int, subs*k)
	for idx := range subs {
		for j := range k {
			tok := firstToken(idx, k, subs*k) + j
			if owner[tok] != 0 {
				t.Fatalf("token %d of streams %d and %d", tok, owner[tok]-1, idx)
			}
			owner[tok] = idx + 1
		}
	}
}

func TestPicked(t *testing.T) {
	for _, c := range []struct{ m, n int }{{0, 10}, {3, 10}, {6000, 18000}, {5000, 5100}, {10, 10}} {
		count, run := 0, 0
		for idx := range c.n {
			if picked(idx, c.m, c.n) {
				count++
			}
			if idx%100 == 99 { // evenly: each 100 consecutive streams hold their share
				if want := float64(c.m) * 100 / float64(c.n); float64(count-run) < want-1 || float64(count-run) > want+1 {
					t.Errorf("%+v: %d of streams %d..%d picked, want about %.1f", c, count-run, idx-99, idx, want)
				}
				run = count
			}
		}
		if count != c.m {
			t.Errorf("%+v: %d picked", c, count)
		}
	}
}

// TestAccountingTokens: streams of k tokens and the broadcast expect
// exactly what was published to their tokens and to *, each token's order
// judged on its own, events of other tokens reported apart.
func TestAccountingTokens(t *testing.T) {
	w := &worker{cfg: WorkerConfig{Tokens: 5, PerStream: 3}}
	// Stream 0: tokens 0 1 2; stream 1: tokens 3 4 0.
	s0 := &subscriber{idx: 0, state: streaming, accepted: true, toks: make([]tokState, 3)}
	s1 := &subscriber{idx: 1, state: streaming, accepted: true, toks: make([]tokState, 3)}
	w.subs = []*subscriber{s0, s1}
	bcast := 5
	now := time.Now().UnixNano()
	// Interleaved tokens: each in order, but not with each other.
	for _, e := range []event{ev(1, 0), ev(1, 2), ev(1, bcast), ev(2, 0), ev(1, 1), ev(2, 2), ev(2, bcast), ev(3, 0)} {
		w.event(s0, e, now)
	}
	// Stream 1: token 3 loses seq 2, token 0 gets 3 twice and 2 after 3,
	// token 4 nothing, one broadcast missing, one event of token 1 (not its own).
	for _, e := range []event{ev(1, 3), ev(3, 3), ev(1, 0), ev(3, 0), ev(3, 0), ev(2, 0), ev(1, bcast), ev(9, 1)} {
		w.event(s1, e, now)
	}
	published := []uint64{3, 1, 2, 3, 0, 2}
	w.finish(published, time.Now())
	// Stream 0 expects 3+1+2 + 2 broadcasts = 8; stream 1 expects 3+0+3 + 2 = 8.
	a := w.rep.Stable
	if a.Expected != 16 || a.Received != 8+7 || a.Lost != 2 || a.Duplicated != 1 || a.Reordered != 1 || w.rep.Unexpected != 1 || a.Streams != 2 {
		t.Errorf("expected %d received %d lost %d dup %d reordered %d unexpected %d streams %d; want 16 15 2 1 1 1 2",
			a.Expected, a.Received, a.Lost, a.Duplicated, a.Reordered, w.rep.Unexpected, a.Streams)
	}
	if a.Latency.N != 8+6 {
		t.Errorf("%d latencies, want one per event neither duplicated nor foreign (14)", a.Latency.N)
	}
}

// TestChurnAccounting: a stream opened while publishing counts each token
// from its first event; closed in the middle, to its last; open at the end,
// to the last published.
func TestChurnAccounting(t *testing.T) {
	w := &worker{cfg: WorkerConfig{Tokens: 2, PerStream: 1}}
	s := &subscriber{idx: 0, class: churnClass, state: streaming, accepted: true, fresh: true, toks: make([]tokState, 1)}
	now := time.Now().UnixNano()
	for _, e := range []event{ev(5, 0), ev(6, 0), ev(8, 0), ev(8, 0), ev(3, 2)} {
		w.event(s, e, now)
	}
	w.endLife(s, nil) // closed: 5..8 expected, 7 lost; broadcast 3 only
	a := w.rep.ChurnAcct
	if a.Expected != 5 || a.Lost != 1 || a.Duplicated != 1 || a.Received != 5 || a.Streams != 1 {
		t.Errorf("closed: %+v; want 5 expected, 1 lost, 1 duplicated, 5 received, 1 life", a)
	}
	w.rep.ChurnAcct = Acct{}
	w.subs = []*subscriber{s}
	w.finish([]uint64{10, 0, 4}, time.Now()) // open at the end: 5..10 and 3..4
	a = w.rep.ChurnAcct
	if a.Expected != 6+2 || a.Lost != 3+1 {
		t.Errorf("open at the end: %+v; want 8 expected, 4 lost", a)
	}
	// A stream open since before publishing counts from the start.
	w = &worker{cfg: WorkerConfig{Tokens: 1, PerStream: 1}}
	s = &subscriber{class: churnClass, state: streaming, accepted: true, toks: make([]tokState, 1)}
	w.event(s, ev(2, 0), now)
	w.endLife(s, nil)
	if a := w.rep.ChurnAcct; a.Expected != 2 || a.Lost != 1 {
		t.Errorf("from the start: %+v; want 2 expected, 1 lost", a)
	}
}

// fakeServer answers SSE requests in turn from answers: "200" keeps the
// stream (returned on streams), another status refuses it with a body,
// "close" hangs up without answering.
func fakeServer(t *testing.T, answers []string) (addr string, streams chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	streams = make(chan net.Conn, len(answers))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, a := range answers {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			switch a {
			case "200":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
				streams <- c
			case "close":
				c.Close()
			default:
				fmt.Fprintf(c, "HTTP/1.1 %s Refused\r\nContent-Length: 8\r\nConnection: close\r\n\r\nrefused\n", a)
				c.Close()
			}
		}
	}()
	return ln.Addr().String(), streams
}

// TestWorkerCountsRefusals runs a worker against a server that accepts
// three streams, refuses two with 429 and one with 503, and hangs up on
// one: the refusals are reported by status, the hang-up as failed, and
// only the accepted streams' messages are expected (none lost).
func TestWorkerCountsRefusals(t *testing.T) {
	answers := []string{"200", "429", "200", "503", "close", "429", "200"}
	addr, streams := fakeServer(t, answers)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		// Which subscriber gets which answer depends on the accept order;
		// the counts do not.
		done <- runWorker(WorkerConfig{Addrs: []string{addr}, Path: "/sse", Count: len(answers), Tokens: 1, Timeout: 60}, inR, outW)
		outW.Close()
	}()
	dec := json.NewDecoder(outR)
	var ready workerMsg
	if err := dec.Decode(&ready); err != nil || !ready.Ready {
		t.Fatalf("ready message %+v: %v", ready, err)
	}
	if ready.Connected != 3 || ready.Failed != 1 || ready.Refused[429] != 2 || ready.Refused[503] != 1 {
		t.Fatalf("connected %d, failed %d, refused %v; want 3, 1, map[429:2 503:1]", ready.Connected, ready.Failed, ready.Refused)
	}
	now := time.Now().UnixNano()
	for range 3 {
		c := <-streams
		for seq := 1; seq <= 2; seq++ {
			ev := fmt.Sprintf("id: x-%d\ndata: %d %d 0\n\n", seq, seq, now)
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		}
	}
	fmt.Fprintf(inW, "{\"published\":[2,0]}\n")
	var rep workerMsg
	if err := dec.Decode(&rep); err != nil || rep.Report == nil {
		t.Fatalf("report %+v: %v", rep, err)
	}
	r := rep.Report
	if a := r.Stable; a.Expected != 6 || a.Received != 6 || a.Lost != 0 || r.Connected != 3 || r.Failed != 1 {
		t.Errorf("report %+v: want 6 expected and received, none lost, 3 connected, 1 failed", r)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestWarnings(t *testing.T) {
	r := &Result{Subs: 100, Connected: 100}
	if w := r.Warnings(); len(w) != 0 {
		t.Errorf("all connected: %q", w)
	}
	r = &Result{Subs: 100, Connected: 90, Refused: map[int]int{503: 3, 429: 5}, Failed: 2, RefusedReconn: 4}
	w := r.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], "only 90 of 100 streams connected") ||
		!strings.Contains(w[0], "5 answered 429 Too Many Requests") || !strings.Contains(w[0], "-max-conns-per-ip") ||
		!strings.Contains(w[0], "3 answered 503 Service Unavailable") || !strings.Contains(w[0], "2 got no answer") ||
		strings.Index(w[0], "429") > strings.Index(w[0], "503") || !strings.Contains(w[1], "4 reconnections were refused") {
		t.Errorf("warnings %q", w)
	}
	if tab := r.Table(); !strings.Contains(tab, "5 × 429, 3 × 503, 2 × no answer") {
		t.Errorf("table lacks the refusals:\n%s", tab)
	}
	r = &Result{Subs: 10, Connected: 10, Unexpected: 3, Storm: &StormResult{Streams: 5, Reconnects: 4}}
	if w := r.Warnings(); len(w) != 2 || !strings.Contains(w[0], "3 events reached streams that did not subscribe") ||
		!strings.Contains(w[1], "only 4 of the 5 storm streams reconnected") {
		t.Errorf("warnings %q", w)
	}
	r = &Result{Subs: 60, Connected: 10, Storm: &StormResult{New: true, Streams: 50, Reconnects: 50}}
	if w := r.Warnings(); len(w) != 0 {
		t.Errorf("a connect storm's streams are not missing before it: %q", w)
	}
}

// TestPaceExact: a paced run sends exactly rate × duration messages.
func TestPaceExact(t *testing.T) {
	sent := 0
	err := pace(Config{Rate: 1000, Duration: 30 * time.Millisecond}, func(n int) error { sent += n; return nil })
	if err != nil || sent != 30 {
		t.Errorf("sent %d (%v), want 30", sent, err)
	}
}

// TestStreamsSpreadOverNodes runs a worker against two servers: the
// subscribers alternate between them.
func TestStreamsSpreadOverNodes(t *testing.T) {
	a, sa := fakeServer(t, []string{"200", "200"})
	b, sb := fakeServer(t, []string{"200", "200"})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runWorker(WorkerConfig{Addrs: []string{a, b}, Path: "/sse", Count: 4, Tokens: 1, Timeout: 60}, inR, outW)
		outW.Close()
	}()
	dec := json.NewDecoder(outR)
	var ready workerMsg
	if err := dec.Decode(&ready); err != nil || ready.Connected != 4 {
		t.Fatalf("ready %+v: %v; want 4 connected, 2 on each server", ready, err)
	}
	for _, streams := range []chan net.Conn{sa, sb} {
		for range 2 { // each fake server accepts two streams, then no more
			select {
			case <-streams:
			case <-time.After(10 * time.Second):
				t.Fatal("a server did not get its two streams")
			}
		}
	}
	fmt.Fprintf(inW, "{\"published\":[0,0]}\n")
	var rep workerMsg
	if err := dec.Decode(&rep); err != nil || rep.Report == nil {
		t.Fatalf("report %+v: %v", rep, err)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestPublishersSpreadOverNodes publishes a burst through two control
// ports with two publishers: each port gets only its publisher's tokens,
// each token's messages in order, and every message once.
func TestPublishersSpreadOverNodes(t *testing.T) {
	var ctls []string
	got := make([]chan string, 2)
	for i := range got {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		ctls = append(ctls, ln.Addr().String())
		got[i] = make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got[i] <- ""
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c)
			got[i] <- string(b)
		}()
	}
	cfg := Config{Ctls: ctls, Tokens: 4, TokenPrefix: "t", Publishers: 2, Burst: 40, Size: 16}
	published := make([]uint64, cfg.Tokens)
	var answers Histogram
	if err := publish(cfg, published, &answers); err != nil {
		t.Fatal(err)
	}
	for i, ch := range got {
		last := map[string]uint64{}
		for _, unit := range strings.Split(strings.TrimSuffix(<-ch, ";"), ";") {
			tok, data, _ := strings.Cut(unit, "=")
			if n, _ := fmt.Sscanf(tok, "t%d", new(int)); n != 1 || (tok[1]-'0')%2 != byte(i) {
				t.Errorf("port %d got token %q", i, tok)
			}
			p, ok := parsePayload([]byte(data))
			if !ok || p.seq != last[tok]+1 {
				t.Errorf("port %d: %s seq %d after %d", i, tok, p.seq, last[tok])
			}
			last[tok] = p.seq
		}
		if len(last) != 2 || last["t"+fmt.Sprint(i)] != 10 || last["t"+fmt.Sprint(i+2)] != 10 {
			t.Errorf("port %d got %v, want 10 messages of each of its 2 tokens", i, last)
		}
	}
	for tok, n := range published {
		if n != 10 {
			t.Errorf("published[%d] = %d, want 10", tok, n)
		}
	}
}

// scriptedServer hands each accepted connection, with its request head, to
// the test.
type scriptedConn struct {
	c    net.Conn
	head string
}

func scriptedServer(t *testing.T) (addr string, conns chan scriptedConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = make(chan scriptedConn, 16)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			br := bufio.NewReader(c)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			conns <- scriptedConn{c, head.String()}
		}
	}()
	return ln.Addr().String(), conns
}

// chunk writes SSE blocks as one HTTP chunk each.
func chunk(t *testing.T, c net.Conn, blocks ...string) {
	t.Helper()
	for _, b := range blocks {
		if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(b), b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStormReplay: two streams of two tokens reconnect in a storm with
// Last-Event-ID. One is answered complete and gets everything after its id
// again: nothing lost or duplicated, whatever it had read before the cut.
// The other is answered without the header, with a hasses-reset (gap) and
// without the event it missed: the gap is its verdict and the event lost.
func TestStormReplay(t *testing.T) {
	addr, conns := scriptedServer(t)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runWorker(WorkerConfig{Addrs: []string{addr}, Path: "/sse", Count: 2, Subs: 2, Tokens: 4, PerStream: 2,
			Storm: 2, Timeout: 60, QuietS: 0.5}, inR, outW)
		outW.Close()
	}()
	// Stream 0 has tokens 0 and 1, stream 1 tokens 2 and 3; token 4 is *.
	now := time.Now().UnixNano()
	log := []string{ // stream 0's events, in the server's order
		fmt.Sprintf("id: e-1\ndata: 1 %d 0\n\n", now),
		fmt.Sprintf("id: e-2\ndata: 2 %d 0\n\n", now),
		fmt.Sprintf("id: e-3\ndata: 3 %d 0\n\n", now),
		fmt.Sprintf("id: e-4\ndata: 1 %d 1\n\n", now),
		fmt.Sprintf("id: e-5\ndata: 1 %d 4\n\n", now),
	}
	byID := func() map[string]scriptedConn {
		m := map[string]scriptedConn{}
		for range 2 {
			select {
			case sc := <-conns:
				for _, id := range []string{"c0", "c1"} {
					if strings.Contains(sc.head, "&id="+id+" ") {
						m[id] = sc
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no connection")
			}
		}
		if len(m) != 2 {
			t.Fatalf("connections %v", m)
		}
		return m
	}
	first := byID()
	if h := first["c0"].head; !strings.Contains(h, "subscribe=t0-t1&") || strings.Contains(h, "Last-Event-ID") {
		t.Fatalf("stream 0 asked %q", h)
	}
	for _, sc := range first {
		io.WriteString(sc.c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk(t, sc.c, "id: e-0\n\n")
	}
	dec := json.NewDecoder(outR)
	var ready workerMsg
	if err := dec.Decode(&ready); err != nil || ready.Connected != 2 {
		t.Fatalf("ready %+v: %v", ready, err)
	}
	chunk(t, first["c0"].c, log[:2]...) // read before the storm, or not: the replay must make up for it
	fmt.Fprintf(inW, "{\"start\":true}\n")

	again := byID()
	h0 := again["c0"].head
	after := -1
	for i, id := range []string{"e-0", "e-1", "e-2"} {
		if strings.Contains(h0, "Last-Event-ID: "+id+"\r\n") {
			after = i
		}
	}
	if after < 0 {
		t.Fatalf("stream 0 reconnected with %q, want Last-Event-ID e-0, e-1 or e-2", h0)
	}
	io.WriteString(again["c0"].c, "HTTP/1.1 200 OK\r\nX-Hasses-Replay: complete\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk(t, again["c0"].c, log[after:]...)
	if h1 := again["c1"].head; !strings.Contains(h1, "subscribe=t2-t3&") || !strings.Contains(h1, "Last-Event-ID: e-0\r\n") {
		t.Fatalf("stream 1 reconnected with %q", h1)
	}
	io.WriteString(again["c1"].c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunk(t, again["c1"].c, "id: e-6\nevent: hasses-reset\ndata: gap\n\n", // token 2's first event is gone
		fmt.Sprintf("id: e-7\ndata: 2 %d 2\n\n", now), fmt.Sprintf("id: e-8\ndata: 3 %d 2\n\n", now), log[4])

	fmt.Fprintf(inW, "{\"published\":[3,1,3,0,1]}\n")
	var rep workerMsg
	if err := dec.Decode(&rep); err != nil || rep.Report == nil {
		t.Fatalf("report %+v: %v", rep, err)
	}
	r := rep.Report
	if st := r.Storm; st.Reconnects != 2 || st.Answered != 2 || st.Replay["complete"] != 1 || st.Replay["gap"] != 1 || st.Answer.N != 2 {
		t.Errorf("storm %+v: want 2 reconnected and answered, one complete, one gap", st)
	}
	// Expected: stream 0 3+1+1, stream 1 3+0+1.
	if a := r.StormAcct; a.Expected != 9 || a.Lost != 1 || a.Duplicated != 0 || a.Reordered != 0 || a.Received != 8 || a.Streams != 2 {
		t.Errorf("storm streams %+v: want 9 expected, 8 received, 1 lost", a)
	}
	if r.Resets != 1 || r.Stable.Streams != 0 {
		t.Errorf("%d resets, %d stable streams; want 1 and 0", r.Resets, r.Stable.Streams)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// FuzzStreamParser: however the bytes are cut, the parser sees the same
// events, status, replay verdict and last id, and never panics.
func FuzzStreamParser(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nX-Hasses-Replay: gap\r\n\r\n2a\r\nid: a-7\nevent: hasses-reset\ndata: gap\n\n\r\n1c\r\nid: a-8\ndata: 1 100 3\n\n\r\n"), uint(40))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\nid: x\n\n:\ndata: 1 2 3\r\n\r\n"), uint(3))
	f.Fuzz(func(t *testing.T, b []byte, cut uint) {
		run := func(parts ...[]byte) (string, streamParser) {
			p := streamParser{inHead: true}
			var got []string
			for _, part := range parts {
				p.feed(part, func(ev event) { got = append(got, string(ev.name)+"\x00"+string(ev.data)) })
			}
			return strings.Join(got, "\x01"), p
		}
		c := int(cut % uint(len(b)+1))
		whole, p1 := run(b)
		split, p2 := run(b[:c], b[c:])
		if whole != split || p1.status != p2.status || p1.replay != p2.replay || string(p1.lastID) != string(p2.lastID) {
			t.Fatalf("cut at %d: %q / %q, status %d / %d, replay %q / %q, id %q / %q",
				c, whole, split, p1.status, p2.status, p1.replay, p2.replay, p1.lastID, p2.lastID)
		}
	})
}

// FuzzPayload: what appendPayload writes parses back; parsePayload never
// panics and accepts only three numbers (a negative token is none).
func FuzzPayload(f *testing.F) {
	f.Add(uint64(1), int64(1234567), 7, 64, []byte("1 2 3 xx"))
	f.Fuzz(func(t *testing.T, seq uint64, ns int64, tok, size int, b []byte) {
		if tok >= 0 {
			pl := appendPayload(nil, seq, ns, tok, size%512)
			if p, ok := parsePayload(pl); !ok || p.seq != seq || p.sentNs != ns || p.tok != tok {
				t.Fatalf("%q parsed as %+v %v", pl, p, ok)
			}
		}
		if p, ok := parsePayload(b); ok && p.tok < 0 {
			t.Fatalf("%q: token %d", b, p.tok)
		}
	})
}
