package itest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rss returns the resident memory of process pid in bytes.
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// h2conn opens an HTTP/2 connection by hand, so that the test can send
// what a well-behaved client library refuses to.
func h2conn(t *testing.T, d *daemon) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c, err := tls.Dial("tcp", d.sse, &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN %q", c.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	return c, fr
}

// An HTTP/2 header list over the 8 KiB head limit is refused, and 100
// streams that each send 256 KiB of headers leave the memory bounded
// (the server once kept up to 1 MiB per stream for the stream's life).
func TestTLSOversizedHTTP2HeadersRefused(t *testing.T) {
	d := startTLS(t)
	pid := d.cmd.Process.Pid
	before := rss(t, pid)
	c, fr := h2conn(t, d)
	big := make([]byte, 128<<10)
	rand.Read(big)
	value := hex.EncodeToString(big) // 256 KiB that hpack cannot compress
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	const streams = 100
	go func() {
		for i := range streams {
			hb.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", d.sse},
				{":path", "/sse?subscribe=t" + strconv.Itoa(i)}, {"x-big", value}} {
				enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			block := hb.Bytes()
			id := uint32(2*i + 1)
			first := true
			for len(block) > 0 {
				n := min(len(block), 16<<10)
				var err error
				if first {
					err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:n], EndStream: true, EndHeaders: n == len(block)})
				} else {
					err = fr.WriteContinuation(id, n == len(block), block[:n])
				}
				if err != nil {
					return // the server may give up on the connection
				}
				first = false
				block = block[n:]
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	dec := hpack.NewDecoder(4096, nil)
	refused, ok := 0, 0
	for refused+ok < streams {
		f, err := fr.ReadFrame()
		if err != nil {
			break // GOAWAY and close also refuse
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			fields, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, hf := range fields {
				if hf.Name == ":status" {
					if hf.Value == "200" {
						ok++
					} else {
						refused++
					}
				}
			}
		case *http2.RSTStreamFrame:
			refused++
		case *http2.GoAwayFrame:
			refused = streams
		}
	}
	t.Logf("%d of %d oversized requests refused, %d served", refused, streams, ok)
	if ok > 0 || refused == 0 {
		t.Errorf("%d streams with 256 KiB of headers were served, %d refused", ok, refused)
	}
	if grew := rss(t, pid) - before; grew > 16<<20 {
		t.Errorf("RSS grew by %d MB after %d oversized header lists", grew>>20, streams)
	}
	if st := d.command("tcpstatus"); !strings.Contains(st, `"sseconncli": 0,`) {
		t.Errorf("streams open after refusals: %s", st)
	}
}

// Connections over -max-conns are closed at once, idle TLS connections
// time out, and the control port answers while the SSE port is full, even
// when the file limit is low.
func TestTLSIdleConnectionsCannotExhaustTheServer(t *testing.T) {
	d := startWrapped(t, []string{"prlimit", "--nofile=300:300"}, startTLS, "-handshake-timeout=2s")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	closed := 0
	for range 400 { // more than the file limit
		c, err := net.Dial("tcp", d.sse)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The control port still answers, with the SSE port full.
	if st := d.command("tcpstatus"); !strings.Contains(st, `"allconncli"`) {
		t.Fatalf("control port while the SSE port is full: %q", st)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed < 100 {
		t.Errorf("%d of 400 connections closed at once with a limit of 300 files, want those over the cap", closed)
	}
	// Idle connections that never start TLS are closed at the handshake
	// timeout; so are HTTP/2 connections without a stream.
	_, fr := h2conn(t, d)
	_ = fr
	time.Sleep(3 * time.Second)
	waitFor(t, "idle connections closed", func() bool {
		return strings.Contains(d.command("tcpstatus"), `"allconncli": 0,`)
	})
}
