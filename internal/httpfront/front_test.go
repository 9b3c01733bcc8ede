package httpfront

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
)

// wait bounds every blocking step of a test, so that a bug fails the test
// instead of hanging it; nothing asserts how fast anything happens.
const wait = 10 * time.Second

// testCert is a self-signed certificate for 127.0.0.1, made once.
var testCert = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpfront test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// testFront is a front end served in-process on loopback, wired to a hub
// and a stream core as internal/server wires them.
type testFront struct {
	hub  *hub.Hub
	core *stream.Core
	srv  *Server
	addr string
	pool *x509.CertPool
	// stop cancels Serve and returns what it returned.
	stop func() error
}

func startFront(t *testing.T, hcfg hub.Config, scfg stream.Config, cfg Config) *testFront {
	t.Helper()
	h := hub.New(hcfg)
	if scfg.Handshake == nil {
		scfg.Handshake = &handshake.Config{Path: "/sse"}
	}
	scfg.Logger = slog.New(slog.DiscardHandler)
	core := stream.New(h, scfg)
	cert, pool := testCert()
	cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	srv := New(core, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	f := &testFront{hub: h, core: core, srv: srv, addr: ln.Addr().String(), pool: pool}
	f.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-served:
			case <-time.After(wait + core.Config().Drain):
				serr = errors.New("Serve did not return after the drain time")
			}
		})
		return serr
	}
	t.Cleanup(func() {
		if err := f.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func (f *testFront) tlsConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: f.pool, ServerName: "127.0.0.1", NextProtos: protos}
}

// dialTCP opens a TCP connection to the front end; rcvbuf, if non-zero, is
// set before the connection opens, so that the window stays small.
func (f *testFront) dialTCP(t *testing.T, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	c, err := d.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	return c
}

// dialH1 opens a TLS connection that negotiates HTTP/1.1.
func (f *testFront) dialH1(t *testing.T, rcvbuf int) *tls.Conn {
	t.Helper()
	tc := tls.Client(f.dialTCP(t, rcvbuf), f.tlsConfig("http/1.1"))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN %q, want http/1.1", p)
	}
	return tc
}

// h1stream is an HTTP/1.1 stream over TLS.
type h1stream struct {
	c    *tls.Conn
	br   *bufio.Reader // the connection
	body *bufio.Reader // the chunked body, decoded by the standard library
	resp *http.Response
}

