package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

type reply struct {
	epoch, seq uint64
	dup        bool // an idempotency key published before: the first's id
	receivers  int  // with dup: the first publication's receivers
}

// queue holds the units in the order they were published; one goroutine
// sends them, so units keep their order whatever happens to the
// connection.
type queue struct {
	mu     sync.Mutex
	units  []*unit
	async  int    // fire-and-forget units queued
	sync   int    // units whose publisher waits for the answer
	nextN  uint64 // last unit number given
	sig    chan struct{}
	warned time.Time
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.units)
}

// Publish has the cluster number m (the publication pipeline calls it in
// place of the hub's). A message whose publisher expects no answer
// (m.Reply unset: a control line or a FIFO unit) is queued, in order, and
// delivered when Redis is reachable, up to the queue bound. One that is
// answered (HTTP API, JSON units) waits for its id, and is refused at once
// when Redis is down, so that the publisher can retry.
func (e *Engine) Publish(m hub.Message) (hub.Result, error) {
	async := !m.Reply
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
	} else {
		q.sync++
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
	// Have the bus read now, so that it is already waiting in XREAD when
	// the event lands in the log.
	select {
	case e.busWake <- struct{}{}:
	default:
	}
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case r := <-u.done:
		return e.result(r, m.Key), nil
	case <-t.C:
		u.gone.Store(true)
		select {
		case r := <-u.done: // answered as the timer fired
			return e.result(r, m.Key), nil
		default:
		}
		e.unavailable.Add(1)
		return hub.Result{}, hub.ErrUnavailable
	}
}

// result waits (briefly) for this node to apply its own publication, so
// that the answer counts the node's receivers and a page served by this
// node already has the event. A keyed publication's receivers are then
// recorded for its duplicates.
func (e *Engine) result(r reply, key string) hub.Result {
	if r.seq == 0 {
		return hub.Result{} // a retried unit whose first id is forgotten
	}
	res := hub.Result{ID: sse.ID{Epoch: r.epoch, Seq: r.seq}.String()}
	if r.dup {
		res.Receivers, res.Duplicate = r.receivers, true
		return res
	}
	if key != "" {
		defer func() { e.recordReceivers(key, r, res.Receivers) }()
	}
	deadline := time.NewTimer(applyWait)
	defer deadline.Stop()
	// The bus does not pause while a publisher waits for it.
	e.waiting.Add(1)
	defer e.waiting.Add(-1)
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
		case e.busWake <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-deadline.C:
			return res
		}
	}
}

