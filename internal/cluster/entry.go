package cluster

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/hasses-go/hasses/internal/hub"
)

// A log entry is one publication as the sequencer stored it: the stream id
// is "<seq>-0" and its fields are
//
//	e  epoch of the dataset (decimal)
//	p  sequence number of the previous entry: a node that has not applied
//	   exactly p has missed something (the log was trimmed past it)
//	k  targets, encoded by encodeTargets
//	x  excluded client id
//	n  event name
//	d  data
//	o  id of the node that published it and waits for its answer (empty
//	   for fire-and-forget units)
//	u  its tag, unique in the cluster (publishing node id:unit number)
//	q  the tag of the previous entry (empty if unknown)
type entry struct {
	seq, prev, epoch uint64
	origin           string
	tag, prevTag     string
	msg              hub.Message
}

var errBadEntry = errors.New("cluster: malformed log entry")

// encodeTargets packs targets (raw bytes, any content) as length-prefixed
// strings.
func encodeTargets(targets []string) string {
	n := 0
	for _, t := range targets {
		n += len(t) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	for _, t := range targets {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return string(b)
}

// decodeTargets reverses encodeTargets.
func decodeTargets(s string) ([]string, error) {
	var out []string
	for len(s) > 0 {
		n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if k <= 0 || n > uint64(len(s)-k) {
			return nil, errBadEntry
		}
		out = append(out, s[k:k+int(n)])
		s = s[k+int(n):]
	}
	if len(out) == 0 {
		return nil, errBadEntry
	}
	return out, nil
}

// parseEntry decodes one entry of the log stream.
func parseEntry(id string, f map[string]string) (entry, error) {
	var e entry
	ms, rest, ok := strings.Cut(id, "-")
	if !ok || rest != "0" {
		return e, errBadEntry
	}
	var err error
	if e.seq, err = strconv.ParseUint(ms, 10, 64); err != nil || e.seq == 0 {
		return e, errBadEntry
	}
	if e.prev, err = strconv.ParseUint(f["p"], 10, 64); err != nil || e.prev >= e.seq {
		return e, errBadEntry
	}
	if e.epoch, err = strconv.ParseUint(f["e"], 10, 64); err != nil || e.epoch == 0 {
		return e, errBadEntry
	}
	targets, err := decodeTargets(f["k"])
	if err != nil {
		return e, err
	}
	e.origin, e.tag, e.prevTag = f["o"], f["u"], f["q"]
	e.msg = hub.Message{Targets: targets, Exclude: f["x"], Event: f["n"], Data: []byte(f["d"])}
	if hub.Check(e.msg) != nil {
		return e, errBadEntry
	}
	return e, nil
}
