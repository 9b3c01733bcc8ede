package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ServeFIFO reads units from the FIFO at path until ctx is done. The FIFO is
// created with Handler.FIFOMode if missing, and opened read-write so that
// it never reports end of file when a writer closes, and writers never
// block in open.
func (h *Handler) ServeFIFO(ctx context.Context, path string) error {
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode()&os.ModeNamedPipe == 0 {
			return fmt.Errorf("control: %s exists and is not a FIFO", path)
		}
	} else {
		old := syscall.Umask(0)
		err := syscall.Mkfifo(path, uint32(h.fifoMode()))
		syscall.Umask(old)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("control: creating FIFO %s: %w", path, err)
		}
	}
	// Non-blocking, so the runtime poller serves it and read deadlines work.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("control: opening FIFO %s: %w", path, err)
	}
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
