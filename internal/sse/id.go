package sse

import (
	"strconv"
	"strings"
)

// ID identifies an event: the epoch of the server instance that assigned it
// and its sequence number there. The epoch lets a restarted server tell an
// id of its own from one handed out before the restart.
type ID struct {
	Epoch uint64 // server start time in milliseconds
	Seq   uint64 // 1, 2, 3, ... within one epoch; 0 is before the first
}

// AppendTo appends the textual form "<epoch base 36>-<seq>". It is short,
// increasing within a stream, and needs no escaping in a header or a URL.
func (id ID) AppendTo(dst []byte) []byte {
	dst = strconv.AppendUint(dst, id.Epoch, 36)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, id.Seq, 10)
}

func (id ID) String() string { return string(id.AppendTo(nil)) }

// ParseID parses the textual form written by AppendTo. Anything else,
// including a hasses-style Unix-time id, is reported as not ok. Sequence 0
// is the position before an epoch's first event: a stream opened before any
// event is sent it, so that it can resume from there.
func ParseID(s string) (id ID, ok bool) {
	epoch, seq, found := strings.Cut(s, "-")
	if !found || epoch == "" || seq == "" || len(s) > 40 {
		return ID{}, false
	}
	e, err := strconv.ParseUint(epoch, 36, 64)
	if err != nil {
		return ID{}, false
	}
	q, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return ID{}, false
	}
	// Reject non-canonical spellings (leading zeros, upper case) so that an
	// id round-trips exactly.
	if id := (ID{e, q}); id.String() == s {
		return id, true
	}
	return ID{}, false
}
