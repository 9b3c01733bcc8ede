// Package pipeline is the one way a publication reaches the streams: the
// write-side twin of the stream core. Every input (control lines and JSON
// units on the TCP port, the FIFO, the HTTP API) parses its own syntax
// into a hub.Message and hands it to Pipeline.Publish, which
//
//   - validates it, once, with the server's limits (hub.Message.Validate
//     states what can then never reach the wire);
//   - chooses where it is numbered: the local hub, or the cluster engine,
//     which numbers it in Redis and brings it back to every node's hub;
//   - counts it, by input: publications, and refusals by reason. The
//     inputs report the refusals that happen before a message exists (a
//     wrong secret, a network not allowed, a unit that does not parse), so
//     every counter is kept here, the same for every input.
package pipeline

import (
	"errors"
	"sync/atomic"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/publish"
)

// Sink numbers and routes a validated message: the hub on a single node,
// the cluster engine in a cluster. Its Publish may be called concurrently.
type Sink interface {
	Publish(m hub.Message) (hub.Result, error)
}

// Source is the input a publication came through.
type Source uint8

// The inputs.
const (
	Control     Source = iota // a "token=data" line on the control port
	ControlJSON               // a JSON unit on the control port
	FIFO                      // any unit read from the FIFO
	HTTP                      // POST /publish
	numSources
)

var sourceNames = [numSources]string{"control", "control_json", "fifo", "http"}

func (s Source) String() string { return sourceNames[s] }

// Reason is why a publication was refused.
type Reason uint8

// The reasons, in the order they are listed.
const (
	Unauthorized Reason = iota // wrong or missing secret
	Forbidden                  // address not allowed
	RateLimited                // over the per-publisher rate
	TooLarge                   // over -max-message (or the input's size bound)
	BadRequest                 // does not parse, or fails validation
	Unavailable                // the cluster cannot number it now (Redis unreachable)
	numReasons
)

var reasonNames = [numReasons]string{"unauthorized", "forbidden", "rate_limited", "too_large", "bad_request", "unavailable"}

func (r Reason) String() string { return reasonNames[r] }

// Pipeline validates, routes and counts publications. Set its fields
// before the first Publish; it is then safe for concurrent use.
type Pipeline struct {
	// Limits bound every publication, whatever its input.
	Limits hub.Limits
	// Hub numbers publications on a single node.
	Hub Sink
	// Cluster, when set, numbers them instead (the hub is then its
	// replica): the choice is made here and nowhere else.
	Cluster Sink

	published [numSources]atomic.Int64
	refused   [numSources][numReasons]atomic.Int64
}

// Publish validates m and has it numbered and routed. An invalid message
// is refused with Validate's error (hub.ErrTooLarge for an oversized
// body); a cluster that cannot number it answers hub.ErrUnavailable.
func (p *Pipeline) Publish(m hub.Message, src Source) (hub.Result, error) {
	if err := m.Validate(p.Limits); err != nil {
		p.Refuse(src, ReasonOf(err))
		return hub.Result{}, err
	}
	sink := p.Hub
	if p.Cluster != nil {
		sink = p.Cluster
	}
	r, err := sink.Publish(m)
	if err != nil {
		p.Refuse(src, ReasonOf(err))
		return r, err
	}
	p.published[src].Add(1)
	return r, nil
}

// ReasonOf maps a publication error to the reason it is counted under.
func ReasonOf(err error) Reason {
	switch {
	case errors.Is(err, hub.ErrTooLarge):
		return TooLarge
	case errors.Is(err, hub.ErrUnavailable):
		return Unavailable
	}
	return BadRequest
}

// Refuse counts a publication refused before or by the pipeline.
func (p *Pipeline) Refuse(src Source, r Reason) { p.refused[src][r].Add(1) }

// Published returns how many publications every input made.
func (p *Pipeline) Published() int64 {
	var n int64
	for i := range p.published {
		n += p.published[i].Load()
	}
	return n
}

// Count is one counter, for /metrics, the dashboard and the tests.
type Count struct {
	Source Source
	Reason Reason // meaningful for refusals only
	N      int64
}

// Counts returns the publications by source, and the refusals by source
// and reason (every pair, zeros included, so that series exist from the
// start).
func (p *Pipeline) Counts() (published, refused []Count) {
	for s := range numSources {
		published = append(published, Count{Source: s, N: p.published[s].Load()})
		for r := range numReasons {
			refused = append(refused, Count{Source: s, Reason: r, N: p.refused[s][r].Load()})
		}
	}
	return published, refused
}

// FromJSON is the message of a JSON publication (HTTP API, JSON unit):
// the one conversion from the public type. reply says whether its
// publisher reads the answer.
func FromJSON(m *publish.Message, reply bool) hub.Message {
	return hub.Message{Targets: m.Targets(), Exclude: m.Exclude, Event: m.Event, Data: []byte(m.Data), Reply: reply, Key: m.IdempotencyKey}
}
