package server

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// connHeadroom is how many descriptors stay free for the control and admin
// ports, the FIFO, the log and the pid file when the SSE port is full.
const connHeadroom = 64

// raiseFileLimit lifts the soft limit on open files to the hard one and
// returns it. Every stream is a descriptor, so this is the real cap on
// streams per process.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open file limit", "err", err)
		return 0
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			lim.Cur = old
		}
	}
	return lim.Cur
}

// defaultMaxConns keeps the SSE port under the file limit, so that a full
// SSE port never locks out the control channel; reserved more descriptors
// stay free besides the headroom (the caps of the admin and publish-API
// listeners).
func defaultMaxConns(fileLimit uint64, reserved int) int {
	if fileLimit == 0 || fileLimit > 1<<30 {
		return 0
	}
	return max(int(fileLimit)-connHeadroom-reserved, 1)
}
