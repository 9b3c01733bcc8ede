package itest

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nobodyDir returns a new directory owned by nobody, reachable by nobody
// (t.TempDir's parents are root's only), removed at the end.
func nobodyDir(t *testing.T, u *user.User) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "hasses-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chmod(dir, 0o755)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Daemon mode with -user: the log is opened without following a symbolic
// link the user planted; after logrotate (create, with the rotated file's
// owner) and SIGHUP the log is reopened by the unprivileged process; a
// pid file that names the running daemon refuses a second start; and a
// clean exit removes the pid file. Reopening failed with "permission
// denied", and the pid file stayed.
func TestDaemonWithUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := nobodyDir(t, u) // pid file: a directory the user owns
	logDir, err := os.MkdirTemp("/tmp", "hasses-log-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(logDir)
	os.Chmod(logDir, 0o755) // root's, as /var/log
	logPath := filepath.Join(logDir, "h.log")
	pidPath := filepath.Join(dir, "h.pid")

	// A symbolic link planted where the log goes is not followed.
	planted := nobodyDir(t, u)
	target := filepath.Join(planted, "target")
	os.Symlink(target, filepath.Join(planted, "h.log"))
	code, out := runToExit(t, "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-user=nobody",
		"-l="+filepath.Join(planted, "h.log"), "-pidfile="+filepath.Join(planted, "h.pid"))
	if code == 0 || !strings.Contains(out, "log file") {
		t.Errorf("log path is a symbolic link: exit %d, %q", code, out)
		if b, err := os.ReadFile(filepath.Join(planted, "h.pid")); err == nil {
			if p, _ := strconv.Atoi(strings.TrimSpace(string(b))); p > 0 {
				syscall.Kill(p, syscall.SIGKILL) // it started: stop it
			}
		}
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the link's target was created: %v", err)
	}

	code, out = runToExit(t, "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-user=nobody", "-l="+logPath, "-pidfile="+pidPath)
	if code != 0 {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("hasses -user=nobody exited %d: %s\n%s", code, out, log)
	}
	b, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, "the started line", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `msg="hasses started"`)
	})

	// logrotate: rename, then create a new file with the old one's owner
	// and mode, then SIGHUP.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(logPath + ".1")
	st := fi.Sys().(*syscall.Stat_t)
	if strconv.Itoa(int(st.Uid)) != u.Uid {
		t.Errorf("log owned by uid %d, want nobody's %s", st.Uid, u.Uid)
	}
	if err := os.WriteFile(logPath, nil, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	os.Chown(logPath, int(st.Uid), int(st.Gid))
	syscall.Kill(pid, syscall.SIGHUP)
	waitFor(t, "the log reopened after rotation", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), "log file reopened")
	})

	// A second start on the same pid file is refused while the first runs.
	code, out = runToExit(t, "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-user=nobody", "-l="+logPath, "-pidfile="+pidPath)
	if code == 0 || !strings.Contains(out, "already running") {
		t.Errorf("second start on a live pid file: exit %d, %q", code, out)
	}
	if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Errorf("pid file now %q, want %d", b, pid)
	}

	syscall.Kill(pid, syscall.SIGTERM)
	for end := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("daemon did not exit within 10 s of SIGTERM")
		}
	}
	if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
		t.Errorf("pid file left after a clean exit: %v", err)
	}
}
