package hub

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Message is one publication, whatever input it came from (a control line
// or JSON unit, the FIFO, the HTTP API, the cluster's log). The inputs parse
// their own syntax into it; Validate is the one check every message passes
// before it is numbered.
type Message struct {
	// Targets are exact tokens, "prefix*" patterns or "*" (every stream).
	// A stream that several of them select receives the message once.
	Targets []string
	// Exclude is a client id ("id=" of the subscribe URL) that must not
	// receive this message; empty means nobody is excluded.
	Exclude string
	// Event is the optional SSE event name ("event:" field).
	Event string
	// Data is the body; line breaks become several "data:" lines.
	Data []byte
	// Reply says that the publisher waits for the answer (the event id and
	// the receivers): the HTTP API and JSON units on the control port. A
	// control line or a FIFO unit expects none; in a cluster it is then
	// queued, in order, while Redis is unreachable, where an answered one
	// is refused at once so that its publisher can retry.
	Reply bool
	// Key, when set, makes the publication idempotent: the same key within
	// the window publishes nothing and answers the first Result (see
	// idempotency.go).
	Key string
	// Disconnect, when set, makes the message a disconnection: the streams
	// of its targets that match receive it as their last event and end
	// (disconnect.go).
	Disconnect *Match
	// Presence, when set, makes the message a presence token's join or
	// leave event (PresenceMessage): applying it updates the token's
	// members (presence.go).
	Presence *Change
}

// Result tells a publisher what became of a message.
type Result struct {
	// ID is the event id assigned to the message.
	ID string
	// Receivers is how many distinct streams on this node the message will
	// be written to: a stream that several targets select counts once, a
	// stream excluded by client id not at all.
	Receivers int
	// Duplicate says that the message's Key was published before: nothing
	// was published now, and ID and Receivers are the first publication's.
	Duplicate bool
}

// Limits bound what Validate accepts. A zero field means no bound: the
// cluster's log, written by nodes that each applied their own limits,
// is checked with zero Limits, for the guarantee alone.
type Limits struct {
	MaxData     int // bytes of Data (-max-message)
	MaxTokenLen int // bytes of a target, and of the event name
	MaxIDLen    int // bytes of the excluded client id
	MaxTargets  int // targets of one message (-max-tokens)
}

// DefaultMaxData is the default -max-message: the largest body a message
// may carry.
const DefaultMaxData = 64 << 10

// Errors of Validate. ErrTooLarge is the one to answer with 413 (HTTP);
// every error is the publisher's to correct.
var (
	ErrNoTarget   = errors.New("no token given")
	ErrTooManyTok = errors.New("too many tokens")
	ErrBadToken   = errors.New("malformed token")
	ErrInjection  = errors.New("CR, LF or NUL in the event name or client id")
	ErrBadEvent   = errors.New("event name too long")
	ErrBadExclude = errors.New("excluded client id too long")
	ErrEmptyData  = errors.New("empty data")
	ErrTooLarge   = errors.New("data larger than the limit")
	ErrNULData    = errors.New("NUL byte in the data")
	ErrBadKey     = errors.New("idempotency key too long")
)

// Validate checks m against l. It is the guarantee the encoder relies on:
// a message that passes cannot add a field or an event to a stream, nor
// reach a stream that did not subscribe to one of its targets:
//
//   - every target is "*", or a token of bytes above space other than DEL,
//     '-' and '#' (which separate tokens, client ids and event names in a
//     subscription and a control line), optionally ending in one '*';
//   - the event name and the excluded client id hold no CR, LF or NUL;
//   - the data is not empty and holds no NUL (its line breaks become
//     "data:" lines);
//   - nothing exceeds l (nor the idempotency key MaxKeyLen).
//
// Publish and Apply take it for granted; every input goes through
// Validate, in internal/pipeline, and the cluster checks what it reads
// from Redis.
func (m *Message) Validate(l Limits) error {
	if len(m.Targets) == 0 {
		return ErrNoTarget
	}
	if l.MaxTargets > 0 && len(m.Targets) > l.MaxTargets {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyTok, len(m.Targets), l.MaxTargets)
	}
	for _, t := range m.Targets {
		if err := checkTarget(t, l.MaxTokenLen); err != nil {
			return err
		}
	}
	if strings.ContainsAny(m.Event, "\r\n\x00") || strings.ContainsAny(m.Exclude, "\r\n\x00") {
		return ErrInjection
	}
	if l.MaxTokenLen > 0 && len(m.Event) > l.MaxTokenLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadEvent, len(m.Event), l.MaxTokenLen)
	}
	if d := m.Disconnect; d != nil && (strings.ContainsAny(d.ID, "\r\n\x00") || strings.ContainsAny(d.User, "\r\n\x00")) {
		return ErrInjection
	}
	if len(m.Key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadKey, len(m.Key), MaxKeyLen)
	}
	if l.MaxIDLen > 0 && len(m.Exclude) > l.MaxIDLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadExclude, len(m.Exclude), l.MaxIDLen)
	}
	if len(m.Data) == 0 {
		return ErrEmptyData
	}
	if l.MaxData > 0 && len(m.Data) > l.MaxData {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Data), l.MaxData)
	}
	if bytes.IndexByte(m.Data, 0) >= 0 {
		return ErrNULData
	}
	return nil
}

// checkTarget applies Validate's rule to one target, saying why it fails.
func checkTarget(t string, maxLen int) error {
	bad := func(why string) error { return fmt.Errorf("%w %s: %s", ErrBadToken, quoteCut(t), why) }
	switch {
	case t == "":
		return fmt.Errorf("%w: empty token", ErrBadToken)
	case maxLen > 0 && len(t) > maxLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxLen))
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c <= ' ' || c == 0x7f:
			return bad("a blank or control character (a subscriber's token never has one)")
		case c == '-':
			return bad("'-' separates tokens in a subscription (subscribe=a-b is two tokens), so no subscriber has this one")
		case c == '#':
			return bad("'#' ends a URL before its fragment, so no browser can subscribe to it")
		case c == '*' && i != len(t)-1:
			return bad("'*' may only end a token (\"prefix*\")")
		}
	}
	return nil
}

func quoteCut(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%q...", s[:40])
	}
	return fmt.Sprintf("%q", s)
}