// get sends a stream request on c and reads the response head.
func get(t *testing.T, c *tls.Conn, br *bufio.Reader, query string) *h1stream {
	t.Helper()
	if br == nil {
		br = bufio.NewReader(c)
	}
	if _, err := fmt.Fprintf(c, "GET /sse%s HTTP/1.1\r\nHost: x\r\nUser-Agent: front-test\r\n\r\n", query); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("stream head: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("stream head: %d %v %v", resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	return &h1stream{c: c, br: br, body: bufio.NewReader(httputil.NewChunkedReader(br)), resp: resp}
}

// readEvent reads one event's data.
func readEvent(r *bufio.Reader) (string, error) {
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(data) > 0 {
				return strings.Join(data, "\n"), nil
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, v)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(wait); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *testFront) waitSubscribed(t *testing.T, token string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscribers on %s", n, token), func() bool { return f.hub.SubscribedClients(token) == n })
}

func (f *testFront) publish(t *testing.T, target, data string) {
	t.Helper()
	if _, err := f.hub.Publish(hub.Message{Targets: []string{target}, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}

// h2client is a net/http client that speaks HTTP/2 to the front end.
func (f *testFront) h2client(t *testing.T) *http.Client {
	tr := &http.Transport{TLSClientConfig: f.tlsConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// openH2 opens a stream over HTTP/2.
func (f *testFront) openH2(t *testing.T, client *http.Client, query string) (*http.Response, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+f.addr+"/sse"+query, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP/2 stream: %d %s %v", resp.StatusCode, resp.Proto, resp.Header)
	}
	return resp, bufio.NewReader(resp.Body)
}

// closedByServer reports whether reading c ends because the server closed
// it, not because the test's own deadline passed.
func closedByServer(c io.Reader) error {
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("still open")
	}
	return nil
}

// An HTTP/1.1 stream over TLS gets its head, then the events published
// after it; clientlist shows it.
func TestHTTP1StreamGetsEvents(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	s := get(t, f.dialH1(t, 0), nil, "?subscribe=t&id=me")
	f.waitSubscribed(t, "t", 1)
	f.publish(t, "t", "hello")
	f.publish(t, "other", "not for me")
	f.publish(t, "t", "two\nlines")
	for _, want := range []string{"hello", "two\nlines"} {
		if got, err := readEvent(s.body); err != nil || got != want {
			t.Fatalf("event: %q %v, want %q", got, err, want)
		}
	}
	// The writer counts an event once its write returns, which may be
	// after the client read it.
	waitFor(t, "2 deliveries counted", func() bool { return f.srv.Stats().Delivered == 2 })
	st := f.srv.Stats()
	if st.Conns != 1 || st.Streams != 1 || st.Delivered != 2 {
		t.Errorf("stats %+v", st)
	}
	cl := f.srv.Clients()
	if len(cl) != 1 || cl[0].State != "streaming" || cl[0].ID != "me" || cl[0].UserAgent != "front-test" ||
		len(cl[0].Tokens) != 1 || cl[0].Tokens[0] != "t" || !strings.HasPrefix(cl[0].Addr, "127.0.0.1:") {
		t.Errorf("clients %+v", cl)
	}
}

// An answer that is not a stream (here 404) is complete, and the server
// then closes the connection (after a close_notify: a clean EOF).
func TestHTTP1AnswerThenClose(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	c := f.dialH1(t, 0)
	io.WriteString(c, "GET /nope?subscribe=t HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("answer: %v %v", resp, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("answer body: %v", err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the answer: %d bytes, %v; want a clean EOF", n, err)
	}
	c.Close()
	waitFor(t, "the connection forgotten", func() bool { return f.srv.Stats().Conns == 0 })
}

// A stream that ends cleanly (its lifetime is over) ends with the last
// chunk and leaves the HTTP/1.1 connection open for another request.
func TestHTTP1KeepAliveAfterCleanEnd(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{Lifetime: 100 * time.Millisecond}, Config{})
	c := f.dialH1(t, 0)
	s := get(t, c, nil, "?subscribe=t")
	for i := range 2 {
		if _, err := io.ReadAll(s.body); err != nil { // only the last chunk ends it cleanly
			t.Fatalf("stream %d did not end cleanly: %v", i, err)
		}
		if crlf, err := s.br.ReadString('\n'); crlf != "\r\n" || err != nil {
			t.Fatalf("after the last chunk: %q %v", crlf, err)
		}
		s = get(t, c, s.br, "?subscribe=t") // the same connection
	}
	if st := f.srv.Stats(); st.Conns != 1 {
		t.Errorf("%d connections for three streams in a row, want 1", st.Conns)
	}
}

// With reinit on, a GET sent on a streaming connection replaces its
// stream: a new head is written and the old subscription is gone.
func TestHTTP1Reinit(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	f.core.Config().Reinit.Store(true)
	c := f.dialH1(t, 0)
	s := get(t, c, nil, "?subscribe=old")
	f.waitSubscribed(t, "old", 1)
	f.publish(t, "old", "1")
	// The raw connection, not the chunked reader: the new head is written
	// on the stream as is, as hasses did.
	readUntil(t, s.br, "data: 1\n")
	io.WriteString(c, "GET /sse?subscribe=new HTTP/1.1\r\nHost: x\r\n\r\n")
	line := readUntil(t, s.br, "HTTP/1.1 ")
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("after reinit: %q", line)
	}
	f.waitSubscribed(t, "new", 1)
	f.waitSubscribed(t, "old", 0)
	f.publish(t, "old", "2")
	f.publish(t, "new", "3")
	if line := readUntil(t, s.br, "data: "); line != "data: 3\n" {
		t.Fatalf("after reinit: %q, want the new subscription's event only", line)
	}
	if st := f.srv.Stats(); st.Conns != 1 || st.Streams != 1 {
		t.Errorf("stats after reinit %+v", st)
	}
}

// readUntil reads lines until one starts with prefix, and returns it.
func readUntil(t *testing.T, br *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
}

// Streams over HTTP/2 get their events, share one TCP connection (which
// counts once against the caps), and are listed by clientlist.
func TestHTTP2Streams(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	client := f.h2client(t)
	_, a := f.openH2(t, client, "?subscribe=a&id=ida")
	_, b := f.openH2(t, client, "?subscribe=b")
	f.waitSubscribed(t, "a", 1)
	f.waitSubscribed(t, "b", 1)
	f.publish(t, "a", "for a")
	f.publish(t, "b", "for b")
	if got, err := readEvent(a); err != nil || got != "for a" {
		t.Errorf("stream a: %q %v", got, err)
	}
	if got, err := readEvent(b); err != nil || got != "for b" {
		t.Errorf("stream b: %q %v", got, err)
	}
	if st := f.srv.Stats(); st.Conns != 1 || st.Streams != 2 {
		t.Errorf("stats %+v, want 1 connection and 2 streams", st)
	}
	cl := f.srv.Clients()
	if len(cl) != 2 || cl[0].State != "streaming (HTTP/2)" || cl[1].State != "streaming (HTTP/2)" ||
		(cl[0].ID != "ida" && cl[1].ID != "ida") {
		t.Errorf("clients %+v", cl)
	}
}

