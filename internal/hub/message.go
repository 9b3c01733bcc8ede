package hub

// Message is one publication as it arrives from a control input.
type Message struct {
	// Target is an exact token, a "prefix*" pattern, or "*" for every stream.
	Target string
	// Targets, when set, replaces Target: one event for several targets. A
	// stream that several of them select receives it once.
	Targets []string
	// Exclude is a client id ("id=" of the subscribe URL) that must not
	// receive this message; empty means nobody is excluded.
	Exclude string
	// Event is the optional SSE event name ("event:" field).
	Event string
	// Data is the body; line breaks become several "data:" lines.
	Data []byte
}

// Result tells a publisher what became of a message.
type Result struct {
	// ID is the event id assigned to the message.
	ID string
	// Receivers is how many distinct streams on this node the message will
	// be written to: a stream that several targets select counts once, a
	// stream excluded by client id not at all.
	Receivers int
}
