package itest

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Control connections are capped (-ctl-max-conns) and closed when silent
// for -ctl-idle-timeout, authenticated or not; they used to be neither.
func TestControlConnectionCapAndIdleTimeout(t *testing.T) {
	d := start(t, "-ctl-max-conns=3", "-ctl-idle-timeout=1s")
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", d.ctl)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "tcpnumberofclients\n")
		if got := readQuiet(c, 3*time.Second); !strings.Contains(got, "numberofclients") {
			t.Fatalf("reply %q", got)
		}
		conns = append(conns, c)
	}
	c, err := net.Dial("tcp", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.Contains(line, "too many control connections") {
		t.Fatalf("4th connection: %q", line)
	}
	for i, c := range conns { // silent for a second: closed
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("idle connection %d: %v, want end of file", i, err)
		}
	}
	if got := d.send("a=1\ntcpnumberofclients"); !strings.Contains(got, "numberofclients") {
		t.Errorf("after the idle ones closed: %q", got)
	}
}

// An existing -fifo that another user could write (mode wider than
// -fifo-mode) refuses the start.
func TestFIFOWiderThanModeRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ctl")
	old := syscall.Umask(0)
	err := syscall.Mkfifo(fifo, 0o666)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	code, out := runToExit(t, "-nodaemon", "-p=127.0.0.1:0", "-murl=/sse", "-fifo="+fifo)
	if code == 0 || !strings.Contains(out, "wider than -fifo-mode") {
		t.Errorf("FIFO 0666: exit %d, %q", code, out)
	}
	os.Chmod(fifo, 0o660)
	d := start(t, "-fifo="+fifo)
	s := d.subscribe("?subscribe=a")
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "a=ok\n")
	f.Close()
	s.expect("ok")
}
