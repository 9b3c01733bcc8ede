// Package publish is the Go client of hasses' publish API, and the
// definition of the message it carries: the same JSON object is accepted by
// the HTTP API (POST /publish) and, one object per line, on the control port.
package publish

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message is one publication.
type Message struct {
	// Tokens are the targets: exact tokens, "prefix*" patterns or "*".
	Tokens []string `json:"tokens,omitempty"`
	// Token is a single target, for convenience; it is added to Tokens.
	Token string `json:"token,omitempty"`
	// Data is the body: valid UTF-8, any number of lines.
	Data string `json:"data"`
	// Event is the optional SSE event name.
	Event string `json:"event,omitempty"`
	// Exclude is a client id ("id=" of the stream) that must not receive it.
	Exclude string `json:"exclude,omitempty"`
}

// Result is the answer to a publication.
type Result struct {
	// IDs holds the event id the message got (one, whatever the number
	// of targets): the SSE id every receiver sees.
	IDs []string `json:"ids"`
	// Receivers counts the distinct streams on this server the message
	// was written to: a stream subscribed to several targets counts once,
	// the excluded stream not at all.
	Receivers int `json:"receivers"`
}

// Limits bound what Validate accepts.
type Limits struct {
	MaxData     int // bytes of Data
	MaxTokenLen int // bytes of a token
	MaxTargets  int // tokens in one message
}

// Errors of Validate. ErrTooLarge answers 413, the others 400.
var (
	ErrNoTarget   = errors.New("no token given")
	ErrTooLarge   = errors.New("data larger than the limit")
	ErrBadUTF8    = errors.New("data is not valid UTF-8")
	ErrEmptyData  = errors.New("empty data")
	ErrInjection  = errors.New("CR, LF or NUL in a token, event name or client id")
	ErrBadToken   = errors.New("malformed token")
	ErrTooManyTok = errors.New("too many tokens")
)

// Targets returns Tokens plus Token.
func (m *Message) Targets() []string {
	if m.Token == "" {
		return m.Tokens
	}
	return append(append([]string(nil), m.Tokens...), m.Token)
}

// Validate checks m against l. Line breaks and NUL are refused in every
// field that ends up in a header-like position (an SSE field name or value
// on one line), so nothing can inject an event or a field.
func (m *Message) Validate(l Limits) error {
	targets := m.Targets()
	if len(targets) == 0 {
		return ErrNoTarget
	}
	if l.MaxTargets > 0 && len(targets) > l.MaxTargets {
		return fmt.Errorf("%w: %d, limit %d", ErrTooManyTok, len(targets), l.MaxTargets)
	}
	for _, t := range targets {
		if strings.ContainsAny(t, "\r\n\x00") {
			return ErrInjection
		}
		if why := tokenProblem(t, l.MaxTokenLen); why != "" {
			return fmt.Errorf("%w: %q: %s", ErrBadToken, truncate(t), why)
		}
		if i := strings.IndexByte(t, '*'); i >= 0 && i != len(t)-1 {
			return fmt.Errorf("%w: '*' must end the token: %q", ErrBadToken, truncate(t))
		}
	}
	if strings.ContainsAny(m.Event, "\r\n\x00") || strings.ContainsAny(m.Exclude, "\r\n\x00") {
		return ErrInjection
	}
	if m.Data == "" {
		return ErrEmptyData
	}
	if l.MaxData > 0 && len(m.Data) > l.MaxData {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Data), l.MaxData)
	}
	if !utf8.ValidString(m.Data) || strings.IndexByte(m.Data, 0) >= 0 {
		return ErrBadUTF8
	}
	return nil
}

// tokenProblem says why t cannot be a token, or "" if it can: each reason
// names the syntax the character already has, so the publisher sees why.
func tokenProblem(t string, maxLen int) string {
	switch {
	case t == "":
		return "empty"
	case maxLen > 0 && len(t) > maxLen:
		return fmt.Sprintf("%d bytes, limit %d (-max-token-len)", len(t), maxLen)
	case strings.Contains(t, "-"):
		return "'-' separates tokens in ?subscribe=a-b, so no stream can subscribe to it"
	case strings.Contains(t, "#"):
		return "'#' starts the event name in a control unit (token#event=data)"
	case strings.ContainsAny(t, " \t"):
		return "a space or tab cannot be in a token"
	}
	return ""
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
