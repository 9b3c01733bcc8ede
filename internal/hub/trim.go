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
// The hub's lock is released after a bounded amount of work, so that
// publishing and delivering never wait for more than one chunk, however
// many topics or events exist.
type trims struct {
	queued []*topic // to look at (topic.queued)
	kept   []*topic // kept events for live subscribers: looked at again next time
	ageSeq uint64   // the events up to this one were scanned for age
	looked int      // topics the last trim looked at (tests)
	runs   uint64   // trims begun (releaseTopic)
	// held is when the trim last took the lock, and maxHold its longest
	// hold in the last trim (the lock-hold benchmark).
	held    time.Time
	maxHold time.Duration
}

// trimBudget is how much work one hold of the lock covers, counted in
// topics looked at and entries dropped: about 0.1 ms.
const trimBudget = 1024

func (q *trims) queue(t *topic) {
	if !t.queued && !t.dropped {
		t.queued = true
		q.queued = append(q.queued, t)
	}
}

// Run trims the history by age and count once a second, and sends the
// presence leaves that are due ten times a second, until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	leaves := time.NewTicker(presenceTick)
	defer leaves.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.Trim()
		case <-leaves.C:
			h.ExpirePresence()
		}
	}
}

// Trim applies the history bounds now to every topic that may need it.
func (h *Hub) Trim() {
	now := h.cfg.Now().UnixNano()
	cutoff := now - int64(h.cfg.HistoryAge)
	h.mu.Lock()
	q := &h.trims
	q.held, q.maxHold, q.looked = time.Now(), 0, 0
	q.runs++
	defer h.wakeOwners() // leave events
	defer func() {
		q.maxHold = max(q.maxHold, time.Since(q.held))
		h.mu.Unlock()
	}()
	h.expirePresence(now)
	spent := 0
	// look trims t within the budget; what it could not finish, and what
	// was published meanwhile, waits in q.queued.
	look := func(t *topic) {
		if t.dropped {
			return
		}
		q.looked++
		dropped, more := t.trim(&h.cfg, now, trimBudget, &h.ret)
		spent += 1 + dropped
		if more {
			q.queue(t)
			return
		}
		h.dropTopic(t)
		if len(t.entries) > 0 && (t.base < t.hist || t.entries[0].ev.at <= cutoff) {
			q.kept = append(q.kept, t) // a live subscriber has yet to read them
		}
	}
	yield := func() {
		if spent >= trimBudget {
			h.popSome(trimBudget)
			h.pause()
			spent = 0
		}
	}

	h.dropLingering(func() { spent++; yield() })

	// The topics kept last time, and the special ones, are looked at again.
	for _, t := range q.kept {
		q.queue(t)
	}
	clear(q.kept)
	q.kept = q.kept[:0]
	q.queue(h.all)
	q.queue(h.bcast)

	// Age: the topics of the events published up to cutoff that were not
	// scanned yet, trimmed as they are found.
	var holders [4]*topic
	for {
		log := h.ret.log // popped during a pause: find the place again
		i := sort.Search(len(log), func(i int) bool { return log[i].Seq > q.ageSeq })
		if i == len(log) || log[i].at > cutoff {
			break
		}
		ev := log[i]
		q.ageSeq = ev.Seq
		for _, t := range append(holders[:0], ev.topics...) { // trimming changes ev.topics
			if !t.queued {
				look(t)
			}
		}
		yield()
	}

	// Then the topics published to since the last trim, and those queued
	// above; a topic with more to drop comes back at the end.
	for len(q.queued) > 0 {
		work := q.queued
		q.queued = nil
		for _, t := range work {
			t.queued = false
			look(t)
			yield()
		}
		clear(work)
	}
	for h.popSome(trimBudget) {
		h.pause()
	}
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
