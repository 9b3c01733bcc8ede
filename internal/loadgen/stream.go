// Package loadgen is the engine of hasses-load: subscribers on one epoll
// loop per worker process (no goroutine per connection, so the tool stays
// cheaper than the server it measures), a paced publisher, and accounting of
// lost, duplicated and reordered events and of publish-to-receive latency.
package loadgen

import (
	"bytes"
	"strconv"
)

// streamParser reads an SSE stream line by line. It ignores the chunk size
// lines: every event is one chunk and a data line never contains a line
// break, so the lines of interest come out whole however TCP splits them.
type streamParser struct {
	partial []byte
	inHead  bool // still reading the response head
	status  int
	lastID  []byte // the id of the last event dispatched (sent with a reconnection)
	id      []byte // the id of the event being read
}

// payload is what a received event carries: "<seq> <send-unix-nanos> ...".
type payload struct {
	seq    uint64
	sentNs int64
}

// feed consumes bytes and calls onData for every data line.
func (p *streamParser) feed(b []byte, onData func(line []byte)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.partial = append(p.partial, b...)
			return
		}
		line := b[:i]
		if len(p.partial) > 0 {
			p.partial = append(p.partial, line...)
			line = p.partial
		}
		p.line(bytes.TrimSuffix(line, []byte("\r")), onData)
		p.partial = p.partial[:0]
		b = b[i+1:]
	}
}

func (p *streamParser) line(line []byte, onData func([]byte)) {
	if p.inHead {
		if p.status == 0 && bytes.HasPrefix(line, []byte("HTTP/1.1 ")) && len(line) >= 12 {
			p.status, _ = strconv.Atoi(string(line[9:12]))
		}
		if len(line) == 0 {
			p.inHead = false
		}
		return
	}
	switch {
	case bytes.HasPrefix(line, []byte("data: ")):
		onData(line[len("data: "):])
	case bytes.HasPrefix(line, []byte("id: ")):
		p.id = append(p.id[:0], line[len("id: "):]...)
	case len(line) == 0 && len(p.id) > 0:
		// The event is complete: only now is its id the last one, as in
		// EventSource. A reconnection in the middle of an event must
		// not claim it.
		p.lastID = append(p.lastID[:0], p.id...)
		p.id = p.id[:0]
	}
}

// parsePayload reads the sequence number and send time of a data line.
func parsePayload(b []byte) (payload, bool) {
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return payload{}, false
	}
	seq, err := strconv.ParseUint(string(b[:sp]), 10, 64)
	if err != nil {
		return payload{}, false
	}
	rest := b[sp+1:]
	if sp2 := bytes.IndexByte(rest, ' '); sp2 >= 0 {
		rest = rest[:sp2]
	}
	ns, err := strconv.ParseInt(string(rest), 10, 64)
	if err != nil {
		return payload{}, false
	}
	return payload{seq: seq, sentNs: ns}, true
}

// appendPayload writes a message body of at least size bytes.
func appendPayload(dst []byte, seq uint64, sentNs int64, size int) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, sentNs, 10)
	if pad := size - (len(dst) - start) - 1; pad > 0 {
		dst = append(dst, ' ')
		for range pad {
			dst = append(dst, 'x')
		}
	}
	return dst
}
