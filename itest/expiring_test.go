package itest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// sseText reads an event stream's SSE text block by block and keeps the
// last id as EventSource does: from every block that has one, dispatched
// or not (the opening id).
type sseText struct {
	t      *testing.T
	br     *bufio.Reader
	lastID string
}

// next returns the next block with data, or an error (io.EOF at the end
// of the stream).
func (s *sseText) next() (event, error) {
	for {
		var block strings.Builder
		for {
			line, err := s.br.ReadString('\n')
			if err != nil {
				return event{}, err
			}
			if line == "\n" {
				break
			}
			block.WriteString(line)
		}
		ev := parseEvent(block.String())
		if strings.HasPrefix(block.String(), "id:") || strings.Contains(block.String(), "\nid:") {
			s.lastID = ev.ID
		}
		if ev.HasData {
			return ev, nil
		}
	}
}

// expiringClient opens streams one way: a protocol and a way to carry
// the token.
type expiringClient struct {
	name string
	tls  bool
	// open opens a stream with tok and, if set, Last-Event-ID.
	open func(t *testing.T, d *daemon, tok, lastID string) *sseText
}

// rawOpen sends the request on d's port (TLS when it speaks TLS) in proto,
// with the token in the query, a cookie or the Authorization header.
func rawOpen(proto, carry string) func(t *testing.T, d *daemon, tok, lastID string) *sseText {
	return func(t *testing.T, d *daemon, tok, lastID string) *sseText {
		t.Helper()
		path, header := "/sse?subscribe=t", ""
		switch carry {
		case "query":
			path += "&access_token=" + tok
		case "cookie":
			header = "Cookie: hasses_token=" + tok + "\r\n"
		case "header":
			header = "Authorization: Bearer " + tok + "\r\n"
		}
		if lastID != "" {
			header += "Last-Event-ID: " + lastID + "\r\n"
		}
		c := d.dial()
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET %s %s\r\nHost: localhost\r\n%s\r\n", path, proto, header)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s stream: %v %v", proto, resp, err)
		}
		// The body, de-chunked for HTTP/1.1; close-delimited for 1.0.
		return &sseText{t: t, br: bufio.NewReader(resp.Body)}
	}
}

// h2Open opens the stream over HTTP/2, the token in the query.
func h2Open(t *testing.T, d *daemon, tok, lastID string) *sseText {
	t.Helper()
	tr := &http.Transport{ForceAttemptHTTP2: true, Protocols: new(http.Protocols),
		TLSClientConfig: &tls.Config{RootCAs: testCert.pool, ServerName: "127.0.0.1", NextProtos: []string{"h2"}}}
	tr.Protocols.SetHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+d.sse+"/sse?subscribe=t&access_token="+tok, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/2 stream: %v %v", resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseText{t: t, br: bufio.NewReader(resp.Body)}
}

// Issue 18: a stream whose JWT has an exp gets hasses-expiring
// -jwt-renew-before ahead of it (data: the exp, no id), then ends at exp;
// a client that reopens with a fresh token and its last id misses
// nothing published before, during or after the renewal. On every front
// end and framing: epoll HTTP/1.1 (chunks) and 1.0 (text), TLS HTTP/1.1,
// HTTP/2; with the token in the query, a cookie and the header.
func TestTokenRenewalEvent(t *testing.T) {
	clients := []expiringClient{
		{"plain HTTP/1.1 query", false, rawOpen("HTTP/1.1", "query")},
		{"plain HTTP/1.0 cookie", false, rawOpen("HTTP/1.0", "cookie")},
		{"TLS HTTP/1.1 header", true, rawOpen("HTTP/1.1", "header")},
		{"h2 query", true, h2Open},
	}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			t.Parallel() // each mostly waits for its token to expire
			start := start
			if cl.tls {
				start = startTLS
			}
			pub, key := esKey(t)
			d := start(t, "-jwt-key="+pub, "-jwt-renew-before=2s")
			tok := func(exp int64) string {
				return token(t, jwt.SigningMethodES256, key, jwt.MapClaims{"subscribe": []string{"t"}, "exp": exp})
			}
			expiring := func(ev event, err error, exp int64) {
				t.Helper()
				if err != nil || ev.Event != "hasses-expiring" || ev.ID != "" || ev.Data != fmt.Sprintf(`{"exp":%d}`, exp) {
					t.Fatalf("event %+v %v, want hasses-expiring without an id, exp %d", ev, err, exp)
				}
			}

			// A token that expires sooner than -jwt-renew-before: the
			// event comes at once, before any message.
			near := time.Now().Unix() + 2 // 1-2 s ahead
			s := cl.open(t, d, tok(near), "")
			d.send("t=m0\n")
			ev, err := s.next()
			expiring(ev, err, near)

			// A token 4-5 s ahead: m1, then the event about 2 s before the
			// expiry, then what is published until the end.
			exp := time.Now().Unix() + 5
			s = cl.open(t, d, tok(exp), "")
			d.send("t=m1\n")
			var got []string
			ev, err = s.next()
			if err != nil || ev.Data != "m1" {
				t.Fatalf("first event %+v %v, want m1", ev, err)
			}
			got = append(got, ev.Data)
			idM1 := s.lastID
			ev, err = s.next()
			expiring(ev, err, exp)
			if time.Now().Unix() >= exp {
				t.Fatalf("hasses-expiring arrived at %v, after the token's exp %d", time.Now(), exp)
			}
			if s.lastID != idM1 {
				t.Fatalf("last id %q after hasses-expiring, want m1's %q", s.lastID, idM1)
			}
			// While the client gets a fresh token: m2 on the old stream.
			d.send("t=m2\n")
			for {
				ev, err := s.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("the stream ended with %v, want a clean end at its token's expiry", err)
				}
				if ev.Event == "hasses-expiring" {
					t.Fatalf("a second hasses-expiring: %+v", ev)
				}
				got = append(got, ev.Data)
			}
			// Between the end and the reopening: m3.
			d.send("t=m3\n")
			s = cl.open(t, d, tok(time.Now().Add(time.Hour).Unix()), s.lastID)
			for len(got) < 3 {
				ev, err := s.next()
				if err != nil {
					t.Fatalf("after %q on the new stream: %v", got, err)
				}
				got = append(got, ev.Data)
			}
			d.send("t=m4\n")
			ev, err = s.next()
			if err != nil {
				t.Fatal(err)
			}
			if got = append(got, ev.Data); !slices.Equal(got, []string{"m1", "m2", "m3", "m4"}) {
				t.Fatalf("events across the renewal %q, want m1 m2 m3 m4 each once", got)
			}
		})
	}
}
