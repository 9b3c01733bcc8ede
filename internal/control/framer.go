// Package control implements hasses' control inputs: the TCP control port
// and the FIFO, through which a web backend pushes "token=message" units and
// runs admin commands.
package control

import (
	"bytes"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
)

// Kind is what a unit is, decided once by the framer.
type Kind uint8

const (
	KindMessage Kind = iota // "token=body", or anything else not recognised
	KindCommand             // an exact command word (spec 4.4)
	KindAuth                // "auth <secret>"
	KindJSON                // one JSON object, ended by its line
)

func (k Kind) String() string {
	return [...]string{"message", "command", "auth", "JSON"}[k]
}

// Unit is one framed control unit. Data is only valid during the emit call.
// An oversized unit has no Data: Size says how long it was.
type Unit struct {
	Kind      Kind
	Data      []byte
	Oversized bool
	Size      int
}

// Framer splits a control byte stream into units, keeping every framing
// existing hasses senders rely on (spec 9.1): a unit ends
//   - at the separator (";" by default), except inside a JSON unit;
//   - at a newline that ends the bytes received so far, or that is followed
//     by a line that looks like a new unit ("token=", a command, "auth ",
//     a JSON object); any other newline belongs to the body, so multi-line
//     bodies work; a JSON unit always ends at its newline;
//   - at end of file, or after an idle gap (the caller calls Flush), for a
//     trailing fragment with no terminator.
//
// A unit longer than its limit is rejected whole, never cut: its end is
// found by exactly the same rules as for any other unit (so nothing inside
// it can ever run as a unit of its own), its bytes are dropped as they
// arrive, and it is emitted with Oversized set. The limits are exact:
// MaxBody bounds the bytes after the first '=' of a message, the other
// limits the whole unit; trailing CR/LF are not counted.
//
// Every byte is looked at a bounded number of times (a line after a
// newline is buffered at most up to the token length, then decided), so
// feeding n bytes costs O(n) however they are cut.
type Framer struct {
	Sep         byte
	MaxBody     int // bytes after the first '=' of a message
	MaxTokenLen int // bounds the head before '=' and commands
	MaxIDLen    int // with MaxTokenLen: the head is token-id#event
	MaxJSON     int // bytes of a JSON unit
	MaxAuth     int // bytes of an "auth" unit
	// Restricted bounds every unit by MaxAuth: before authentication only
	// "auth <secret>" is any use. It may be cleared from the emit callback.
	Restricted bool

	state   state
	buf     []byte // the current unit, unless it is being dropped
	size    int    // bytes of the current unit so far, dropped or not
	trail   int    // trailing CR/LF bytes among them
	eq      int    // offset of the first '=' in a plain unit, or -1
	auth    bool   // the plain unit starts with "auth "
	discard bool   // the unit is over its limit: its bytes are dropped
	line    []byte // after a newline in a plain unit: the next line so far
	lookBl  int    // its leading blanks
	lookEq  int    // offset of its first '=', or -1
	lookBad bool   // a blank or control byte before that '='
	spare   []byte // the other line buffer, for restart
}

type state uint8

const (
	stBlank state = iota // only blanks so far (or nothing)
	stPlain              // a message, command or auth unit
	stJSON               // a JSON unit: ends at its newline only
	stLook               // plain unit, after a newline: line decides
)

// Defaults for a Framer built without limits (tests); the Handler always
// sets them. An "auth" unit is bounded by defaultMaxAuth alone.
const (
	defaultMaxBody     = hub.DefaultMaxData
	defaultMaxTokenLen = handshake.DefaultMaxTokenLen
	defaultMaxIDLen    = handshake.DefaultMaxIDLen
	defaultMaxAuth     = 4 << 10
)

func (f *Framer) sep() byte {
	if f.Sep != 0 {
		return f.Sep
	}
	return DefaultSep
}

func (f *Framer) tokenLen() int {
	if f.MaxTokenLen > 0 {
		return f.MaxTokenLen
	}
	return defaultMaxTokenLen
}

// maxHead bounds what may precede '=': token, "-" client id, "#" event name
// (as long as a token at most). It also bounds a command with its argument
// and a plain unit with no '=' at all.
func (f *Framer) maxHead() int {
	id := f.MaxIDLen
	if id <= 0 {
		id = defaultMaxIDLen
	}
	return 2*f.tokenLen() + id + 2
}

