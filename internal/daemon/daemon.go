// Package daemon runs hasses in the background the way the C daemon did:
// detached from the terminal, logging to a file, with a pid file and an
// optional drop to an unprivileged user.
package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childEnv marks the re-executed background process; its value is the fd
// of the pipe on which the child reports readiness.
const childEnv = "HASSES_DAEMON_CHILD"

// IsChild reports whether this process is the detached daemon.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// Detach re-executes the program in a new session, with standard input
// from /dev/null and output appended to logFile. In the parent it waits
// until the child reports startup (Ready or Failed), so that an error like
// a busy port still reaches the terminal, and returns isParent true.
// Go cannot fork safely, hence the re-exec.
func Detach(logFile string) (isParent bool, err error) {
	if IsChild() {
		return false, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return false, fmt.Errorf("daemon: own executable: %w", err)
	}
	logf, err := openLogFile(logFile)
	if err != nil {
		return false, fmt.Errorf("daemon: %w", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return false, fmt.Errorf("daemon: %w", err)
	}
	defer null.Close()
	var logStart int64 // where this start's lines begin, to quote them
	if fi, err := logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	r, w, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("daemon: pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		w.Close()
		return false, fmt.Errorf("daemon: starting the background process: %w", err)
	}
	w.Close()
	cmd.Process.Release()

	msg := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 4096))
		msg <- string(b)
	}()
	select {
	case m := <-msg:
		switch {
		case m == "ok":
			return true, nil
		case m == "":
			return true, fmt.Errorf("daemon: the background process exited during startup; see %s%s", logFile, logTail(logFile, logStart))
		default:
			return true, errors.New(m)
		}
	case <-time.After(10 * time.Second):
		return true, fmt.Errorf("daemon: no word from the background process after 10 s; see %s%s", logFile, logTail(logFile, logStart))
	}
}

// logTail returns the end of what the log got from offset on, as a quote
// to add to an error, or "".
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const most = 2048
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > most {
		offset = fi.Size() - most
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, most))
	if t := strings.TrimSpace(string(b)); t != "" {
		return ":\n" + t
	}
	return ""
}

var report sync.Once

func tell(s string) {
	report.Do(func() {
		if !IsChild() {
			return
		}
		f := os.NewFile(3, "ready-pipe")
		io.WriteString(f, s)
		f.Close()
	})
}

// Ready tells the waiting parent that startup succeeded.
func Ready() { tell("ok") }

// Failed tells the waiting parent why startup failed.
func Failed(err error) { tell(err.Error()) }

// WritePidFile writes the process id atomically (temporary file, rename).
// It refuses when the file names another live hasses: two daemons would
// share one pid file, and the first to stop would remove the other's. The
// daemon writes it as the user it runs as (after -user), so that it can
// remove it at exit.
func WritePidFile(path string) error {
	if pid, ok := livePid(path); ok {
		return fmt.Errorf("pid file %s: hasses is already running with pid %d", path, pid)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hasses-pid-*")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	_, err = tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// livePid returns the pid the file names if that process runs the same
// program as this one (its command name; /proc/PID/exe may be unreadable
// across users).
func livePid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return 0, false
	}
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return 0, false
	}
	self, err1 := os.ReadFile("/proc/self/comm")
	other, err2 := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return pid, err1 == nil && err2 == nil && string(self) == string(other)
}

// RemovePidFile removes the pid file if it still names this process.
func RemovePidFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && string(b) == strconv.Itoa(os.Getpid())+"\n" {
		os.Remove(path)
	}
}

// DropPrivileges switches to the named user and its groups. Go's setuid
// applies to every thread on Linux.
func DropPrivileges(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if os.Getuid() != 0 {
		if os.Getuid() == uid {
			return nil
		}
		return fmt.Errorf("user %s: only root can switch users", name)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil && n != gid {
				groups = append(groups, n)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("user %s: setgroups: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("user %s: setgid: %w", name, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("user %s: setuid: %w", name, err)
	}
	return nil
}

// LogWriter appends to a log file and can reopen it after rotation.
type LogWriter struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	stdio bool // the file is also standard output and standard error
}

// OpenLog opens path for appending.
func OpenLog(path string) (*LogWriter, error) {
	w := &LogWriter{path: path}
	return w, w.Reopen()
}

// OpenDaemonLog opens path for appending and makes it standard output and
// standard error too (fds 1 and 2), again at every Reopen: what the runtime
// or a library writes there (a panic, a race report) lands in the current
// log, and no descriptor keeps a rotated file, and its disk space, alive.
func OpenDaemonLog(path string) (*LogWriter, error) {
	w := &LogWriter{path: path, stdio: true}
	return w, w.Reopen()
}

// openLogFile opens (or creates) the log file for appending, as root
// too: so never through a symbolic link, and only a regular file with no
// other name. Whoever may write the log's directory (the -user account)
// could otherwise make root create, append to or hand over any file.
func openLogFile(path string) (*os.File, error) {
	// O_NONBLOCK: a FIFO in its place must not hang the open (no effect on
	// a regular file).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case !fi.Mode().IsRegular():
			err = errors.New("not a regular file")
		case st != nil && st.Nlink > 1:
			err = errors.New("the file has other hard links")
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	return f, nil
}

// Chown gives the log file to the named user (with its group), when root:
// after the drop to that user, a reopen after rotation must be able to
// open the file logrotate created in its place, which takes the owner of
// the rotated one.
func (w *LogWriter) Chown(name string) error {
	if os.Getuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.f.Chown(uid, gid); err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	return nil
}

// Reopen closes the file and opens path again (SIGHUP after logrotate).
func (w *LogWriter) Reopen() error {
	f, err := openLogFile(w.path)
	if err != nil {
		return err
	}
	if w.stdio {
		sc, err := f.SyscallConn()
		if err == nil {
			cerr := sc.Control(func(fd uintptr) {
				for _, std := range []int{1, 2} {
					if err == nil {
						err = syscall.Dup3(int(fd), std, 0)
					}
				}
			})
			if err == nil {
				err = cerr
			}
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("log file: redirecting standard output and error: %w", err)
		}
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Write(p)
}

// Close closes the file.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}
