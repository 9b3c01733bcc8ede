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
		on := func(l []byte) { got = append(got, string(l)) }
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
	on := func(l []byte) { got = append(got, string(l)) }
	p.feed([]byte("1c\r\nid: a-1\ndata: 1 100\n\n\r\n1c\r\nid: a-2\n"), on)
	if string(p.lastID) != "a-1" || len(got) != 1 {
		t.Fatalf("mid-event: last id %q, data %q; want a-1 and one event", p.lastID, got)
	}
	p.feed([]byte("data: 2 200\n\n\r\n"), on)
	if string(p.lastID) != "a-2" || len(got) != 2 {
		t.Fatalf("after the event: last id %q, data %q; want a-2 and two events", p.lastID, got)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	b := appendPayload(nil, 42, 1234567, 64)
	if len(b) != 64 {
		t.Errorf("payload of %d bytes, want 64", len(b))
	}
	p, ok := parsePayload(b)
	if !ok || p.seq != 42 || p.sentNs != 1234567 {
		t.Errorf("parsed %+v %v from %q", p, ok, b)
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

func TestAccounting(t *testing.T) {
	w := &worker{}
	s := &subscriber{}
	for _, seq := range []uint64{1, 2, 2, 4, 3, 5} {
		w.event(s, fmt.Appendf(nil, "%d %d", seq, time.Now().UnixNano()), time.Now().UnixNano())
	}
	if w.rep.Received != 6 || w.rep.Duplicated != 1 || w.rep.Reordered != 1 || s.got != 5 {
		t.Errorf("report %+v got %d", w.rep, s.got)
	}
	refused := &subscriber{state: closed}
	w.subs = []*subscriber{s, refused}
	s.state, s.accepted = streaming, true
	w.finish([]uint64{6}, time.Now())
	if w.rep.Lost != 1 || w.rep.Expected != 6 {
		t.Errorf("lost %d expected %d, want 1 and 6 (the refused subscriber expects nothing)", w.rep.Lost, w.rep.Expected)
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
			ev := fmt.Sprintf("id: x-%d\ndata: %d %d\n\n", seq, seq, now)
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
		}
	}
	fmt.Fprintf(inW, "{\"published\":[2]}\n")
	var rep workerMsg
	if err := dec.Decode(&rep); err != nil || rep.Report == nil {
		t.Fatalf("report %+v: %v", rep, err)
	}
	r := rep.Report
	if r.Expected != 6 || r.Received != 6 || r.Lost != 0 || r.Connected != 3 || r.Failed != 1 {
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
	fmt.Fprintf(inW, "{\"published\":[0]}\n")
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
	cfg := Config{Ctls: ctls, Tokens: 4, Publishers: 2, Burst: 40, Size: 16}
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
