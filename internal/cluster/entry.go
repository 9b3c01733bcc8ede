package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/hasses-go/hasses/internal/hub"
)

// A log entry is one publication as the sequencer stored it: the stream id
// is "<seq>-0" and it has two fields, so that every node decodes few
// values per event:
//
//	h  "<epoch> <prev> <tag> <prev tag>", written by the sequencer: the
//	   dataset's epoch; the sequence number of the previous entry (a node
//	   that has not applied exactly prev has missed something: the log was
//	   trimmed past it); the entry's tag, unique in the cluster
//	   ("<node>:<unit number>"), and the previous entry's tag ("" if
//	   unknown): after a failover, two masters may for a moment number
//	   entries alike, and a node that read the old one's must not take the
//	   new one's entries for a continuation of its own
//	m  the publication, written by the publishing node (encodeBody): the
//	   id of the node waiting for its answer (empty for fire-and-forget
//	   units), the excluded client id, the event name, the data, then the
//	   targets; a disconnection starts with 0xff, the client id and user it
//	   matches, and "<at> <until>" (Unix ms) if it revokes the user's tokens;
//	   a presence event (join or leave) starts with 0xfe, the token, the
//	   client id, the user and "j" or "l"
type entry struct {
	seq, prev, epoch uint64
	origin           string
	tag, prevTag     string
	msg              hub.Message
}

var errBadEntry = errors.New("cluster: malformed log entry")

// disconnectMark starts the body of a disconnection (hub.Message.Disconnect),
// presenceMark that of a join or leave (hub.Message.Presence).
const (
	disconnectMark = 0xff
	presenceMark   = 0xfe
)

// appendStrings packs strings (raw bytes, any content) as length-prefixed
// values.
func appendStrings(b []byte, ss ...string) []byte {
	for _, s := range ss {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// encodeBody is an entry's m field for message m published by origin.
func encodeBody(origin string, m hub.Message) string {
	n := len(origin) + len(m.Exclude) + len(m.Event) + len(m.Data) + 4*binary.MaxVarintLen32
	for _, t := range m.Targets {
		n += len(t) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, n+2*binary.MaxVarintLen32+1)
	if d := m.Disconnect; d != nil {
		// A mark no older body starts with (an origin is a short id, so
		// its length is one byte below 0x80), then what it matches.
		b = append(b, disconnectMark)
		rev := ""
		if r := d.Revoke; r != nil {
			rev = strconv.FormatInt(r.At, 10) + " " + strconv.FormatInt(r.Until, 10)
		}
		b = appendStrings(b, d.ID, d.User, rev)
	}
	if p := m.Presence; p != nil {
		kind := "l"
		if p.Join {
			kind = "j"
		}
		b = append(b, presenceMark)
		b = appendStrings(b, p.Token, p.ID, p.User, kind)
	}
	b = appendStrings(b, origin, m.Exclude, m.Event)
	b = binary.AppendUvarint(b, uint64(len(m.Data)))
	b = append(b, m.Data...)
	return string(appendStrings(b, m.Targets...))
}

// nextString takes one length-prefixed value off s.
func nextString(s string) (v, rest string, ok bool) {
	var n uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if n > uint64(len(s)-i-1) {
				return "", "", false
			}
			s = s[i+1:]
			return s[:n], s[n:], true
		}
		shift += 7
	}
	return "", "", false
}

