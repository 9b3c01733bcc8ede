package itest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDetached runs hasses as a daemon (no -nodaemon) with its log and pid
// file in a temporary directory, and returns the daemon's pid once the
// parent has exited 0. The daemon is stopped at the end of the test.
func startDetached(t *testing.T, dir string, args ...string) int {
	t.Helper()
	full := append([]string{"-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse",
		"-l=" + filepath.Join(dir, "h.log"), "-pidfile=" + filepath.Join(dir, "h.pid")}, args...)
	code, out := runToExit(t, full...)
	if code != 0 {
		log, _ := os.ReadFile(filepath.Join(dir, "h.log"))
		t.Fatalf("hasses exited %d: %s\nlog:\n%s", code, out, log)
	}
	b, err := os.ReadFile(filepath.Join(dir, "h.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		for end := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Errorf("daemon %d did not exit within 10 s of SIGTERM", pid)
				return
			}
		}
	})
	return pid
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || !strings.HasPrefix(string(stat[i+1:]), " Z")
}

// After logrotate's rename and SIGHUP, nothing the daemon holds refers to
// the rotated file any more: not the log writer, and not standard output
// and error (fds 1 and 2), so deleting it frees the disk.
func TestPubJWTDaemonLogRotation(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "h.log")
	pid := startDetached(t, dir)
	waitFor(t, "the started line in the log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `msg="hasses started"`)
	})
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGHUP)
	waitFor(t, "the reopened log", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "log file reopened")
	})
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var stdio []string
	for _, fd := range fds {
		target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if target == logPath+".1" {
			t.Errorf("fd %s still holds the rotated log %s", fd.Name(), target)
		}
		if fd.Name() == "1" || fd.Name() == "2" {
			stdio = append(stdio, target)
		}
	}
	if len(stdio) != 2 || stdio[0] != logPath || stdio[1] != logPath {
		t.Errorf("standard output and error are %q, want the current log %s", stdio, logPath)
	}
}

// A daemon that cannot start makes the command fail with the reason: a FIFO
// in a missing directory used to be reported only in the log, after the
// parent had exited 0.
func TestPubJWTDaemonStartFailure(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "h.log")
	regular := filepath.Join(dir, "regular")
	os.WriteFile(regular, nil, 0o600)
	for fifo, want := range map[string]string{
		filepath.Join(dir, "missing", "fifo"): "no such file or directory",
		regular:                               "exists and is not a FIFO",
	} {
		code, out := runToExit(t, "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-l="+logPath, "-fifo="+fifo)
		if code == 0 || !strings.Contains(out, fifo) || !strings.Contains(out, want) {
			t.Errorf("-fifo=%s: exit %d, output %q: want non-zero and %q", fifo, code, out, want)
		}
	}
	// A good FIFO path still works: created at start.
	fifoDir := t.TempDir()
	startDetached(t, fifoDir, "-fifo="+filepath.Join(fifoDir, "fifo"))
	waitFor(t, "the FIFO", func() bool {
		fi, err := os.Stat(filepath.Join(fifoDir, "fifo"))
		return err == nil && fi.Mode()&os.ModeNamedPipe != 0
	})
	// A port already in use fails the same way.
	dir2 := t.TempDir()
	startDetached(t, dir2)
	var m []string
	waitFor(t, "the started line in the log", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir2, "h.log"))
		m = addrRE.FindStringSubmatch(string(b))
		return m != nil
	})
	code, out := runToExit(t, "-p="+loopback(m[1]), "-cp=127.0.0.1:0", "-murl=/sse", "-l="+logPath)
	if code == 0 || !strings.Contains(out, "could not bind the SSE port") {
		t.Errorf("busy port: exit %d, output %q", code, out)
	}
	// Whatever failed, no daemon is left behind.
	if b, _ := os.ReadFile(logPath); strings.Contains(string(b), `msg="hasses started"`) {
		t.Errorf("a failed start logged a started line:\n%s", b)
	}
}
