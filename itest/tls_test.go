package itest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writeCert makes a self-signed certificate for 127.0.0.1 in dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "hasses test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	pool = x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSWithHTTP2(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	d := start(t, "-ssl", "-cert-file="+certFile, "-privatekey-file="+keyFile)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	base := "https://" + d.sse + "/sse"

	// Error answers are delivered under TLS (hasses lost them all).
	for path, want := range map[string]int{"/nope?subscribe=a": 404, "/sse": 400, "/sse?id=x": 400} {
		resp, err := client.Get("https://" + d.sse + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("OPTIONS", base, nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("OPTIONS over TLS: %v %v", resp, err)
	}

	// Two streams share one HTTP/2 connection.
	var newConns atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	trace := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if !i.Reused {
			newConns.Add(1)
		}
	}})
	open := func(q string) *bufio.Reader {
		req, _ := http.NewRequestWithContext(trace, "GET", base+q, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s %v", resp.StatusCode, resp.Proto, resp.Header)
		}
		return bufio.NewReader(resp.Body)
	}
	a := open("?subscribe=a")
	b := open("?subscribe=b")
	if n := newConns.Load(); n > 1 {
		t.Errorf("%d TCP connections for two streams, want 1 (HTTP/2)", n)
	}
	waitFor(t, "both streams subscribed", func() bool {
		return strings.Contains(d.command("tcpsubscribedclients:b"), `"subscribedclients": 1,`)
	})
	d.send("a=for a;b=for b\nsecond line")
	if got := readData(t, a); got != "for a" {
		t.Errorf("stream a got %q", got)
	}
	if got := readData(t, b); got != "for b\nsecond line" {
		t.Errorf("stream b got %q", got)
	}
	if st := d.command("tcpstatus"); !strings.Contains(st, `"mode": "SSL encrypted (https)"`) {
		t.Errorf("tcpstatus %s", st)
	}
}

// readData reads one event's data from an SSE body.
func readData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var data []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" && len(data) > 0 {
			return strings.Join(data, "\n")
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, v)
		}
	}
}

func TestTLSCertificateReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir)
	d := start(t, "-ssl", "-cert-file="+certFile, "-privatekey-file="+keyFile)
	serial := func() string {
		c, err := tls.Dial("tcp", d.sse, &tls.Config{InsecureSkipVerify: true}) // only reading the certificate
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	time.Sleep(2 * time.Millisecond) // writeCert's serial is the time in nanoseconds
	writeCert(t, dir)                // new key pair in the same files
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the new certificate", func() bool { return serial() != first })
	// A broken file keeps the old certificate.
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	second := serial()
	d.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	if serial() != second {
		t.Error("a broken certificate file replaced the working one")
	}
	if !strings.Contains(d.log.String(), "keeping the old one") {
		t.Error("no log line for the failed reload")
	}
}

// The caps count under TLS too: an HTTP/2 connection counts as its first
// stream and each further stream counts on its own (429, issue 16 item 2),
// and a connection over the per-address cap is closed before its handshake
// (no answer is possible before TLS).
func TestTLSConnectionCaps(t *testing.T) {
	d := startTLS(t, "-max-conns-per-ip=2", "-trusted-proxies=none")
	d.subscribe("?subscribe=t")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testCert.pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i, want := range []int{200, 429} {
		resp, err := client.Get("https://" + d.sse + "/sse?subscribe=h2")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != want || resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/2 stream %d on the second connection: %d %s, want %d", i, resp.StatusCode, resp.Proto, want)
		}
	}
	c, err := net.Dial("tcp", d.sse)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, d.tls)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a third connection from the address completed its handshake")
	}
	if st := d.command("tcpstatus"); !strings.Contains(st, `"allconncli": 2,`) || !strings.Contains(st, `"sseconncli": 2,`) {
		t.Errorf("tcpstatus %s", st)
	}
}
