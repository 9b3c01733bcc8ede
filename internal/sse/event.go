// Package sse encodes Server-Sent Events: the text of the event stream
// format, and nothing of the transport that carries it (HTTP/1.1 chunks,
// HTTP/2 DATA frames or a close-delimited HTTP/1.0 body).
package sse

import (
	"bytes"
	"strconv"
)

// AppendEvent appends one event: the "id:", optional "event:" and "data:"
// fields, and the blank line that ends the event.
//
// A body with line breaks (CRLF, LF or a lone CR) becomes several "data:"
// lines, so EventSource hands the line breaks to the page as "\n". A NUL byte
// is dropped, as no field may carry it. The event name must not contain CR,
// LF or NUL; the caller validates it.
func AppendEvent(dst []byte, id []byte, event string, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, id...)
	dst = append(dst, '\n')
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	return append(dst, '\n')
}

func appendData(dst, data []byte) []byte {
	forEachLine(data, func(line []byte) {
		dst = append(dst, "data: "...)
		for len(line) > 0 {
			i := bytes.IndexByte(line, 0)
			if i < 0 {
				dst = append(dst, line...)
				break
			}
			dst = append(dst, line[:i]...)
			line = line[i+1:]
		}
		dst = append(dst, '\n')
	})
	return dst
}

// forEachLine calls fn for every line of data, split at CRLF, LF or CR.
// An empty body is one empty line, so the event still has a data field.
func forEachLine(data []byte, fn func([]byte)) {
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			fn(data)
			return
		}
		fn(data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// The stream's own bytes (heartbeat, retry hint, opening id) never end a
// block with a blank line unless the block is meant to be dispatched: a
// data-less block ending with a blank line is ignored by browsers, but
// several client libraries hand it to the application as an empty message
// (docs/clients.md). A comment or field line without a blank line is part
// of the next event's block, where every parser ignores or applies it.

// AppendComment appends an SSE comment line, without ending a block.
// Heartbeats use it: every parser ignores comments, while proxies see
// traffic.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	dst = append(dst, text...)
	return append(dst, '\n')
}

// AppendRetry appends a "retry:" field line, without ending a block: the
// reconnection delay, in milliseconds. Browsers apply it when the line
// ends; libraries that apply it with an event get it with the next one.
func AppendRetry(dst []byte, ms int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n')
}

// AppendID appends an "id:" field line, ending the block with a blank line
// if dispatch: a block with an id and no data sets EventSource's last event
// id without dispatching an event. Without dispatch the line is part of the
// next event's block, which carries its own id.
func AppendID(dst []byte, id []byte, dispatch bool) []byte {
	dst = append(dst, "id: "...)
	dst = append(dst, id...)
	dst = append(dst, '\n')
	if dispatch {
		dst = append(dst, '\n')
	}
	return dst
}
