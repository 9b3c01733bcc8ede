// Package chunked frames bytes as the chunks of an HTTP/1.1 chunked body
// (RFC 9112 7.1), for the writers that produce HTTP/1.1 themselves.
package chunked

import "strconv"

// MaxHeader is the longest chunk header: 16 hex digits and CRLF.
const MaxHeader = 18

// Trailer follows every chunk's payload.
const Trailer = "\r\n"

// Last ends a chunked body: the stream closes cleanly, never mid-event.
const Last = "0\r\n\r\n"

// HeaderLen is the length of the header of a chunk of n bytes.
func HeaderLen(n int) int {
	l := 3 // one digit and CRLF
	for n >>= 4; n > 0; n >>= 4 {
		l++
	}
	return l
}

// PutHeader writes the header of a chunk of n bytes into dst, which must be
// HeaderLen(n) bytes long. It lets an encoder reserve MaxHeader bytes, write
// the payload after them, and frame it in place without a copy.
func PutHeader(dst []byte, n int) {
	i := len(dst) - 2
	dst[i], dst[i+1] = '\r', '\n'
	for {
		i--
		dst[i] = "0123456789abcdef"[n&15]
		n >>= 4
		if n == 0 {
			return
		}
	}
}

// Append appends p as one chunk. An empty p appends nothing: a zero-length
// chunk would end the body.
func Append(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, Trailer...)
}
