package itest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func writeFIFO(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// Issue 9: each writer's open, write and close ends its unit. It was
// "firstroom1=second", one event. The idle gap is an hour, so only the
// writer's close can end a unit; each writer starts once the previous one's
// message arrived (back-to-back writers may share a stream: see ServeFIFO).
func TestControlFIFOWriterCloseEndsUnit(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "ctl")
	d := start(t, "-cp=", "-fifo="+fifo, "-ctl-idle-gap=1h")
	s := d.subscribe("?subscribe=room1")
	waitFor(t, "the fifo", func() bool { _, err := os.Stat(fifo); return err == nil })
	// What the issue shows, through a shell.
	for _, w := range []struct{ cmd, want string }{
		{`printf 'room1=first' > `, "first"},
		{`printf 'room1=second\n' > `, "second"},
	} {
		if out, err := exec.Command("sh", "-c", w.cmd+fifo).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		s.expect(w.want)
	}
	for i := range 10 {
		writeFIFO(t, fifo, fmt.Sprintf("room1=a%d", i))
		s.expect(fmt.Sprintf("a%d", i))
		writeFIFO(t, fifo, fmt.Sprintf("room1=b%d;room1=c%d", i, i))
		s.expect(fmt.Sprintf("b%d", i), fmt.Sprintf("c%d", i))
	}
}

// A FIFO removed while the server runs is recreated; one replaced by a
// regular file is reported, since writers would fill it silently.
func TestControlFIFORemoved(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "ctl")
	d := start(t, "-cp=", "-fifo="+fifo)
	s := d.subscribe("?subscribe=f")
	waitFor(t, "the fifo", func() bool { _, err := os.Stat(fifo); return err == nil })
	writeFIFO(t, fifo, "f=one\n")
	s.expect("one")
	os.Remove(fifo)
	waitFor(t, "the fifo recreated", func() bool {
		fi, err := os.Stat(fifo)
		return err == nil && fi.Mode()&os.ModeNamedPipe != 0
	})
	writeFIFO(t, fifo, "f=two\n")
	s.expect("two")
	if !strings.Contains(d.log.String(), "FIFO was removed: recreated") {
		t.Errorf("recreation not logged")
	}
	os.Remove(fifo)
	os.WriteFile(fifo, []byte("f=lost\n"), 0o600)
	waitFor(t, "the error", func() bool {
		return strings.Contains(d.log.String(), `level=ERROR msg="control: FIFO path is no longer a FIFO`)
	})
}
