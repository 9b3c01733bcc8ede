package control

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/hasses-go/hasses/internal/hub"
)

// commandWords are the fixed commands; two more take an argument after a
// colon (subscribedclients:X and tcpsubscribedclients:X).
var commandWords = []string{
	"status", "clientlist", "numberofclients",
	"loglevel_quiet", "loglevel_normal", "loglevel_debug",
	"reinit_enable", "reinit_disable",
	"tcpnumberofclients", "tcpstatus", "tcpcluster",
	"subscribedclients:", "tcpsubscribedclients:",
}

// isCommand reports an exact, case-sensitive command match (spec 4.4).
func isCommand(s string) bool {
	for _, w := range commandWords {
		if strings.HasSuffix(w, ":") {
			if strings.HasPrefix(s, w) && len(s) > len(w) {
				return true
			}
		} else if s == w {
			return true
		}
	}
	return false
}

// isFixedCommand reports a command word that cannot grow: a fragment equal
// to it is complete even without a terminator.
func isFixedCommand(s string) bool {
	return !strings.Contains(s, ":") && isCommand(s)
}

// Errors of ParseMessage.
var (
	ErrNoToken     = errors.New("no token before '='")
	ErrEmptyBody   = errors.New("empty message body")
	ErrTokenLength = errors.New("token too long")
	ErrBadExclude  = errors.New("'*' after the excluded client id")
	ErrBadEvent    = errors.New("line break in the event name")
)

// ParseMessage parses "token=body" (spec 4.8-4.9, with bodies that may
// contain '=' and line breaks). The token may be "*", "prefix*" (what
// follows the '*' is ignored, as in hasses) and may end in "-ID" to exclude
// the client with that id. A NUL ends the body, as in hasses.
//
// "token#name=body" gives the event an SSE event name. A browser cannot
// subscribe to a token containing a raw '#' (it would start the URL's
// fragment), so this extension changes nothing for existing senders.
func ParseMessage(unit []byte, maxTokenLen, maxIDLen int) (hub.Message, error) {
	i := bytes.IndexByte(unit, '=')
	if i < 0 {
		return hub.Message{}, errors.New("not a command and no '='")
	}
	if i == 0 {
		return hub.Message{}, ErrNoToken
	}
	token, body := string(unit[:i]), unit[i+1:]
	if j := bytes.IndexByte(body, 0); j >= 0 {
		body = body[:j]
	}
	if len(body) == 0 {
		return hub.Message{}, ErrEmptyBody
	}
	token, event, _ := strings.Cut(token, "#")
	if strings.ContainsAny(event, "\r\n") {
		return hub.Message{}, ErrBadEvent
	}
	target, exclude, _ := strings.Cut(token, "-")
	if target == "" {
		return hub.Message{}, ErrNoToken
	}
	if strings.Contains(exclude, "*") {
		return hub.Message{}, ErrBadExclude
	}
	if k := strings.IndexByte(target, '*'); k >= 0 {
		target = target[:k+1]
	}
	if len(target) > maxTokenLen || len(exclude) > maxIDLen {
		return hub.Message{}, fmt.Errorf("%w (limit %d)", ErrTokenLength, maxTokenLen)
	}
	return hub.Message{Target: target, Exclude: exclude, Event: event, Data: bytes.Clone(body)}, nil
}