// lookMax: a line after a newline is decided within this many bytes.
func (f *Framer) lookMax() int { return f.maxHead() + 1 }

func (f *Framer) limit() int {
	maxAuth := f.MaxAuth
	if maxAuth <= 0 {
		maxAuth = defaultMaxAuth
	}
	switch {
	case f.Restricted || f.auth:
		return maxAuth
	case f.state == stBlank:
		return f.maxHead()
	case f.state == stJSON:
		if f.MaxJSON > 0 {
			return f.MaxJSON
		}
		return 6*defaultMaxBody + 4096
	case f.eq < 0:
		return f.maxHead()
	case f.eq > f.maxHead():
		return 0 // the head before '=' is too long
	}
	body := f.MaxBody
	if body <= 0 {
		body = defaultMaxBody
	}
	return f.eq + 1 + body
}

// Pending reports whether a fragment without terminator is buffered; the
// caller then flushes it after the idle gap.
func (f *Framer) Pending() bool { return f.size > 0 || f.state != stBlank }

// PendingCommand reports whether the buffered fragment ends in a complete
// fixed command word, such as "tcpstatus" sent without a newline on a
// connection held open: it can be answered at once instead of after the
// idle gap.
func (f *Framer) PendingCommand() bool {
	switch f.state {
	case stPlain:
		return !f.discard && isFixedCommand(bytes.TrimRight(f.buf, "\r\n"))
	case stLook:
		return isFixedCommand(bytes.TrimSuffix(f.line, []byte("\r")))
	}
	return false
}

// Feed adds received bytes and emits the units they complete.
func (f *Framer) Feed(p []byte, emit func(Unit)) {
	f.feed(p, emit)
	// A newline that ends the bytes received so far ends the unit.
	if f.state == stLook && len(f.line) == 0 {
		f.end(emit)
	}
}

func (f *Framer) feed(p []byte, emit func(Unit)) {
	sep := f.sep()
	for len(p) > 0 {
		switch f.state {
		case stBlank:
			switch c := p[0]; c {
			case '\n', sep:
				f.end(emit) // an all-blank unit: dropped
			case ' ', '\t', '\r':
				f.add(p[:1])
			case '{':
				f.state = stJSON
				f.add(p[:1])
			default:
				f.state, f.eq = stPlain, -1
				continue // the byte starts the body
			}
			p = p[1:]
		case stJSON:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.add(p)
				return
			}
			f.add(p[:i])
			f.end(emit)
			p = p[i+1:]
		case stPlain:
			i := 0
			for i < len(p) && p[i] != sep && p[i] != '\n' {
				i++
			}
			f.add(p[:i])
			if i == len(p) {
				return
			}
			if p[i] == sep {
				f.end(emit)
			} else {
				f.state = stLook
				f.line, f.lookBl, f.lookEq, f.lookBad = f.line[:0], 0, -1, false
			}
			p = p[i+1:]
		case stLook:
			i, d := 0, wait
			for ; i < len(p) && d == wait; i++ {
				if p[i] == sep || p[i] == '\n' {
					break
				}
				f.lookAdd(p[i])
				d = f.decide(false)
			}
			p = p[i:]
			if d == wait && len(p) > 0 {
				d = f.decide(true) // p[0] completes the line
			}
			switch d {
			case yes:
				f.restart(emit)
			case no:
				f.unlook()
			}
		}
	}
}

// Flush ends the buffered fragment: end of file, or the idle gap passed.
func (f *Framer) Flush(emit func(Unit)) {
	if f.state == stLook {
		if f.decide(true) == yes {
			f.restart(emit)
		} else {
			f.unlook()
		}
	}
	f.end(emit)
}

// add appends body bytes to the current unit, checking its limit.
func (f *Framer) add(b []byte) {
	if len(b) == 0 {
		return
	}
	if f.state == stPlain && f.eq < 0 {
		if i := bytes.IndexByte(b, '='); i >= 0 {
			f.eq = f.size + i
		}
	}
	f.size += len(b)
	j := len(b) - 1
	for j >= 0 && (b[j] == '\r' || b[j] == '\n') {
		j--
	}
	if j < 0 {
		f.trail += len(b)
	} else {
		f.trail = len(b) - 1 - j
	}
	if f.discard {
		return
	}
	f.buf = append(f.buf, b...)
	if !f.auth && f.state == stPlain && len(f.buf) >= 5 && len(f.buf)-len(b) < 5 {
		f.auth = hasPrefix(f.buf, "auth ")
	}
	if f.size-f.trail > f.limit() {
		f.discard = true
		f.buf = f.buf[:0]
		if cap(f.buf) > 64<<10 {
			f.buf = nil // do not pin one big unit's buffer
		}
	}
}

