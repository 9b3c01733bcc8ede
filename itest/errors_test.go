package itest

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A request without ?subscribe= is told what is missing, on every front
// end (HTTP/1.1 plain and over TLS, HTTP/2).
func TestMissingSubscribeSaysSo(t *testing.T) {
	const want = "missing the subscribe parameter: add ?subscribe=TOKEN"
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		for _, target := range []string{"/sse", "/sse?id=x"} {
			s := d.raw("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
			n, _ := strconv.Atoi(s.Header.Get("Content-Length"))
			body := make([]byte, n)
			if _, err := io.ReadFull(s.br, body); err != nil || s.Status != 400 || !strings.Contains(string(body), want) {
				t.Errorf("GET %s: %d %q %v, want 400 saying %q", target, s.Status, body, err, want)
			}
		}
		if d.tls == nil {
			return
		}
		cfg := d.tls.Clone()
		cfg.NextProtos = []string{"h2"}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
		resp, err := c.Get("https://" + d.sse + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 400 || !strings.Contains(string(body), want) {
			t.Errorf("HTTP/2: %s %d %q, want 400 saying %q", resp.Proto, resp.StatusCode, body, want)
		}
	})
}

// Plain HTTP sent to the TLS port gets an answer saying so, as net/http
// gives, instead of an empty reply; the port goes on serving TLS.
func TestPlainHTTPToTLSPort(t *testing.T) {
	d := startTLS(t)
	c, err := net.Dial("tcp", d.sse)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /sse?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request\r\n") ||
		!strings.Contains(string(got), "Client sent an HTTP request to an HTTPS server") {
		t.Errorf("answer %q %v", got, err)
	}
	// Not HTTP (a TLS client with a broken hello): closed without a word.
	c2, err := net.Dial("tcp", d.sse)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	c2.Write([]byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x0a})
	if got, _ := io.ReadAll(c2); len(got) > 0 && strings.Contains(string(got), "HTTP") {
		t.Errorf("a non-HTTP record got %q", got)
	}
	s := d.subscribe("?subscribe=after")
	d.send("after=still serving TLS")
	if ev, err := s.next(5 * time.Second); err != nil || ev.Data != "still serving TLS" {
		t.Errorf("after: %+v %v", ev, err)
	}
}
