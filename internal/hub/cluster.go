package hub

import (
	"errors"
	"time"

	"github.com/hasses-go/hasses/internal/sse"
)

// The cluster engine (internal/cluster) sequences publications in Redis and
// feeds them back, in sequence order, through Apply. The hub then acts as
// the node's cache of the cluster's event log: live streams and replays are
// served from it exactly as on a single node.

// ErrOrder is returned by Apply for a sequence number that is not above
// every event already applied.
var ErrOrder = errors.New("hub: sequence number not above the last applied one")

// ErrUnavailable is returned by Publish in a cluster whose engine cannot
// reach its sequencer (Redis): the publisher should retry later.
var ErrUnavailable = errors.New("cluster unavailable (Redis unreachable), retry later")

// ErrReplica is returned by Publish on a hub that a cluster feeds: a
// publication must go to the cluster engine, which numbers it.
var ErrReplica = errors.New("hub: a cluster numbers this hub's events: publish through the cluster engine")

// SetReplica makes the hub a replica of a cluster's log: its events come
// only through Apply, and Publish refuses. Call it once, before serving.
func (h *Hub) SetReplica() { h.replica = true }

// Apply publishes m as event seq of the current epoch, published at time at.
// seq must be above every event applied so far, and m must have passed
// Validate. It returns how many subscribers the event was routed to.
func (h *Hub) Apply(seq uint64, at time.Time, m Message) (int, error) {
	h.mu.Lock()
	if seq <= h.seq {
		h.mu.Unlock()
		return 0, ErrOrder
	}
	h.seq = seq
	_, receivers := h.publishLocked(seq, at.UnixNano(), m)
	h.mu.Unlock()

	h.wakeOwners()
	h.published.Add(1)
	return receivers, nil
}

// Head returns the epoch and the sequence number of the newest event.
func (h *Hub) Head() (epoch, seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg.Epoch, h.seq
}

// Reset records that this hub may lack events up to seq: the cluster's
// dataset changed (epoch), its log was trimmed past this node, or the node
// joined late. The epoch becomes epoch (when not zero); every topic's floor
// rises to seq, so a replay from an older id answers gap (or unknown, for
// another epoch), never complete. When seq is above the newest event, the
// hub moves to seq and, if reason is not empty, every live stream receives
// an event named hasses-reset with id epoch-seq and data reason, so that a
// page resynchronises instead of showing a hole. It reports whether the
// event was sent.
func (h *Hub) Reset(epoch, seq uint64, reason string) bool {
	h.mu.Lock()
	if epoch != 0 {
		h.cfg.Epoch = epoch
	}
	h.raiseFloor(seq)
	sent := false
	if seq > h.seq {
		h.seq = seq
		if reason != "" && h.nsubs > 0 {
			id := sse.ID{Epoch: h.cfg.Epoch, Seq: seq}
			ev := h.encode(id, Message{Event: "hasses-reset", Data: []byte(reason)}, h.cfg.Now().UnixNano())
			h.append(h.bcast, ev)
			h.append(h.all, ev)
			h.retain(ev)
			sent = true
		}
	}
	h.mu.Unlock()
	h.wakeOwners()
	return sent
}

// RaiseFloor records that events up to seq may be missing from this hub,
// without moving its head: a replay from an older id answers gap.
func (h *Hub) RaiseFloor(seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.raiseFloor(seq)
}

func (h *Hub) raiseFloor(seq uint64) {
	h.lostSeq = max(h.lostSeq, seq)
	h.resetFloor = max(h.resetFloor, seq)
}

// Subscribers returns how many streams the hub serves.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nsubs
}
