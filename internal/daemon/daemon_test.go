package daemon

import (
	"fmt"
	"os"
	"os/exec"
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

// In a helper process (fds 1 and 2 are redirected for good there): what is
// written to standard output and error goes to the current log, and after
// a rotation and Reopen no descriptor holds the rotated file.
func TestDaemonLogTakesStdio(t *testing.T) {
	if path := os.Getenv("HASSES_TEST_STDIO_LOG"); path != "" {
		w, err := OpenDaemonLog(path)
		if err != nil {
			panic(err)
		}
		fmt.Fprintln(os.Stdout, "out one")
		fmt.Fprintln(os.Stderr, "err one")
		os.Rename(path, path+".1")
		if err := w.Reopen(); err != nil {
			panic(err)
		}
		fmt.Fprintln(os.Stdout, "out two")
		fmt.Fprintln(os.Stderr, "err two")
		w.Write([]byte("log two\n"))
		fds, _ := os.ReadDir("/proc/self/fd")
		for _, fd := range fds {
			if target, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasSuffix(target, ".1") {
				fmt.Fprintln(os.Stderr, "still open:", fd.Name(), target)
			}
		}
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "h.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDaemonLogTakesStdio$")
	cmd.Env = append(os.Environ(), "HASSES_TEST_STDIO_LOG="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "out one\nerr one\n" || string(cur) != "out two\nerr two\nlog two\n" {
		t.Errorf("rotated log %q, current log %q, helper's own output %q", old, cur, out)
	}
}
