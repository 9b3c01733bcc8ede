// Package sse encodes Server-Sent Events as the chunks of an HTTP/1.1
// chunked response body.
//
// Every event is encoded once, chunk framing included, so that the same bytes
// can be written unchanged to every stream that receives it.
package sse

import (
	"bytes"
	"strconv"
)

// AppendEvent appends one event as a single HTTP chunk: the hex size line,
// the "id:", optional "event:" and "data:" fields, the blank line that ends
// the event, and the CRLF that ends the chunk.
//
// A body with line breaks (CRLF, LF or a lone CR) becomes several "data:"
// lines, so EventSource hands the line breaks to the page as "\n". A NUL byte
// is dropped, as no field may carry it. The event name must not contain CR,
// LF or NUL; the caller validates it.
func AppendEvent(dst []byte, id []byte, event string, data []byte) []byte {
	n := payloadLen(id, event, data)
	dst = strconv.AppendUint(dst, uint64(n), 16)
	dst = append(dst, '\r', '\n')
	start := len(dst)
	dst = append(dst, "id: "...)
	dst = append(dst, id...)
	dst = append(dst, '\n')
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, event...)
		dst = append(dst, '\n')
	}
	dst = appendData(dst, data)
	dst = append(dst, '\n')
	if len(dst)-start != n {
		panic("sse: payload length mismatch") // a bug in payloadLen, never input-dependent
	}
	return append(dst, '\r', '\n')
}

func payloadLen(id []byte, event string, data []byte) int {
	n := len("id: \n") + len(id) + 1 // +1: the blank line
	if event != "" {
		n += len("event: \n") + len(event)
	}
	forEachLine(data, func(line []byte) { n += len("data: \n") + len(line) - bytes.Count(line, nul) })
	return n
}

var nul = []byte{0}

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

// AppendComment appends an SSE comment line as one chunk. Heartbeats use it:
// EventSource ignores comments, while proxies see traffic.
func AppendComment(dst []byte, text string) []byte {
	n := len(": \n\n") + len(text)
	dst = strconv.AppendUint(dst, uint64(n), 16)
	dst = append(dst, "\r\n: "...)
	dst = append(dst, text...)
	return append(dst, "\n\n\r\n"...)
}

// AppendRetry appends a "retry:" field as one chunk: the reconnection delay
// EventSource should use, in milliseconds.
func AppendRetry(dst []byte, ms int64) []byte {
	var num [20]byte
	digits := strconv.AppendInt(num[:0], ms, 10)
	n := len("retry: \n\n") + len(digits)
	dst = strconv.AppendUint(dst, uint64(n), 16)
	dst = append(dst, "\r\nretry: "...)
	dst = append(dst, digits...)
	return append(dst, "\n\n\r\n"...)
}

// LastChunk ends a chunked body: the stream closes cleanly, never mid-event.
const LastChunk = "0\r\n\r\n"