// next returns the units to send now, oldest first, giving unit numbers to
// those never sent; it blocks until there is one or ctx is done. Before
// notBefore, it holds back a batch of fire-and-forget units only (a
// waiting publisher is sent at once).
func (q *queue) next(ctx context.Context, notBefore time.Time, pause *time.Timer) []*unit {
	for {
		q.mu.Lock()
		// Units never sent whose publisher gave up are dropped; once sent,
		// a unit must be resent until Redis answers, for the order.
		k := 0
		for k < len(q.units) && q.units[k].n == 0 && q.units[k].gone.Load() {
			k++
		}
		q.drop(k)
		if wait := time.Until(notBefore); wait > 0 && q.sync == 0 && len(q.units) > 0 && len(q.units) < maxBatch {
			q.mu.Unlock()
			pause.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-pause.C:
				notBefore = time.Time{}
			case <-q.sig:
			}
			continue
		}
		if len(q.units) > 0 {
			k, size := 0, 0
			for k < min(len(q.units), maxBatch) && (k == 0 || size < maxBatchBytes) {
				u := q.units[k]
				if u.n == 0 {
					q.nextN++
					u.n = q.nextN
				}
				size += len(u.m.Data)
				k++
			}
			q.mu.Unlock()
			return q.units[:k]
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
		} else {
			q.sync--
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

// sendLoop sends the queued units to the sequencer, in order, one batch
// per script call, on a connection of its own, until ctx is done. A batch
// that fails is resent whole; the publish record in Redis makes the units
// that did run no-ops that answer their first id.
func (e *Engine) sendLoop(ctx context.Context) {
	pause := time.NewTimer(0)
	defer pause.Stop()
	var last time.Time
	var args []string
	for {
		batch := e.q.next(ctx, last.Add(e.cfg.Coalesce), pause)
		if batch == nil {
			return
		}
		if batch = e.settle(batch); len(batch) == 0 {
			continue
		}
		last = time.Now()
		e.mu.Lock()
		minSeq := strconv.FormatUint(e.pos, 10)
		e.mu.Unlock()
		args = append(args[:0], strconv.FormatInt(time.Now().UnixMilli(), 10), strconv.Itoa(e.cfg.LogLength), minSeq, e.node,
			strconv.FormatInt(e.cfg.IdempotencyWindow.Milliseconds(), 10), strconv.Itoa(hub.MaxIdempotencyKeys))
		for _, u := range batch {
			lookup := "0"
			if u.gone.Load() {
				lookup = "1" // its publisher was answered 503: publish it only if it already was
			}
			origin := ""
			if !u.async {
				origin = e.node // the bus records its receivers for the waiting publisher
			}
			args = append(args, strconv.FormatUint(u.n, 10), encodeBody(origin, u.m), lookup, u.m.Key)
		}
		cctx, cancel := context.WithTimeout(ctx, publishTimeout)
		start := time.Now()
		v, err := e.pub.Do(cctx, e.pub.B().Eval().Script(publishScript).Numkeys(5).Key(e.kMeta, e.kLog, e.kPub, e.kIdem, e.kIdemV).
			Arg(args...).Build()).AsStrSlice()
		cancel()
		clear(args) // the bodies
		var replies []reply
		if err == nil {
			replies, err = parseReplies(v, len(batch))
		}
		if err == nil {
			for i, u := range batch {
				if u.done != nil {
					u.done <- replies[i]
				}
			}
			e.q.done(len(batch))
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

// settle completes the units at the head of batch that the bus has
// already seen in the log (their reply was lost with the connection), and
// returns the rest.
func (e *Engine) settle(batch []*unit) []*unit {
	e.mu.Lock()
	k := 0
	for ; k < len(batch) && batch[k].n <= e.unitsDone; k++ {
		if u := batch[k]; u.done != nil {
			u.done <- e.unitIDs[u.n] // {0, 0} if forgotten: answered without an id
		}
	}
	e.mu.Unlock()
	e.q.done(k)
	return batch[k:]
}

// parseReplies reads the publish script's answer for n units.
func parseReplies(v []string, n int) ([]reply, error) {
	if len(v) != 4*n {
		return nil, fmt.Errorf("cluster publish: %d values for %d units", len(v), n)
	}
	out := make([]reply, n)
	for i := range out {
		w := v[4*i : 4*i+4]
		ep, err1 := strconv.ParseUint(w[0], 10, 64)
		seq, err2 := strconv.ParseUint(w[1], 10, 64)
		rc, err3 := strconv.Atoi(w[3])
		if err1 != nil || err2 != nil || err3 != nil || (w[2] != "0" && w[2] != "1") {
			return nil, fmt.Errorf("cluster publish: bad reply %q", w)
		}
		out[i] = reply{epoch: ep, seq: seq, dup: w[2] == "1", receivers: rc}
	}
	return out, nil
}

// recordReceivers stores the receivers of a keyed publication in Redis,
// for its duplicates to answer (on any node).
func (e *Engine) recordReceivers(key string, r reply, receivers int) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	v := fmt.Sprintf("%d %d %d", r.epoch, r.seq, receivers)
	if err := e.pub.Do(ctx, e.pub.B().Eval().Script(recordScript).Numkeys(1).Key(e.kIdemV).Arg(key, v).Build()).Error(); err != nil {
		e.log.Debug("cluster: recording a keyed publication's receivers", "err", err)
	}
}
