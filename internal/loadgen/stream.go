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
	replay  string // the X-Hasses-Replay header of the answer, if any
	lastID  []byte // the id of the last event dispatched (sent with a reconnection)
	id      []byte // the id of the event being read
	name    []byte // the event field of the event being read
	data    []byte // the data of the event being read (one line: the load tool's payloads have no line break)
	hasData bool
}

// event is one dispatched event: its name (empty for the default) and data.
type event struct {
	name, data []byte
}

// payload is what a received event carries: "<seq> <send-unix-nanos>
// <token index> ...".
type payload struct {
	seq    uint64
	sentNs int64
	tok    int
}

// feed consumes bytes and calls onEvent for every event with data, when it
// is complete (its blank line read): a stream cut in the middle of an event
// neither counts it nor claims its id, so the replay after a reconnection
// sends it again and it is not a duplicate.
func (p *streamParser) feed(b []byte, onEvent func(ev event)) {
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
		p.line(bytes.TrimSuffix(line, []byte("\r")), onEvent)
		p.partial = p.partial[:0]
		b = b[i+1:]
	}
}

func (p *streamParser) line(line []byte, onEvent func(event)) {
	if p.inHead {
		switch {
		case p.status == 0 && bytes.HasPrefix(line, []byte("HTTP/1.1 ")) && len(line) >= 12:
			p.status, _ = strconv.Atoi(string(line[9:12]))
		case hasPrefixFold(line, "X-Hasses-Replay:"):
			p.replay = string(bytes.TrimSpace(line[len("X-Hasses-Replay:"):]))
		case len(line) == 0:
			p.inHead = false
		}
		return
	}
	switch {
	case bytes.HasPrefix(line, []byte("data: ")):
		p.data = append(p.data[:0], line[len("data: "):]...)
		p.hasData = true
	case bytes.HasPrefix(line, []byte("id: ")):
		p.id = append(p.id[:0], line[len("id: "):]...)
	case bytes.HasPrefix(line, []byte("event: ")):
		p.name = append(p.name[:0], line[len("event: "):]...)
	case len(line) == 0:
		// The event is complete: only now is its id the last one, as in
		// EventSource. A reconnection in the middle of an event must
		// not claim it.
		if len(p.id) > 0 {
			p.lastID = append(p.lastID[:0], p.id...)
		}
		if p.hasData {
			onEvent(event{name: p.name, data: p.data})
		}
		p.id, p.name, p.data, p.hasData = p.id[:0], p.name[:0], p.data[:0], false
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// parsePayload reads the sequence number, send time and token index of a
// data line.
func parsePayload(b []byte) (payload, bool) {
	var f [3][]byte
	for i := range f {
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			sp = len(b)
		}
		f[i], b = b[:sp], b[min(sp+1, len(b)):]
	}
	seq, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return payload{}, false
	}
	ns, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return payload{}, false
	}
	tok, err := strconv.Atoi(string(f[2]))
	if err != nil || tok < 0 {
		return payload{}, false
	}
	return payload{seq: seq, sentNs: ns, tok: tok}, true
}

// appendPayload writes a message body of at least size bytes.
func appendPayload(dst []byte, seq uint64, sentNs int64, tok, size int) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(tok), 10)
	if pad := size - (len(dst) - start) - 1; pad > 0 {
		dst = append(dst, ' ')
		for range pad {
			dst = append(dst, 'x')
		}
	}
	return dst
}