// unlook puts the newline and the looked-at line back into the body.
func (f *Framer) unlook() {
	f.state = stPlain
	f.add([]byte{'\n'})
	f.add(f.line)
	f.line = f.line[:0]
}

// restart ends the unit before the newline and starts a new one with the
// line looked at (at most lookMax bytes, so re-reading it is cheap).
func (f *Framer) restart(emit func(Unit)) {
	line := f.line
	f.line, f.spare = f.spare[:0], line // the new unit's line cannot hold a newline
	f.state = stPlain
	f.end(emit)
	f.feed(line, emit)
}

// end emits the current unit and starts the next one.
func (f *Framer) end(emit func(Unit)) {
	st, size := f.state, f.size
	data := bytes.TrimRight(f.buf, "\r\n")
	switch {
	case st == stBlank:
	case f.discard:
		k := KindMessage
		if st == stJSON {
			k = KindJSON
		} else if f.auth {
			k = KindAuth
		}
		emit(Unit{Kind: k, Oversized: true, Size: size - f.trail})
	case len(bytes.TrimLeft(data, " \t\r")) > 0:
		emit(Unit{Kind: classify(st, data), Data: data})
	}
	f.state, f.size, f.trail, f.eq, f.auth, f.discard = stBlank, 0, 0, -1, false, false
	f.buf = f.buf[:0]
	if cap(f.buf) > 64<<10 {
		f.buf = nil
	}
}

func classify(st state, data []byte) Kind {
	switch {
	case st == stJSON:
		return KindJSON
	case hasPrefix(data, "auth "):
		return KindAuth
	case isCommand(data):
		return KindCommand
	}
	return KindMessage
}

type decision uint8

const (
	wait decision = iota
	yes
	no
)

// lookAdd appends a byte to the line after a newline, keeping what decide
// needs up to date, so that deciding costs O(1) per byte.
func (f *Framer) lookAdd(c byte) {
	if len(f.line) == f.lookBl && (c == ' ' || c == '\t' || c == '\r') {
		f.lookBl++
	}
	if f.lookEq < 0 {
		if c == '=' {
			f.lookEq = len(f.line)
		} else if c <= ' ' || c == 0x7f {
			f.lookBad = true
		}
	}
	f.line = append(f.line, c)
}

// decide says whether the line after a newline starts a new unit, so that
// the newline ends the one before. A partial line is decided as soon as
// no more bytes can change the answer (complete=false); the answer is then
// the same as for the complete line, however the input was cut.
func (f *Framer) decide(complete bool) decision {
	line, look := f.line, f.lookMax()
	if f.lookBl < len(line) && line[f.lookBl] == '{' && f.lookBl < look {
		return yes // a JSON unit
	}
	if hasPrefix(line, "auth ") {
		return yes
	}
	if f.lookEq >= 0 {
		if f.lookEq > 0 && f.lookEq <= f.maxHead() && !f.lookBad {
			return yes // "token="
		}
		if !commandPrefix(line) {
			return no
		}
	}
	if complete {
		l := bytes.TrimSuffix(line, []byte("\r"))
		if len(l) <= look && isCommand(l) {
			return yes
		}
		return no
	}
	n := len(line)
	switch {
	case line[n-1] == '\r' && n-1 <= look && isCommand(line[:n-1]):
		return wait // "tcpstatus\r" before its "\n"
	case n > look:
		return no
	case f.lookBl == n, commandPrefix(line), isPrefix(line, "auth "):
		return wait
	case f.lookEq < 0 && !f.lookBad && n <= f.maxHead():
		return wait // may become "token="
	}
	return no
}

// commandPrefix: a line that is, or may still become, a command.
func commandPrefix(line []byte) bool {
	for _, w := range commandWords {
		if isPrefix(line, w) || (w[len(w)-1] == ':' && hasPrefix(line, w)) {
			return true
		}
	}
	return false
}

// hasPrefix is bytes.HasPrefix for a string prefix, without allocating.
func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// isPrefix reports whether b is a prefix of s.
func isPrefix(b []byte, s string) bool { return len(b) <= len(s) && string(b) == s[:len(b)] }
