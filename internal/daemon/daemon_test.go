package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.pid")
	if err := WritePidFile(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("pid file %q", b)
	}
	RemovePidFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("pid file not removed")
	}
	// Another process's pid file is left alone.
	os.WriteFile(path, []byte("1\n"), 0o644)
	RemovePidFile(path)
	if _, err := os.Stat(path); err != nil {
		t.Fatal("removed a pid file naming another process")
	}
	if err := WritePidFile("/does/not/exist/h.pid"); err == nil {
		t.Error("pid file in a missing directory: no error")
	}
}

func TestLogReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.log")
	w, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("one\n"))
	os.Rename(path, path+".1")
	w.Write([]byte("two\n")) // still the rotated file
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("three\n"))
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "one\ntwo\n" || string(cur) != "three\n" {
		t.Errorf("rotated %q, current %q", old, cur)
	}
}

func TestDropPrivilegesErrors(t *testing.T) {
	if err := DropPrivileges("no-such-user-hasses"); err == nil || !strings.Contains(err.Error(), "no-such-user") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestNotChild(t *testing.T) {
	if IsChild() {
		t.Skip("running detached")
	}
	Ready() // no-op outside a detached child; must not touch fd 3
}
