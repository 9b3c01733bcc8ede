package hub

import (
	"context"
	"runtime"
	"sort"
	"time"
)

// Housekeeping costs what expires, not what exists. Trim looks only at the
// topics that may have something to drop:
//
//   - those appended to since the last trim (the count and size bounds,
//     and a topic's first events);
//   - those holding an event past -history-age, found from the retention
//     log, which is in publication (so time) order: a scan from where the
//     last one stopped;
//   - those that kept events past their bounds for a live subscriber that
//     had yet to read them, until it has.
//
// The hub's lock is released every trimChunk topics, so that publishing
// and delivering never wait for more than one chunk, however many topics
// exist.
type trims struct {
	queued []*topic // to look at (topic.queued)
	kept   []*topic // kept events for live subscribers: looked at again next time
	ageSeq uint64   // the events up to this one were scanned for age
	looked int      // topics the last trim looked at (tests)
	// held is when the trim last took the lock, and maxHold its longest
	// hold in the last trim (the lock-hold benchmark).
	held    time.Time
	maxHold time.Duration
}

// trimChunk is how many topics, or retained events scanned for age, one
// hold of the lock covers: about 0.1 ms of work.
const trimChunk = 256

func (q *trims) queue(t *topic) {
	if !t.queued && !t.dropped {
		t.queued = true
		q.queued = append(q.queued, t)
	}
}

// Run trims the history by age and count once a second until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.Trim()
		}
	}
}

// Trim applies the history bounds now to every topic that may need it.
func (h *Hub) Trim() {
	now := h.cfg.Now().UnixNano()
	cutoff := now - int64(h.cfg.HistoryAge)
	h.mu.Lock()
	q := &h.trims
	q.held, q.maxHold = time.Now(), 0
	defer func() {
		q.maxHold = max(q.maxHold, time.Since(q.held))
		h.mu.Unlock()
	}()
	// The topics kept last time, and the special ones, are looked at again.
	for _, t := range q.kept {
		q.queue(t)
	}
	clear(q.kept)
	q.kept = q.kept[:0]
	q.queue(h.all)
	q.queue(h.bcast)

	// Age: the events published up to cutoff that were not scanned yet.
	log := h.ret.log
	i := sort.Search(len(log), func(i int) bool { return log[i].Seq > q.ageSeq })
	for n := 0; i < len(log) && log[i].at <= cutoff; i, n = i+1, n+1 {
		if n == trimChunk {
			n = 0
			h.pause()
			log = h.ret.log // popped meanwhile: find the place again
			i = sort.Search(len(log), func(i int) bool { return log[i].Seq > q.ageSeq })
			if i == len(log) || log[i].at > cutoff {
				break
			}
		}
		ev := log[i]
		for _, t := range ev.topics {
			q.queue(t)
		}
		q.ageSeq = ev.Seq
	}

	// Look at the queued topics, a chunk per hold of the lock; those
	// published to meanwhile are queued again, for the next trim.
	work := q.queued
	q.queued = nil
	q.looked = len(work)
	for k, t := range work {
		if k > 0 && k%trimChunk == 0 {
			h.popReleased() // a chunk's worth: the log shrinks as it goes
			h.pause()
		}
		t.queued = false
		if t.dropped {
			continue
		}
		t.trim(&h.cfg, now)
		h.dropTopic(t)
		if len(t.entries) > 0 && (t.base < t.hist || t.entries[0].ev.at <= cutoff) {
			q.kept = append(q.kept, t) // a live subscriber has yet to read them
		}
	}
	clear(work)
	h.popReleased()
}

// pause lets publishers and owners take the lock between two chunks of
// housekeeping. Called with h.mu held.
func (h *Hub) pause() {
	q := &h.trims
	q.maxHold = max(q.maxHold, time.Since(q.held))
	h.mu.Unlock()
	runtime.Gosched()
	h.mu.Lock()
	q.held = time.Now()
}
