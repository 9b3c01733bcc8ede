package itest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Issue 9: before "auth", a control connection holds little, and only 64
// may wait at once: more are turned away with a short error line (2,000 of
// them held 320 MB).
func TestControlUnauthenticatedCap(t *testing.T) {
	d := start(t, "-ctl-secret=test-secret-0123456789")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 64 {
		c, err := net.Dial("tcp", d.ctl)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c) // silent: only the 10 s deadline ends them
	}
	// The 65th is turned away at once (the earlier ones are being counted
	// by the server as they are accepted: give it a moment).
	var line string
	waitFor(t, "a refusal", func() bool {
		c, err := net.Dial("tcp", d.ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		line, _ = bufio.NewReader(c).ReadString('\n')
		return line != ""
	})
	if !strings.Contains(line, "too many connections waiting to authenticate") {
		t.Fatalf("65th connection: %q", line)
	}
	// One that authenticates frees its place.
	io.WriteString(conns[0], "auth test-secret-0123456789\ntcpnumberofclients\n")
	if got := readQuiet(conns[0], 3*time.Second); !strings.HasPrefix(got, `{"auth": "ok"}`) {
		t.Fatalf("auth reply %q", got)
	}
	if got := d.send("auth test-secret-0123456789\ntcpnumberofclients"); !strings.HasPrefix(got, `{"auth": "ok"}`) {
		t.Errorf("after one authenticated: %q", got)
	}
	// Something else than auth first: refused.
	if got := d.send("a=b\n"); !strings.Contains(got, "authentication required") {
		t.Errorf("no auth: %q", got)
	}
}
