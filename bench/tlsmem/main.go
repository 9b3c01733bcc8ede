// Command tlsmem measures the memory a TLS stream costs hasses: it starts
// the server with -ssl on a self-signed certificate, opens N idle streams
// over TLS (HTTP/1.1, and HTTP/2 with -h2, where streams share connections),
// and reports the server's RSS growth per stream.
//
//	go run ./bench/tlsmem -hasses /tmp/hasses -n 2000
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	bin := flag.String("hasses", "hasses", "path of the hasses binary")
	n := flag.Int("n", 2000, "streams")
	h2 := flag.Bool("h2", false, "use HTTP/2: 100 streams per connection")
	flag.Parse()

	dir, err := os.MkdirTemp("", "tlsmem")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	certFile, keyFile := writeCert(dir)
	srv := exec.Command(*bin, "-nodaemon", "-q", "-p=127.0.0.1:18443", "-cp=127.0.0.1:18444", "-murl=/sse", "-max-conns-per-ip=0",
		"-ssl", "-cert-file="+certFile, "-privatekey-file="+keyFile, "-heartbeat=0")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Process.Kill()
	time.Sleep(500 * time.Millisecond)
	before := rss(srv.Process.Pid)

	tlsCfg := &tls.Config{InsecureSkipVerify: true} // our own throwaway certificate
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	// Everything that holds a stream open stays referenced until the
	// measurement: a connection the client's collector finds unreachable
	// is closed (net.Conn's finalizer), and the server would measure fewer
	// streams than it reports (it once held 800 of 2,000).
	var keep []any
	hold := func(v any) {
		mu.Lock()
		keep = append(keep, v)
		mu.Unlock()
	}
	if *h2 {
		tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, MaxConnsPerHost: 0}
		clients := (*n + 99) / 100
		for c := range clients {
			client := &http.Client{Transport: tr.Clone()}
			for i := range min(100, *n-c*100) {
				wg.Go(func() {
					resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:18443/sse?subscribe=t%d", i))
					hold(resp)
					hold(client)
					if err != nil || resp.StatusCode != 200 {
						mu.Lock()
						failed++
						mu.Unlock()
						return
					}
					// Keep the stream open: never read or close the body.
				})
			}
		}
	} else {
		for i := range *n {
			wg.Go(func() {
				c, err := tls.Dial("tcp", "127.0.0.1:18443", tlsCfg)
				hold(c)
				if err == nil {
					fmt.Fprintf(c, "GET /sse?subscribe=t%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
					var resp *http.Response
					if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	time.Sleep(2 * time.Second)
	after := rss(srv.Process.Pid)
	runtime.KeepAlive(keep)
	ok := *n - failed
	mode := "HTTP/1.1"
	if *h2 {
		mode = "HTTP/2 (100 streams per connection)"
	}
	perStream := float64(after-before) / float64(max(ok, 1))
	fmt.Printf("TLS %s: %d streams (%d failed), server RSS %d -> %d KiB: %.1f KiB per stream\n",
		mode, ok, failed, before, after, perStream)
	fmt.Printf("{\"scenario\": %q, \"streams\": %d, \"kib_per_stream\": %.1f}\n", "tls/"+mode, ok, perStream)
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func writeCert(dir string) (string, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsmem"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	c, k := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return c, k
}
