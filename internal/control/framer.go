// Package control implements hasses' control inputs: the TCP control port
// and the FIFO, through which a web backend pushes "token=message" units and
// runs admin commands.
package control

import (
	"bytes"
	"strings"
)

// Framer splits a control byte stream into units, keeping every framing
// existing hasses senders rely on (spec 9.1): a unit ends
//   - at the separator (";" by default);
//   - at a newline that ends the bytes received so far, or that is followed
//     by a line that looks like a new message ("token=") or a command;
//     any other newline belongs to the body, so multi-line bodies work;
//   - at end of file, or after an idle gap (the caller calls Flush), for a
//     trailing fragment with no terminator.
//
// A unit longer than MaxUnit is rejected whole, never cut: its bytes are
// skipped up to the next terminator and Oversized is called.
type Framer struct {
	Sep         byte
	MaxUnit     int
	MaxTokenLen int
	// Oversized is called once for every unit rejected for its size.
	Oversized func(n int)

	buf       []byte
	scan      int  // bytes of buf already known to hold no terminator
	skipping  bool // inside an oversized unit, dropping bytes
	skipped   int
	lineStart bool   // while skipping: at the start of a line
	line      []byte // while skipping: the line so far, maybe "token="
}

func (f *Framer) maxUnit() int {
	if f.MaxUnit > 0 {
		return f.MaxUnit
	}
	return 64<<10 + 1024
}

func (f *Framer) sep() byte {
	if f.Sep != 0 {
		return f.Sep
	}
	return ';'
}

// Pending reports whether a fragment without terminator is buffered; the
// caller then flushes it after the idle gap.
func (f *Framer) Pending() bool { return len(f.buf) > 0 }

// PendingCommand reports whether the buffered fragment is a complete fixed
// command word, such as "tcpstatus" sent without a newline on a connection
// held open: it can be answered at once instead of after the idle gap.
func (f *Framer) PendingCommand() bool {
	return !f.skipping && isFixedCommand(string(bytes.TrimRight(f.buf, "\r\n")))
}

// Feed adds received bytes and emits the units they complete. emit must not
// keep the slice it gets.
func (f *Framer) Feed(p []byte, emit func(unit []byte)) {
	for len(p) > 0 {
		if f.skipping {
			p = f.skip(p)
			continue
		}
		// p is one read (a few KiB), so buf stays within MaxUnit plus one
		// read, and a newline at the end of p really ends what was received.
		f.buf = append(f.buf, p...)
		p = nil
		f.split(emit, false)
		if len(f.buf) > f.maxUnit() {
			rest := bytes.Clone(f.buf)
			f.buf, f.scan = f.buf[:0], 0
			f.skipping, f.skipped, f.lineStart = true, 0, false
			p = f.skip(rest)
		}
	}
}

func (f *Framer) skip(p []byte) []byte {
	for i, c := range p {
		switch {
		case c == f.sep():
			f.skipped += i
			f.endSkip()
			return p[i+1:]
		case c == '\n':
			f.lineStart = true
			f.line = f.line[:0]
		case f.lineStart:
			f.line = append(f.line, c)
			if c == '=' && f.plausibleToken(f.line[:len(f.line)-1]) {
				f.skipped += i + 1 - len(f.line)
				f.endSkip()
				f.buf = append(f.buf[:0], f.line...)
				f.scan = len(f.buf)
				return p[i+1:]
			}
			if c <= ' ' || len(f.line) > 2*f.tokenLimit()+2 {
				f.lineStart = false
			}
		}
	}
	f.skipped += len(p)
	return nil
}

func (f *Framer) endSkip() {
	f.skipping, f.lineStart = false, false
	if f.Oversized != nil {
		f.Oversized(f.skipped)
	}
	f.skipped = 0
}

// Flush ends the buffered fragment: end of file, or the idle gap passed.
func (f *Framer) Flush(emit func(unit []byte)) {
	if f.skipping {
		f.endSkip()
	}
	f.split(emit, true)
	if len(f.buf) > 0 {
		f.emit(f.buf, emit)
	}
	f.buf, f.scan = f.buf[:0], 0
}