// When an HTTP/2 connection closes, its streams and its admission are
// given back, and the front end keeps nothing of it. (The connection
// stayed in an internal map for the life of the process.)
func TestHTTP2ConnectionIsForgotten(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	tr := &http.Transport{TLSClientConfig: f.tlsConfig(), ForceAttemptHTTP2: true}
	resp, _ := f.openH2(t, &http.Client{Transport: tr}, "?subscribe=a")
	f.waitSubscribed(t, "a", 1)
	resp.Body.Close()
	tr.CloseIdleConnections()
	waitFor(t, "the HTTP/2 connection given back", func() bool { st := f.srv.Stats(); return st.Conns == 0 && st.Streams == 0 })
	waitFor(t, "the HTTP/2 connection forgotten", func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		return len(f.srv.conns) == 0 && len(f.srv.byNet) == 0 && len(f.srv.h2s) == 0
	})
}

// A request head over the limit is refused with 431 over HTTP/2 as over
// HTTP/1.1, also when its header list is within what HTTP/2 itself
// accepts; one under the limit is served.
func TestHTTP2HeaderListLimit(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	client := f.h2client(t)
	do := func(n int) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+f.addr+"/sse?subscribe=t", nil)
		req.Header.Set("X-Big", strings.Repeat("b", n))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%d bytes of header: %v", n, err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s", resp.Proto)
		}
		return resp.StatusCode
	}
	limit := (&handshake.Config{}).HeadLimit()
	// 8120 bytes: the head is over 8 KiB as HTTP/1.1 spells it, and the
	// header list under what net/http's HTTP/2 server takes (8 KiB and
	// 32 bytes per field for 10 fields).
	if limit != 8192 {
		t.Fatalf("head limit %d: adjust the sizes below", limit)
	}
	if got := do(8120); got != 431 {
		t.Errorf("a head over the limit: %d, want 431", got)
	}
	if got := do(7000); got != 200 {
		t.Errorf("a head under the limit: %d, want 200", got)
	}
}

// The caps are applied at accept: a connection over -max-conns is closed
// before its TLS handshake, and the slot is free again once a connection
// closes.
func TestMaxConnsClosedBeforeHandshake(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{MaxConns: 1}, Config{})
	c := f.dialH1(t, 0)
	get(t, c, nil, "?subscribe=t")
	f.refusedHandshake(t)
	if st := f.srv.Stats(); st.Refused != 1 || st.Conns != 1 {
		t.Errorf("stats %+v, want 1 refused, 1 open", st)
	}
	c.Close()
	waitFor(t, "the slot freed", func() bool { return f.srv.Stats().Conns == 0 })
	get(t, f.dialH1(t, 0), nil, "?subscribe=t")
}

// So is a connection over the per-address cap, which counts HTTP/2
// streams (issue 16, item 2): a connection with two streams holds two
// places.
func TestPerAddrCapClosedBeforeHandshake(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{MaxConnsPerAddr: 2}, Config{})
	client := f.h2client(t)
	r1, _ := f.openH2(t, client, "?subscribe=t")
	r2, _ := f.openH2(t, client, "?subscribe=t") // the same connection: the cap counts streams
	f.refusedHandshake(t)
	if st := f.srv.Stats(); st.RefusedPerAddr != 1 || st.Conns != 1 || st.Streams != 2 {
		t.Errorf("stats %+v, want 1 refused per address, 1 connection, 2 streams", st)
	}
	r1.Body.Close()
	r2.Body.Close()
	client.Transport.(*http.Transport).CloseIdleConnections()
	waitFor(t, "the slot freed", func() bool { return f.srv.Stats().Conns == 0 })
	get(t, f.dialH1(t, 0), nil, "?subscribe=t")
}

// refusedHandshake checks that a new connection is closed before its TLS
// handshake can complete.
func (f *testFront) refusedHandshake(t *testing.T) {
	t.Helper()
	tc := tls.Client(f.dialTCP(t, 0), f.tlsConfig("http/1.1"))
	err := tc.Handshake()
	if err == nil {
		t.Fatal("a connection over the cap completed its TLS handshake")
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a connection over the cap was left open")
	}
}

