package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// The log file is opened as root: never through a symbolic link, and only
// a regular file with no other name, so whoever may write the log's
// directory cannot make root create, append to or hand over another file.
func TestLogFileNoSymlinkNoHardLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "h.log")
	os.Symlink(target, link)
	if _, err := OpenLog(link); err == nil {
		t.Error("log opened through a symbolic link")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Error("the symbolic link's target was created")
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("x"), 0o600)
	hard := filepath.Join(dir, "hard.log")
	os.Link(other, hard)
	if _, err := OpenLog(hard); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("log with another name: %v", err)
	}
	fifo := filepath.Join(dir, "fifo.log")
	syscall.Mkfifo(fifo, 0o600)
	if _, err := OpenLog(fifo); err == nil {
		t.Error("log opened on a FIFO")
	}
}

// As root, Chown gives the log to the service user, so that a reopen after
// the drop opens the file logrotate creates with the rotated one's owner.
func TestLogChown(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	path := filepath.Join(t.TempDir(), "h.log")
	w, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Chown("nobody"); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if st := fi.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Uid)) != u.Uid {
		t.Errorf("log owned by %d, want nobody (%s)", st.Uid, u.Uid)
	}
}

// A pid file that names another live hasses refuses the start; one that
// names a dead process or another program is replaced.
func TestPidFileNamesLiveProcess(t *testing.T) {
	if os.Getenv("HASSES_TEST_SLEEP") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPidFileNamesLiveProcess$")
	cmd.Env = append(os.Environ(), "HASSES_TEST_SLEEP=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	path := filepath.Join(t.TempDir(), "h.pid")
	os.WriteFile(path, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	waitComm := time.Now().Add(5 * time.Second)
	for { // until the child has exec'd (its command name is the program's)
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); len(b) > 0 {
			self, _ := os.ReadFile("/proc/self/comm")
			if string(b) == string(self) || time.Now().After(waitComm) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := WritePidFile(path); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("pid file of a live hasses: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := WritePidFile(path); err != nil {
		t.Errorf("pid file of a dead process: %v", err)
	}
	os.WriteFile(path, []byte("1\n"), 0o644) // init, another program
	if err := WritePidFile(path); err != nil {
		t.Errorf("pid file of another program: %v", err)
	}
	RemovePidFile(path)
}
