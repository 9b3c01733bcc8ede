package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// fifoCheck is how often the FIFO's path is checked: removed, replaced by
// another FIFO, or by something else.
const fifoCheck = time.Second

// ServeFIFO reads units from the FIFO at path until ctx is done. The FIFO is
// created with Handler.FIFOMode if missing.
//
// Each writer's open, write and close ends its unit, as end of file ends
// one on the TCP port. So the FIFO is opened read-only, with no spare
// writer of ours: a read returns end of file when the last writer closes,
// and the framer flushes then. That end of file repeats on every read until
// a writer opens, so after one the goroutine does not read again: it sleeps
// in the runtime poller until the FIFO reports readable (a writer wrote,
// or closed), which costs nothing while no one writes. Writers never block
// in open, since this reader is always there.
//
// A FIFO keeps no boundary between writers: two writers whose
// open-write-close overlap, or follow each other before hasses has read
// the first one's end, share one stream; end each message with a newline
// or the separator to be safe.
//
// The path is checked every second: a removed FIFO is recreated (and
// logged); if something else, such as a regular file, took its place, an
// error is logged, since writers then fill that file and nothing reads it.
func (h *Handler) ServeFIFO(ctx context.Context, path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode()&os.ModeNamedPipe == 0 {
			return fmt.Errorf("control: %s exists and is not a FIFO", path)
		}
	} else if err := h.makeFIFO(path); err != nil {
		return err
	}
	fr := h.newFramer()
	handle := func(u Unit) { h.handleUnit(nil, u, false, "fifo") }
	var problem string // what is wrong with the path, logged once
	for ctx.Err() == nil {
		f, err := h.OpenFIFO(path)
		if err != nil {
			return err
		}
		reopen, err := h.readFIFO(ctx, f, path, fr, handle, &problem)
		f.Close()
		if err != nil || !reopen {
			return err
		}
	}
	return nil
}

// OpenFIFO opens the FIFO at path for reading, without blocking, and
// checks the FIFO it opened (not the path, which may change in between):
// it must be owned by this process's user and give no permission that
// -fifo-mode does not. Another local user could otherwise pre-create it,
// open to all, in a shared directory and publish to any token.
func (h *Handler) OpenFIFO(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("control: opening FIFO %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = h.fifoAcceptable(fi)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("control: FIFO %s: %w", path, err)
	}
	return f, nil
}

// fifoAcceptable says why fi is not a FIFO this process may serve.
func (h *Handler) fifoAcceptable(fi os.FileInfo) error {
	if fi.Mode()&os.ModeNamedPipe == 0 {
		return errors.New("not a FIFO")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by this server's (%d): remove it, hasses creates its own", st.Uid, os.Geteuid())
	}
	if extra := fi.Mode().Perm() &^ h.fifoMode(); extra != 0 {
		return fmt.Errorf("mode %04o is wider than -fifo-mode %04o: remove it or narrow its mode", fi.Mode().Perm(), h.fifoMode())
	}
	return nil
}

func (h *Handler) makeFIFO(path string) error {
	old := syscall.Umask(0)
	err := syscall.Mkfifo(path, uint32(h.fifoMode()))
	syscall.Umask(old)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("control: creating FIFO %s: %w", path, err)
	}
	return nil
}

// readFIFO serves one open FIFO. It returns reopen when the path now names
// another FIFO (a new one, or one recreated here).
func (h *Handler) readFIFO(ctx context.Context, f *os.File, path string, fr *Framer, handle func(Unit), problem *string) (bool, error) {
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("control: FIFO %s: %w", path, err)
	}
	gap := h.idleGap()
	var lastRead time.Time
	nextCheck := time.Now().Add(fifoCheck)
	// readOnce reads without blocking; it reports whether to wait for the
	// poller (nothing to read, or end of file).
	readOnce := func(fd int) (wait bool) {
		bp := readBufs.Get().(*[]byte)
		defer readBufs.Put(bp)
		n, err := syscall.Read(fd, *bp)
		for err == syscall.EINTR {
			n, err = syscall.Read(fd, *bp)
		}
		switch {
		case err == syscall.EAGAIN:
			return true
		case err != nil || n == 0:
			fr.Flush(handle) // the last writer closed: its unit ends
			return true
		}
		lastRead = time.Now()
		fr.Feed((*bp)[:n], handle)
		if fr.PendingCommand() {
			fr.Flush(handle)
		}
		return false
	}
	for ctx.Err() == nil {
		deadline := nextCheck
		if fr.Pending() && lastRead.Add(gap).Before(deadline) {
			deadline = lastRead.Add(gap)
		}
		f.SetReadDeadline(deadline)
		err := rc.Read(func(fd uintptr) bool { return !readOnce(int(fd)) })
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return false, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return false, fmt.Errorf("control: reading FIFO %s: %w", path, err)
		}
		now := time.Now()
		if fr.Pending() && !now.Before(lastRead.Add(gap)) {
			// Bytes that came while this goroutine waited to run continue
			// the fragment: read them before deciding.
			wait := true
			rc.Control(func(fd uintptr) { wait = readOnce(int(fd)) })
			if wait {
				fr.Flush(handle) // the idle gap ended a fragment
			}
		}
		if now.Before(nextCheck) {
			continue
		}
		nextCheck = now.Add(fifoCheck)
		if h.checkFIFO(f, path, problem) {
			// Take what is still in the old one, then switch.
			rc.Control(func(fd uintptr) {
				for !readOnce(int(fd)) {
				}
			})
			fr.Flush(handle)
			return true, nil
		}
	}
	return false, nil
}

// checkFIFO looks at path: it recreates a removed FIFO, and reports whether
// path now names another FIFO than f.
func (h *Handler) checkFIFO(f *os.File, path string, problem *string) bool {
	report := func(p string, args ...any) {
		if p != *problem {
			*problem = p
			h.Logger.Error("control: "+p, append([]any{"path", path}, args...)...)
		}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := h.makeFIFO(path); err != nil {
			report("FIFO removed, and recreating it failed", "err", err)
			return false
		}
		*problem = ""
		h.Logger.Warn("control: FIFO was removed: recreated", "path", path)
		return true
	}
	if err != nil {
		report("FIFO path unreadable", "err", err)
		return false
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		report("FIFO path is no longer a FIFO: writers fill it and nothing reads it", "mode", fi.Mode().String())
		return false
	}
	cur, err := f.Stat()
	if err != nil || !os.SameFile(fi, cur) {
		if err := h.fifoAcceptable(fi); err != nil {
			report("FIFO replaced by one hasses refuses: still reading the old one, which writers no longer reach", "err", err)
			return false
		}
		*problem = ""
		h.Logger.Info("control: FIFO replaced by another FIFO: reading the new one", "path", path)
		return true
	}
	*problem = ""
	return false
}
