package server

import (
	"log/slog"

	"github.com/hasses-go/hasses/internal/access"
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

// httpMaxConns is the connection cap of each auxiliary HTTP listener:
// access.HTTPMaxConns, or an eighth of a small file limit, so that the
// reserve does not eat the SSE port's share.
func httpMaxConns(fileLimit uint64) int {
	if fileLimit == 0 || fileLimit/8 >= access.HTTPMaxConns {
		return access.HTTPMaxConns
	}
	return max(int(fileLimit/8), 8)
}
