package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// The Redis client (rueidis) trusts the lengths in Redis's replies: it
// allocates what a length says before reading, so "$-5" or
// "$9223372036854775807" panics in its reader goroutine, which kills the
// process, and "*1000000000" runs it out of memory. Upgrading does not help
// (v1.0.80 is the same). So every connection to Redis reads through a
// respGuard, which follows the RESP structure of what it passes on and
// fails the connection, before the client sees the bad header, when a
// length is out of range: a bad reply costs one connection, not the node.
//
// The guard mirrors how the client parses (resp.go in rueidis): each value
// is a type byte and a line up to '\n'; blob types are followed by a body
// of their length plus CRLF; aggregates are followed by their elements.
// It never accepts what would make the two disagree on where a value ends.
const (
	// guardMaxBulk is Redis's own proto-max-bulk-len default: Redis sends
	// no longer string unless configured to.
	guardMaxBulk = 512 << 20
	// guardMaxPending bounds the elements announced by aggregate headers
	// and not yet read: the client allocates them all up front (about 50
	// bytes each). hasses reads at most a few thousand per reply.
	guardMaxPending = 1 << 20
	// guardMaxLine bounds a simple string or error line, which the client
	// reads whole into memory.
	guardMaxLine = 1 << 20
	// guardMaxLenLine bounds a length line: a sign, 19 digits and CRLF.
	guardMaxLenLine = 22
)

// The kinds of RESP types, as the client reads them.
const (
	kindNone  = iota // unknown type byte: refused
	kindLine         // a line up to '\n': + - : , (
	kindExact        // a fixed line: # (one byte and CRLF), _ (CRLF)
	kindBlob         // a length line and a body: $ ! =
	kindArray        // a count line and as many elements: * ~ >
	kindMap          // a count line and twice as many elements: % |
)

var respKinds = [256]uint8{
	'+': kindLine, '-': kindLine, ':': kindLine, ',': kindLine, '(': kindLine,
	'#': kindExact, '_': kindExact,
	'$': kindBlob, '!': kindBlob, '=': kindBlob,
	'*': kindArray, '~': kindArray, '>': kindArray,
	'%': kindMap, '|': kindMap,
}

// errBadReply fails a connection whose reply the client cannot read safely.
var errBadReply = errors.New("cluster: malformed reply from Redis")

// guardDial is the client's DialCtxFn: it dials as the client would (TLS
// when configured) and guards the connection.
func guardDial(ctx context.Context, addr string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return &respGuard{Conn: c}, nil
}

// respGuard checks the RESP it reads; see above. Only the client's single
// reader goroutine calls Read.
type respGuard struct {
	net.Conn

	state   uint8 // guardType, guardLine, guardBody
	typ     byte  // of the value being read
	line    int   // bytes of the current line so far
	lenLine [guardMaxLenLine]byte
	body    int64 // bytes of a blob body and its CRLF still to come
	pending int64 // elements announced and not started
	err     error
}

const (
	guardType = iota
	guardLine
	guardBody
)

func (g *respGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if n > 0 {
		if bad := g.check(p[:n]); bad != nil {
			g.err = fmt.Errorf("%w: %v", errBadReply, bad)
			g.Conn.Close()
			return 0, g.err
		}
	}
	return n, err
}

// check follows b, the next bytes of the reply stream.
func (g *respGuard) check(b []byte) error {
	for len(b) > 0 {
		switch g.state {
		case guardBody:
			if int64(len(b)) < g.body {
				g.body -= int64(len(b))
				return nil
			}
			b = b[g.body:]
			g.body = 0
			g.state = guardType
		case guardType:
			g.typ = b[0]
			b = b[1:]
			if respKinds[g.typ] == kindNone {
				return fmt.Errorf("unknown type byte %q", g.typ)
			}
			if g.typ != '|' && g.pending > 0 { // an attribute precedes its value
				g.pending--
			}
			g.state, g.line = guardLine, 0
		case guardLine:
			i := bytes.IndexByte(b, '\n')
			chunk := b
			if i >= 0 {
				chunk = b[:i+1]
			}
			b = b[len(chunk):]
			switch respKinds[g.typ] {
			case kindLine:
				if g.line += len(chunk); g.line > guardMaxLine {
					return errors.New("line too long")
				}
			default:
				if g.line+len(chunk) > len(g.lenLine) {
					return fmt.Errorf("%q line too long", g.typ)
				}
				g.line += copy(g.lenLine[g.line:], chunk)
			}
			if i < 0 {
				return nil
			}
			var line []byte // a simple line is not kept
			if respKinds[g.typ] != kindLine {
				line = g.lenLine[:g.line]
			}
			if err := g.endLine(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// endLine checks a complete line (with its '\n'; for lines of kindLine
// only the length is kept) and sets what follows.
func (g *respGuard) endLine(line []byte) error {
	g.state = guardType
	switch k := respKinds[g.typ]; k {
	case kindLine:
		return nil
	case kindExact:
		// The client reads one byte and skips two for '#', skips two for
		// '_', without looking for the '\n': anything else would put it
		// somewhere this guard is not.
		want := "\r\n"
		if g.typ == '#' {
			if len(line) != 3 || line[0] != 't' && line[0] != 'f' {
				return fmt.Errorf("bad boolean %q", line)
			}
			line = line[1:]
		}
		if string(line) != want {
			return fmt.Errorf("bad %q line %q", g.typ, line)
		}
		return nil
	default:
		n, ok := parseLen(line)
		if !ok {
			return fmt.Errorf("bad %q length %q", g.typ, line)
		}
		if n == -1 && (k == kindBlob || g.typ == '*') { // RESP2 null
			return nil
		}
		switch k {
		case kindBlob:
			if n < 0 || n > guardMaxBulk {
				return fmt.Errorf("%q length %d out of range", g.typ, n)
			}
			g.body, g.state = n+2, guardBody
		case kindArray, kindMap:
			if k == kindMap && n <= guardMaxPending {
				n *= 2
			}
			if n < 0 || n > guardMaxPending-g.pending {
				return fmt.Errorf("%q count %d out of range", g.typ, n)
			}
			g.pending += n
		}
		return nil
	}
}

// parseLen reads a length line: an optional '-' and at most 19 digits, then
// CRLF. The client's "?" (a streamed value of unknown length) is refused:
// Redis does not send it.
func parseLen(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	s := line[:len(line)-2]
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n < 0 { // 19 digits may overflow
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
