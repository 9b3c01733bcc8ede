// Package publish is the Go client of hasses' publish API, and the
// definition of the message it carries: the same JSON object is accepted by
// the HTTP API (POST /publish) and, one object per line, on the control port.
// The server validates it (docs/api.md lists the rules and the errors).
package publish

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
	// IdempotencyKey, when set (at most 128 bytes), makes a retry safe:
	// the same key within the server's -idempotency-window publishes
	// nothing and answers the first publication's Result.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
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
	// Duplicate says that the IdempotencyKey was published before: this
	// request published nothing, and IDs and Receivers are the first's.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Targets returns Tokens plus Token.
func (m *Message) Targets() []string {
	if m.Token == "" {
		return m.Tokens
	}
	return append(append([]string(nil), m.Tokens...), m.Token)
}
