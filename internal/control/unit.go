package control

import (
	"bytes"
	"errors"
	"strings"

	"github.com/hasses-go/hasses/internal/hub"
)

// commandWords are the fixed commands; three more take an argument after a
// colon (subscribedclients:X, tcpsubscribedclients:X and tcppresence:X).
var commandWords = []string{
	"status", "clientlist", "numberofclients",
	"loglevel_quiet", "loglevel_normal", "loglevel_debug",
	"reinit_enable", "reinit_disable",
	"tcpnumberofclients", "tcpstatus", "tcpcluster",
	"subscribedclients:", "tcpsubscribedclients:", "tcppresence:",
}

// isCommand reports an exact, case-sensitive command match (spec 4.4).
func isCommand(s []byte) bool {
	for _, w := range commandWords {
		if w[len(w)-1] == ':' {
			if hasPrefix(s, w) && len(s) > len(w) {
				return true
			}
		} else if string(s) == w {
			return true
		}
	}
	return false
}

// isFixedCommand reports a command word that cannot grow: a fragment equal
// to it is complete even without a terminator.
func isFixedCommand(s []byte) bool {
	for _, w := range commandWords {
		if w[len(w)-1] != ':' && string(s) == w {
			return true
		}
	}
	return false
}

// Errors of ParseMessage: the line syntax. What a message may hold is
// hub.Message.Validate's to say, for every input alike.
var (
	ErrNoToken    = errors.New("no token before '='")
	ErrBadExclude = errors.New("'*' after the excluded client id")
	ErrNotCommand = errors.New("not a command and no '='")
)

// ParseMessage parses "token=body" (spec 4.8-4.9, with bodies that may
// contain '=' and line breaks). The token may be "*", "prefix*" (what
// follows the '*' is ignored, as in hasses) and may end in "-ID" to exclude
// the client with that id. A NUL ends the body, as in hasses.
//
// "token#name=body" gives the event an SSE event name. A browser cannot
// subscribe to a token containing a raw '#' (it would start the URL's
// fragment), so this extension changes nothing for existing senders.
func ParseMessage(unit []byte) (hub.Message, error) {
	i := bytes.IndexByte(unit, '=')
	if i < 0 {
		return hub.Message{}, ErrNotCommand
	}
	if i == 0 {
		return hub.Message{}, ErrNoToken
	}
	token, body := string(unit[:i]), unit[i+1:]
	if j := bytes.IndexByte(body, 0); j >= 0 {
		body = body[:j]
	}
	token, event, _ := strings.Cut(token, "#")
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
	return hub.Message{Targets: []string{target}, Exclude: exclude, Event: event, Data: bytes.Clone(body)}, nil
}
