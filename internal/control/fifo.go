package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ServeFIFO opens the FIFO at path (OpenFIFO) and serves it (ServeFIFOFile).
func (h *Handler) ServeFIFO(ctx context.Context, path string) error {
	f, err := h.OpenFIFO(path)
	if err != nil {
		return err
	}
	return h.ServeFIFOFile(ctx, f)
}

// OpenFIFO creates the FIFO at path with Handler.FIFOMode if missing, and
// opens it read-write so that it never reports end of file when a writer
// closes, and writers never block in open. Opening it before the daemon
// reports readiness lets a bad path stop the start.
func (h *Handler) OpenFIFO(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode()&os.ModeNamedPipe == 0 {
			return nil, fmt.Errorf("control: %s exists and is not a FIFO", path)
		}
	} else {
		old := syscall.Umask(0)
		err := syscall.Mkfifo(path, uint32(h.fifoMode()))
		syscall.Umask(old)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("control: creating FIFO %s: %w", path, err)
		}
	}
	// Non-blocking, so the runtime poller serves it and read deadlines work.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("control: opening FIFO %s: %w", path, err)
	}
	return f, nil
}

// ServeFIFOFile reads units from f, a FIFO from OpenFIFO, until ctx is
// done, and closes it.
func (h *Handler) ServeFIFOFile(ctx context.Context, f *os.File) error {
	path := f.Name()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()

	fr := h.newFramer("fifo")
	handle := func(unit []byte) { h.Handle(nil, unit, false, "fifo") }
	buf := make([]byte, 16<<10)
	for ctx.Err() == nil {
		if fr.Pending() {
			f.SetReadDeadline(time.Now().Add(h.idleGap()))
		} else {
			f.SetReadDeadline(time.Time{})
		}
		n, err := f.Read(buf)
		if n > 0 {
			fr.Feed(buf[:n], handle)
			if fr.PendingCommand() {
				fr.Flush(handle)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			fr.Flush(handle)
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("control: reading FIFO %s: %w", path, err)
		}
	}
	return nil
}