// decodeBody reverses encodeBody.
func decodeBody(s string) (origin string, m hub.Message, err error) {
	if len(s) > 0 && s[0] == disconnectMark {
		var d hub.Match
		var rev string
		var ok1, ok2, ok3 bool
		d.ID, s, ok1 = nextString(s[1:])
		d.User, s, ok2 = nextString(s)
		rev, s, ok3 = nextString(s)
		if !ok1 || !ok2 || !ok3 {
			return "", m, errBadEntry
		}
		if rev != "" {
			at, until, _ := strings.Cut(rev, " ")
			var r hub.Revocation
			var err1, err2 error
			r.At, err1 = strconv.ParseInt(at, 10, 64)
			r.Until, err2 = strconv.ParseInt(until, 10, 64)
			if err1 != nil || err2 != nil {
				return "", m, errBadEntry
			}
			d.Revoke = &r
		}
		m.Disconnect = &d
	}
	if len(s) > 0 && s[0] == presenceMark {
		var p hub.Change
		var kind string
		var ok1, ok2, ok3, ok4 bool
		p.Token, s, ok1 = nextString(s[1:])
		p.ID, s, ok2 = nextString(s)
		p.User, s, ok3 = nextString(s)
		kind, s, ok4 = nextString(s)
		if !ok1 || !ok2 || !ok3 || !ok4 || (kind != "j" && kind != "l") || p.Token == "" || p.ID == "" {
			return "", m, errBadEntry
		}
		p.Join = kind == "j"
		m.Presence = &p
	}
	var data string
	var ok1, ok2, ok3, ok4 bool
	origin, s, ok1 = nextString(s)
	m.Exclude, s, ok2 = nextString(s)
	m.Event, s, ok3 = nextString(s)
	data, s, ok4 = nextString(s)
	if !ok1 || !ok2 || !ok3 || !ok4 || s == "" {
		return "", m, errBadEntry
	}
	m.Data = []byte(data)
	for s != "" {
		var t string
		var ok bool
		if t, s, ok = nextString(s); !ok {
			return "", m, errBadEntry
		}
		m.Targets = append(m.Targets, t)
	}
	return origin, m, nil
}

// parseEntry decodes one entry of the log stream.
func parseEntry(id, h, m string) (entry, error) {
	var e entry
	ms, rest, ok := strings.Cut(id, "-")
	if !ok || rest != "0" {
		return e, errBadEntry
	}
	var err error
	if e.seq, err = strconv.ParseUint(ms, 10, 64); err != nil || e.seq == 0 {
		return e, errBadEntry
	}
	ep, prev, ok := strings.Cut(h, " ")
	if !ok {
		return e, errBadEntry
	}
	prev, tags, _ := strings.Cut(prev, " ")
	e.tag, e.prevTag, _ = strings.Cut(tags, " ")
	if e.prev, err = strconv.ParseUint(prev, 10, 64); err != nil || e.prev >= e.seq {
		return e, errBadEntry
	}
	if e.epoch, err = strconv.ParseUint(ep, 10, 64); err != nil || e.epoch == 0 {
		return e, errBadEntry
	}
	if e.origin, e.msg, err = decodeBody(m); err != nil {
		return e, err
	}
	// What the nodes wrote passed their pipelines; what comes back from
	// Redis must still keep the encoder's guarantee.
	if e.msg.Validate(hub.Limits{}) != nil {
		return e, errBadEntry
	}
	return e, nil
}

// rawEntry is a log entry as Redis returned it.
type rawEntry struct{ id, h, m string }

// rawEntries walks the entries of an XRANGE reply, or of one stream in an
// XREAD reply, without building a map per entry: every node reads every
// event, so this is on the cluster's hot path.
func rawEntries(list []rueidis.RedisMessage) ([]rawEntry, error) {
	out := make([]rawEntry, 0, len(list))
	for _, x := range list {
		kv, err := x.ToArray()
		if err != nil || len(kv) != 2 {
			return nil, fmt.Errorf("cluster: unexpected log entry: %v", err)
		}
		var r rawEntry
		if r.id, err = kv[0].ToString(); err != nil {
			return nil, fmt.Errorf("cluster: unexpected log entry id: %w", err)
		}
		fields, _ := kv[1].ToArray()
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].ToString()
			v, _ := fields[i+1].ToString()
			switch k {
			case "h":
				r.h = v
			case "m":
				r.m = v
			}
		}
		out = append(out, r)
	}
	return out, nil
}
