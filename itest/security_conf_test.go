package itest

import (
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The safe production configuration of docs/security.md is a valid config
// file: this test starts hasses with that very block, its files moved to a
// test directory and its addresses to loopback, and checks what it
// promises (TLS, subscribers need a token, publishers the secret, nobody's
// forwarding headers trusted).
func TestSecurityDocSafeConfig(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "## Safe production configuration")
	_, block, ok := strings.Cut(rest, "```conf\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok || !strings.Contains(block, "-ctl-secret-file=/etc/hasses/secret") {
		t.Fatalf("no config block in the section:\n%s", rest)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	cert, key, pool := writeCert(t, dir)
	jwtKey, _ := esKey(t)
	secret := "a-secret-of-32-bytes-0123456789a"
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repl := map[string]string{
		"/etc/hasses/cert.pem": cert, "/etc/hasses/key.pem": key, "/etc/hasses/jwt-public.pem": jwtKey,
		"/etc/hasses/secret": filepath.Join(dir, "secret"),
		"10.0.0.5:8086":      "127.0.0.1:0", "127.0.0.1:8085": "127.0.0.1:0", "127.0.0.1:8087": "127.0.0.1:0",
	}
	var lines []string
	for _, line := range strings.Split(block, "\n") {
		for from, to := range repl {
			line = strings.ReplaceAll(line, from, to)
		}
		// Binding 443 and dropping to user hasses need root and that user:
		// the harness picks the port, and -user is checked apart.
		if strings.HasPrefix(line, "-p=") || (strings.HasPrefix(line, "-user=") && !userExists("hasses")) {
			continue
		}
		lines = append(lines, line)
	}
	if left := regexp.MustCompile(`/etc/|10\.0\.0\.5`).FindString(strings.Join(lines, "\n")); left != "" {
		t.Fatalf("the test does not move %q", left)
	}
	conf := filepath.Join(dir, "hasses.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	d := start(t, "-config="+conf)
	d.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}
	// The publisher access line comes just after "hasses started", which
	// start waits for.
	for _, want := range []string{"subscribers must present a signed token", "publisher access: publishers must be allow-listed and present the secret", "trusted proxies: none"} {
		waitFor(t, strconv.Quote(want)+" in the log", func() bool { return strings.Contains(d.log.String(), want) })
	}
	if s := d.subscribe("?subscribe=t", "Origin: https://app.example.com"); s.Status != 401 {
		t.Errorf("a stream without a token: %d, want 401", s.Status)
	}
	for auth, want := range map[string]int{"": 401, "Bearer " + secret: 200} {
		req, _ := http.NewRequest("POST", "http://"+d.pub+"/publish", strings.NewReader(`{"token":"t","data":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("publish with %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	if code, _, _ := adminGet(t, d, "/metrics", "Authorization", "Bearer "+secret); code != 200 {
		t.Errorf("/metrics with the secret: %d", code)
	}
}

func userExists(name string) bool {
	return exec.Command("id", name).Run() == nil
}
