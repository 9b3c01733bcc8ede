package itest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// Issue 16, item 2: under -ssl, the per-address cap counts HTTP/2 streams,
// not TCP connections: with -max-conns-per-ip=2, the third stream on one
// connection gets 429, as a third HTTP/1.1 connection does; a stream that
// ends gives its place back.
func TestHTTP2StreamsCountedPerAddress(t *testing.T) {
	d := startTLS(t, "-max-conns-per-ip=2")
	var dials atomic.Int32
	cfg := &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}
	tr := &http.Transport{ForceAttemptHTTP2: true, Protocols: new(http.Protocols),
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
		}}
	tr.Protocols.SetHTTP2(true) // HTTP/2 only: every stream on one connection
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+d.sse+"/sse?subscribe=h2cap", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp, cancel
	}
	first, closeFirst := open()
	second, _ := open()
	third, _ := open()
	if first.StatusCode != 200 || second.StatusCode != 200 {
		t.Fatalf("first two streams: %d %d", first.StatusCode, second.StatusCode)
	}
	if third.StatusCode != 429 {
		t.Fatalf("third stream on one connection: %d, want 429", third.StatusCode)
	}
	if body, _ := io.ReadAll(third.Body); len(body) == 0 {
		t.Error("429 without a body")
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections, want all streams on one", n)
	}
	closeFirst()
	waitFor(t, "a place to be freed", func() bool {
		r, cancel := open()
		defer cancel()
		return r.StatusCode == 200
	})
	waitFor(t, "the refusal log line", func() bool {
		return strings.Contains(d.log.String(), "per-address cap (429)")
	})
}
