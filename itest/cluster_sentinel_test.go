package itest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestClusterThroughSentinel joins two nodes through a Redis Sentinel
// (redis-server --sentinel, from the same Debian package) that monitors
// the test's Redis.
func TestClusterThroughSentinel(t *testing.T) {
	r := startRedis(t)
	dir := t.TempDir()
	var port int
	var cmd *exec.Cmd
	for range 20 {
		port = 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		conf := filepath.Join(dir, "sentinel.conf")
		os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor main 127.0.0.1 %d 1\n", port, dir, r.port), 0o600)
		cmd = exec.Command(r.path, conf, "--sentinel")
		log := &logBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		up := false
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !up; time.Sleep(20 * time.Millisecond) {
			c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err == nil {
				c.Close()
				up = true
			}
		}
		if up {
			break
		}
		t.Logf("sentinel did not start:\n%s", log.String())
	}
	url := fmt.Sprintf("-cluster=redis+sentinel://127.0.0.1:%d/0?master=main", port)
	a := start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	b := start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	waitFor(t, "the nodes to join through the sentinel", func() bool { return a.ready() && b.ready() })
	s := newSub(t, b, "?subscribe=room1")
	a.send("room1=via-sentinel;")
	s.waitCount(1, 5*time.Second)
	if got := s.data(); got[0] != "via-sentinel" {
		t.Fatalf("got %q", got)
	}
}
