package loadgen

import (
	"fmt"
	"strings"
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
	w.subs = []*subscriber{s}
	s.state = 1
	w.finish([]uint64{6}, time.Now())
	if w.rep.Lost != 1 || w.rep.Expected != 6 {
		t.Errorf("lost %d expected %d, want 1 and 6", w.rep.Lost, w.rep.Expected)
	}
}
