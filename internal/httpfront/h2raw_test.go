package httpfront

import (
	"bytes"
	"crypto/tls"
	"io"
	"testing"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/stream"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2raw is an HTTP/2 client written by hand, so that a test controls what
// a client library decides for itself: flow control, stream counts.
type h2raw struct {
	c   *tls.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
	dec *hpack.Decoder
	f   *testFront
}

// dialH2Raw opens an HTTP/2 connection with the default settings: 64 KiB
// windows that the client never opens further.
func (f *testFront) dialH2Raw(t *testing.T) *h2raw {
	t.Helper()
	c := tls.Client(f.dialTCP(t, 0), f.tlsConfig("h2"))
	if err := c.Handshake(); err != nil || c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("h2 handshake: %v %q", err, c.ConnectionState().NegotiatedProtocol)
	}
	io.WriteString(c, http2.ClientPreface)
	h := &h2raw{c: c, fr: http2.NewFramer(c, c), dec: hpack.NewDecoder(4096, nil), f: f}
	h.enc = hpack.NewEncoder(&h.hb)
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// get opens stream id with a GET of /sse+query.
func (h *h2raw) get(t *testing.T, id uint32, query string) {
	t.Helper()
	h.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", h.f.addr}, {":path", "/sse" + query}} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// next reads the next frame; it acknowledges the server's settings.
func (h *h2raw) next(t *testing.T) http2.Frame {
	t.Helper()
	f, err := h.fr.ReadFrame()
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
		h.fr.WriteSettingsAck()
	}
	return f
}

// status decodes the :status of a HEADERS frame.
func (h *h2raw) status(t *testing.T, f *http2.HeadersFrame) string {
	t.Helper()
	fields, err := h.dec.DecodeFull(f.HeaderBlockFragment())
	if err != nil {
		t.Fatal(err)
	}
	for _, hf := range fields {
		if hf.Name == ":status" {
			return hf.Value
		}
	}
	return ""
}

// The server announces the cap on concurrent streams, refuses a stream
// over it, and takes a new one once a stream ends.
func TestHTTP2ConcurrentStreamsLimit(t *testing.T) {
	f := startFront(t, hub.Config{}, stream.Config{}, Config{MaxStreamsPerConn: 2})
	h := f.dialH2Raw(t)
	settings, ok := h.next(t).(*http2.SettingsFrame)
	if !ok {
		t.Fatal("the server did not start with its settings")
	}
	if v, ok := settings.Value(http2.SettingMaxConcurrentStreams); !ok || v != 2 {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d %v, want 2", v, ok)
	}
	h.get(t, 1, "?subscribe=a")
	h.get(t, 3, "?subscribe=a")
	h.get(t, 5, "?subscribe=a")
	statuses := map[uint32]string{}
	var refused uint32
	for len(statuses) < 2 || refused == 0 {
		switch fr := h.next(t).(type) {
		case *http2.HeadersFrame:
			statuses[fr.StreamID] = h.status(t, fr)
		case *http2.RSTStreamFrame:
			refused = fr.StreamID
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", fr.ErrCode)
		}
	}
	if statuses[1] != "200" || statuses[3] != "200" || refused != 5 {
		t.Fatalf("streams %v, refused %d; want 1 and 3 served, 5 refused", statuses, refused)
	}
	// A stream ends; a new one is served.
	h.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	h.get(t, 7, "?subscribe=a")
	for {
		if fr, ok := h.next(t).(*http2.HeadersFrame); ok && fr.StreamID == 7 {
			if st := h.status(t, fr); st != "200" {
				t.Fatalf("stream 7: %s", st)
			}
			break
		}
	}
	f.waitSubscribed(t, "a", 2)
}
