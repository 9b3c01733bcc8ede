package cluster

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/sse"
)

// unit is one publication on its way to the sequencer.
type unit struct {
	m     hub.Message
	n     uint64 // this node's unit number, given at the first attempt
	async bool
	done  chan reply // synchronous units only
	// gone is set by a synchronous publisher that stopped waiting; a unit
	// never sent is then dropped.
	gone atomic.Bool
}

type reply struct{ epoch, seq uint64 }

// queue holds the units in the order they were published; one goroutine
// sends them, so units keep their order whatever happens to the
// connection.
type queue struct {
	mu     sync.Mutex
	units  []*unit
	async  int    // fire-and-forget units queued
	nextN  uint64 // last unit number given
	sig    chan struct{}
	warned time.Time
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.units)
}

// publish is the hub's remote publisher. A unit of the control port's line
// protocol or of the FIFO (a message with Target, not Targets) expects no
// answer: it is queued, in order, and delivered when Redis is reachable,
// up to the queue bound. A publication that is answered (HTTP API, JSON
// units) waits for its id, and is refused at once when Redis is down, so
// that the publisher can retry.
func (e *Engine) publish(m hub.Message) (hub.Result, error) {
	async := len(m.Targets) == 0
	if !async && !e.up.Load() {
		e.unavailable.Add(1)
		return hub.Result{}, hub.ErrUnavailable
	}
	u := &unit{m: m, async: async}
	if !async {
		u.done = make(chan reply, 1)
	}
	q := &e.q
	q.mu.Lock()
	if async {
		if q.async >= e.cfg.Queue {
			warn := time.Since(q.warned) > 10*time.Second
			if warn {
				q.warned = time.Now()
			}
			q.mu.Unlock()
			if e.dropped.Add(1); warn {
				e.log.Warn("cluster: publish queue full while Redis is unreachable: dropping control units",
					"queue", e.cfg.Queue, "dropped_total", e.dropped.Load())
			}
			// Counted and logged here, at most every 10 s: no error for the
			// control handler to log once per unit.
			return hub.Result{}, nil
		}
		q.async++
	}
	q.units = append(q.units, u)
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
	if async {
		return hub.Result{}, nil
	}
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case r := <-u.done:
		return e.result(r), nil
	case <-t.C:
		u.gone.Store(true)
		select {
		case r := <-u.done: // answered as the timer fired
			return e.result(r), nil
		default:
		}
		e.unavailable.Add(1)
		return hub.Result{}, hub.ErrUnavailable
	}
}

// result waits (briefly) for this node to apply its own publication, so
// that the answer counts the node's receivers and a page served by this
// node already has the event.
func (e *Engine) result(r reply) hub.Result {
	if r.seq == 0 {
		return hub.Result{} // a retried unit whose first id is forgotten
	}
	res := hub.Result{ID: sse.ID{Epoch: r.epoch, Seq: r.seq}.String()}
	deadline := time.NewTimer(applyWait)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		if e.pos >= r.seq || e.epoch != r.epoch {
			res.Receivers = e.own[r.seq]
			delete(e.own, r.seq)
			e.mu.Unlock()
			return res
		}
		ch := e.appliedCh
		e.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return res
		}
	}
}

// next returns the units to send now, oldest first, giving unit numbers to
// those never sent; it blocks until there is one or ctx is done.
func (q *queue) next(ctx context.Context) []*unit {
	for {
		q.mu.Lock()
		// Units never sent whose publisher gave up are dropped; once sent,
		// a unit must be resent until Redis answers, for the order.
		k := 0
		for k < len(q.units) && q.units[k].n == 0 && q.units[k].gone.Load() {
			k++
		}
		q.drop(k)
		if len(q.units) > 0 {
			batch := q.units[:min(len(q.units), maxBatch)]
			for _, u := range batch {
				if u.n == 0 {
					q.nextN++
					u.n = q.nextN
				}
			}
			q.mu.Unlock()
			return batch
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-q.sig:
		}
	}
}

// drop removes the k oldest units. Called with q.mu held.
func (q *queue) drop(k int) {
	for _, u := range q.units[:k] {
		if u.async {
			q.async--
		}
	}
	clear(q.units[:k])
	q.units = q.units[k:]
	if len(q.units) == 0 {
		q.units = nil
	}
}

func (q *queue) done(k int) {
	q.mu.Lock()
	q.drop(k)
	q.mu.Unlock()
}

// sendLoop sends the queued units to the sequencer, in order, in pipelined
// batches on one connection, until ctx is done. A batch that fails part way
// is resent from the first unit without a reply; the publish record in
// Redis makes the units that did run no-ops.
func (e *Engine) sendLoop(ctx context.Context) {
	for {
		batch := e.q.next(ctx)
		if batch == nil {
			return
		}
		cmds := make(rueidis.Commands, len(batch))
		e.mu.Lock()
		minSeq := strconv.FormatUint(e.pos, 10)
		e.mu.Unlock()
		newEpoch := strconv.FormatInt(time.Now().UnixMilli(), 10)
		for i, u := range batch {
			targets := u.m.Targets
			if len(targets) == 0 {
				targets = []string{u.m.Target}
			}
			lookup := "0"
			if u.gone.Load() {
				lookup = "1" // its publisher was answered 503: publish it only if it already was
			}
			origin := ""
			if !u.async {
				origin = e.node // the bus records its receivers for the waiting publisher
			}
			cmds[i] = e.client.B().Eval().Script(publishScript).Numkeys(3).Key(e.kMeta, e.kLog, e.kPub).
				Arg(newEpoch, strconv.Itoa(e.cfg.LogLength), strconv.FormatUint(u.n, 10), minSeq,
					encodeTargets(targets), u.m.Exclude, u.m.Event, string(u.m.Data), origin, lookup, e.node).Build()
		}
		cctx, cancel := context.WithTimeout(ctx, publishTimeout)
		start := time.Now()
		resps := e.client.DoMulti(cctx, cmds...)
		cancel()
		ok := 0
		var err error
		for i, r := range resps {
			var v []string
			if v, err = r.AsStrSlice(); err != nil || len(v) != 2 {
				break
			}
			ep, err1 := strconv.ParseUint(v[0], 10, 64)
			seq, err2 := strconv.ParseUint(v[1], 10, 64)
			if err1 != nil || err2 != nil {
				break
			}
			if u := batch[i]; u.done != nil {
				u.done <- reply{epoch: ep, seq: seq}
			}
			ok++
		}
		e.q.done(ok)
		if ok == len(batch) {
			e.rtt(start)
			e.setUp(true, nil)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		e.setUp(false, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryDelay):
		}
	}
}