// split emits every complete unit at the front of buf. At a newline whose
// next line is still incomplete it waits for more bytes, unless final.
func (f *Framer) split(emit func([]byte), final bool) {
	sep := f.sep()
	start := 0
	i := f.scan
	for i < len(f.buf) {
		c := f.buf[i]
		switch {
		case c == sep && !isJSON(f.buf[start:i]):
			f.emit(f.buf[start:i], emit)
			start = i + 1
		case c == '\n' && isJSON(f.buf[start:i]):
			f.emit(f.buf[start:i], emit) // a JSON unit is one line
			start = i + 1
		case c == '\n':
			next := f.buf[i+1:]
			switch f.newlineEnds(next, final) {
			case yes:
				f.emit(f.buf[start:i], emit)
				start = i + 1
			case undecided:
				f.keep(start, i)
				return
			}
		}
		i++
	}
	f.keep(start, len(f.buf))
}

// isJSON reports a unit in the JSON framing: it starts with '{' (after
// blanks) and ends at the end of its line, whatever separators it contains.
// No hasses message starts with '{': a token cannot be empty.
func isJSON(unit []byte) bool {
	u := bytes.TrimLeft(unit, " \t\r\n")
	return len(u) > 0 && u[0] == '{'
}

// keep drops the emitted units from buf; scanning resumes at scanFrom.
func (f *Framer) keep(start, scanFrom int) {
	n := copy(f.buf, f.buf[start:])
	f.buf = f.buf[:n]
	f.scan = scanFrom - start
	if n == 0 && cap(f.buf) > 64<<10 {
		f.buf = nil // do not pin one big message's buffer
	}
}

type decision int

const (
	no decision = iota
	yes
	undecided
)

// newlineEnds decides whether a newline followed by next ends the unit.
func (f *Framer) newlineEnds(next []byte, final bool) decision {
	if len(next) == 0 {
		return yes // the newline ends the bytes received so far
	}
	end := bytes.IndexAny(next, string([]byte{f.sep(), '\n'}))
	line := next
	if end >= 0 {
		line = next[:end]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if f.looksLikeUnit(line) {
		return yes
	}
	if end < 0 && !final && f.couldBecomeUnit(line) {
		return undecided
	}
	return no
}

// looksLikeUnit: a command word, "auth ...", a JSON object, or "token="
// with a plausible token.
func (f *Framer) looksLikeUnit(line []byte) bool {
	if isCommand(string(line)) || bytes.HasPrefix(line, []byte("auth ")) || isJSON(line) {
		return true
	}
	i := bytes.IndexByte(line, '=')
	return i > 0 && f.plausibleToken(line[:i])
}

// couldBecomeUnit: an incomplete line that more bytes may turn into a
// message or a command.
func (f *Framer) couldBecomeUnit(line []byte) bool {
	if bytes.IndexByte(line, '=') >= 0 {
		return false // looksLikeUnit already said no
	}
	for _, w := range commandWords {
		if strings.HasPrefix(w, string(line)) || strings.HasPrefix(string(line), w) {
			return true
		}
	}
	return f.plausibleToken(line) || len(line) == 0
}

func (f *Framer) tokenLimit() int {
	if f.MaxTokenLen > 0 {
		return f.MaxTokenLen
	}
	return 256
}

func (f *Framer) plausibleToken(tok []byte) bool {
	if len(tok) == 0 || len(tok) > 2*f.tokenLimit()+1 { // token, "-", client id
		return false
	}
	for _, c := range tok {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func (f *Framer) emit(unit []byte, emit func([]byte)) {
	unit = bytes.TrimRight(unit, "\r\n")
	if len(unit) == 0 {
		return
	}
	if len(unit) > f.maxUnit() {
		if f.Oversized != nil {
			f.Oversized(len(unit))
		}
		return
	}
	emit(unit)
}