// A connection that never sends a ClientHello is closed at the handshake
// timeout; so are a TLS connection that sends no request and an HTTP/2
// connection without a stream.
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	f := startFront(t, hub.Config{}, stream.Config{HandshakeTimeout: time.Second}, Config{})
	silent := f.dialTCP(t, 0)
	noRequest := f.dialH1(t, 0)
	h2 := tls.Client(f.dialTCP(t, 0), f.tlsConfig("h2"))
	if err := h2.Handshake(); err != nil || h2.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("h2 handshake: %v %q", err, h2.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(h2, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00") // preface, empty SETTINGS
	for name, c := range map[string]io.Reader{"silent TCP": silent, "TLS without a request": noRequest, "HTTP/2 without a stream": h2} {
		if err := closedByServer(c); err != nil {
			t.Errorf("%s connection: %v", name, err)
		}
	}
	waitFor(t, "the connections forgotten", func() bool { return f.srv.Stats().Conns == 0 })
}

// frontGoroutines lists the goroutines that run the front end's code or
// the net/http server it starts.
func frontGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"httpfront.(*Server)", "httpfront.(*conn)", "httpfront.(*chanListener)",
			"net/http.(*conn).serve", "net/http.(*http2serverConn)", "net/http.(*Server)"} {
			if strings.Contains(g, fn) {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// A shutdown ends every stream cleanly with a retry hint, over HTTP/1.1
// (the last chunk) and HTTP/2 (the end of the body), closes connections
// still in their handshake, and every goroutine the front end started
// stops.
func TestShutdownDrainsAndStops(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{})
	var h1 []*h1stream
	for range 2 {
		h1 = append(h1, get(t, f.dialH1(t, 0), nil, "?subscribe=t"))
	}
	client := f.h2client(t)
	var h2 []*bufio.Reader
	for range 2 {
		_, r := f.openH2(t, client, "?subscribe=t")
		h2 = append(h2, r)
	}
	silent := f.dialTCP(t, 0)
	noRequest := f.dialH1(t, 0)
	f.waitSubscribed(t, "t", 4)
	waitFor(t, "5 connections", func() bool { return f.srv.Stats().Conns == 5 })
	f.publish(t, "t", "bye")

	stopped := make(chan error, 1)
	go func() { stopped <- f.stop() }()
	for i, s := range h1 {
		rest, err := io.ReadAll(s.body) // the chunked reader ends cleanly only at the last chunk
		if err != nil || !strings.Contains(string(rest), "data: bye\n") || !strings.Contains(string(rest), "retry: ") {
			t.Errorf("HTTP/1.1 stream %d ended with %q %v", i, rest, err)
		}
		s.c.Close()
	}
	for i, r := range h2 {
		rest, err := io.ReadAll(r)
		if err != nil || !strings.Contains(string(rest), "data: bye\n") || !strings.Contains(string(rest), "retry: ") {
			t.Errorf("HTTP/2 stream %d ended with %q %v", i, rest, err)
		}
	}
	for name, c := range map[string]io.Reader{"handshaking": silent, "idle": noRequest} {
		if err := closedByServer(c); err != nil {
			t.Errorf("%s connection at shutdown: %v", name, err)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	var left []string
	for end := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		if left = frontGoroutines(); len(left) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d goroutines of the front end left after Serve returned:\n%s", len(left), strings.Join(left, "\n\n"))
		}
	}
	if st := f.srv.Stats(); st.Conns != 0 || st.Streams != 0 {
		t.Errorf("stats after shutdown %+v", st)
	}
}

// An HTTP/2 stream may idle (no heartbeat) longer than WriteTimeout: the
// deadline of its last write does not reset it. (Go's HTTP/2 server
// resets a stream whose write deadline passes, write or not.)
func TestHTTP2IdleLongerThanWriteTimeout(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{WriteTimeout: 200 * time.Millisecond}, Config{})
	_, r := f.openH2(t, f.h2client(t), "?subscribe=idle")
	f.waitSubscribed(t, "idle", 1)
	f.publish(t, "idle", "one")
	if got, err := readEvent(r); err != nil || got != "one" {
		t.Fatalf("first event: %q %v", got, err)
	}
	time.Sleep(600 * time.Millisecond) // three write timeouts without a write
	f.publish(t, "idle", "two")
	if got, err := readEvent(r); err != nil || got != "two" {
		t.Fatalf("event after idling: %q %v, want the stream still open", got, err)
	}
}
