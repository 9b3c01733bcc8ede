package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// busLoop reads the log into the hub, in order, until ctx is done. After
// any error it joins again, which also notices a Redis that came back
// empty (a new epoch).
func (e *Engine) busLoop(ctx context.Context) {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for ctx.Err() == nil {
		err := e.join(ctx)
		for err == nil && ctx.Err() == nil {
			start := time.Now()
			var n int
			n, err = e.read(ctx)
			switch {
			case err != nil:
			case n == 0:
				err = e.join(ctx) // an idle second: check the dataset
			case n < busCount && e.waiting.Load() == 0:
				// Events are coming: let the next ones gather in Redis
				// rather than reading them one round trip each.
				pause.Reset(e.cfg.Coalesce - time.Since(start))
				select {
				case <-pause.C:
				case <-e.busWake:
				case <-ctx.Done():
				}
			}
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

// join reads (or creates) the dataset's epoch and head. The first time, it
// loads the recent log into the hub; later, a different epoch means Redis
// lost its data: the hub moves to the new epoch and tells live streams.
// The node is ready once it has done so.
func (e *Engine) join(ctx context.Context) error {
	if err := e.joinOnce(ctx); err != nil {
		return err
	}
	e.lastRead.Store(time.Now().UnixNano())
	e.setUp(true, nil)
	return nil
}

func (e *Engine) joinOnce(ctx context.Context) error {
	e.mu.Lock()
	pos := e.pos
	e.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, busGrace)
	defer cancel()
	start := time.Now()
	v, err := e.client.Do(cctx, e.client.B().Eval().Script(joinScript).Numkeys(1).Key(e.kMeta).
		Arg(strconv.FormatInt(time.Now().UnixMilli(), 10), strconv.FormatUint(pos, 10)).Build()).AsStrSlice()
	if err != nil {
		return fmt.Errorf("cluster join: %w", err)
	}
	if len(v) != 4 {
		return errors.New("cluster join: unexpected reply")
	}
	epoch, err1 := strconv.ParseUint(v[0], 10, 64)
	head, err2 := strconv.ParseUint(v[1], 10, 64)
	since, err3 := strconv.ParseUint(v[2], 10, 64)
	lost, err4 := strconv.ParseUint(v[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || epoch == 0 {
		return fmt.Errorf("cluster join: bad meta %q", v)
	}
	e.rtt(start)
	e.setUp(true, nil) // Redis answered: an answered publish need not wait for the bus to say so
	if !e.joined.Load() {
		if e.hub.Subscribers() == 0 {
			err = e.warm(ctx, epoch, head, lost)
			e.lost = lost
		} else {
			// Streams are open already (Redis was down at start): they are
			// live from here, and nothing older can be replayed.
			e.hub.Reset(epoch, head, "")
			e.hub.RaiseFloor(lost)
			e.mu.Lock()
			e.epoch, e.pos, e.lost = epoch, head, lost
			e.mu.Unlock()
		}
		if err != nil {
			return err
		}
		if err := e.loadRevocations(ctx); err != nil {
			return err
		}
		if err := e.loadMembers(cctx); err != nil {
			return err
		}
		e.joined.Store(true)
		close(e.joinedCh)
		e.log.Info("cluster: joined", "node", e.node, "epoch", strconv.FormatUint(epoch, 36), "seq", e.pos)
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if epoch != e.epoch {
		// Read the new dataset from its start: publications queued during
		// the outage may already be in it.
		e.pos, e.tag = e.newEpoch(epoch, since), ""
		e.lost = lost
		return nil
	}
	if head < e.pos {
		// Redis went back in time (restored from disk, or a failover to a
		// replica that lagged): entries this node applied are gone from it,
		// and nodes that did not read them cannot replay them. Mark them
		// lost for everyone (lostScript); the next entry links below this
		// node's position, and read resets its live streams.
		e.log.Warn("cluster: Redis rolled back; replays from before the lost events answer gap", "redis_seq", head, "applied", e.pos)
		if err := e.markLost(cctx, e.pos); err != nil {
			return err
		}
		lost = max(lost, e.pos)
	}
	if lost > e.lost {
		// Counted here, once per node, whichever node (or publish)
		// noticed the rollback and raised the mark.
		e.rollbacks.Add(1)
		e.lost = lost
		e.hub.RaiseFloor(lost)
	}
	return nil
}

// markLost records in Redis that events up to seq may be missing from the
// dataset (lostScript).
func (e *Engine) markLost(ctx context.Context, seq uint64) error {
	if err := e.client.Do(ctx, e.client.B().Eval().Script(lostScript).Numkeys(1).Key(e.kMeta).
		Arg(strconv.FormatUint(seq, 10)).Build()).Error(); err != nil {
		return fmt.Errorf("cluster: marking lost events: %w", err)
	}
	return nil
}

// newEpoch moves the hub to a new dataset whose entries follow before:
// what was not read before Redis lost its data is gone, so live streams get
// hasses-reset. It returns the position to read the new log from. Called
// with e.mu held.
func (e *Engine) newEpoch(epoch, before uint64) uint64 {
	pos := before
	e.epochs.Add(1)
	_, applied := e.hub.Head()
	if before <= applied {
		// The new numbers do not clear the old ones (a clock gone back):
		// events up to applied would be refused as out of order.
		e.log.Error("cluster: new epoch starts below the applied sequence", "seq", before, "applied", applied)
		before = applied + 1
	}
	e.hub.Reset(epoch, before, "gap")
	e.log.Warn("cluster: Redis lost its data; new epoch, live streams reset",
		"epoch", strconv.FormatUint(epoch, 36), "old_epoch", strconv.FormatUint(e.epoch, 36))
	e.epoch = epoch
	return pos
}

// warm loads the log's entries younger than the history age into the hub,
// so that this node can replay what was published before it started.
func (e *Engine) warm(ctx context.Context, epoch, head, lost uint64) error {
	from := "(" + strconv.FormatInt(time.Now().Add(-e.cfg.HistoryAge).UnixMilli()*1000, 10)
	first := true
	total := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, busBlock+busGrace)
		msgs, err := e.client.Do(cctx, e.client.B().Xrange().Key(e.kLog).Start(from).End("+").Count(warmPage).Build()).ToArray()
		cancel()
		var list []rawEntry
		if err == nil {
			list, err = rawEntries(msgs)
		}
		if err != nil {
			return fmt.Errorf("cluster warm-up: %w", err)
		}
		e.mu.Lock()
		for _, x := range list {
			en, err := parseEntry(x.id, x.h, x.m)
			if err != nil {
				e.badEntries.Add(1)
				e.skipAt, e.skipTo = e.pos, x.id // as in read
				continue
			}
			if first {
				// Everything up to this entry's predecessor is unknown here.
				e.hub.Reset(epoch, en.prev, "")
				e.epoch, e.pos = epoch, en.prev
				first = false
			}
			e.applyLocked(en)
			total++
		}
		e.mu.Unlock()
		if len(list) < warmPage {
			break
		}
		from = "(" + list[len(list)-1].id
	}
	e.mu.Lock()
	if first {
		e.hub.Reset(epoch, head, "")
		e.epoch, e.pos = epoch, head
	}
	e.mu.Unlock()
	if lost > 0 {
		e.hub.RaiseFloor(lost)
	}
	e.log.Info("cluster: history loaded from the log", "events", total)
	return nil
}

// read applies the next entries of the log; it returns how many it read.
func (e *Engine) read(ctx context.Context) (int, error) {
	e.mu.Lock()
	pos := e.pos
	from := strconv.FormatUint(pos, 10)
	if e.skipAt == pos && e.skipTo != "" {
		from = e.skipTo // past malformed entries, which do not move e.pos
	}
	e.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, busBlock+busGrace)
	defer cancel()
	start := time.Now()
	res, err := e.client.Do(cctx, e.client.B().Xread().Count(busCount).Block(busBlock.Milliseconds()).
		Streams().Key(e.kLog).Id(from).Build()).AsMap()
	if rueidis.IsRedisNil(err) {
		e.lastRead.Store(time.Now().UnixNano())
		return 0, nil
	}
	var list []rawEntry
	if err == nil {
		stream := res[e.kLog]
		msgs, _ := stream.ToArray()
		list, err = rawEntries(msgs)
	}
	if err != nil {
		return 0, fmt.Errorf("cluster bus: %w", err)
	}
	if time.Since(start) < busBlock/2 {
		e.rtt(start)
	}
	e.lastRead.Store(time.Now().UnixNano())
	e.setUp(true, nil)
	var lost uint64 // a rollback seen in the links: mark up to here lost
	e.mu.Lock()
	for _, x := range list {
		en, err := parseEntry(x.id, x.h, x.m)
		if err != nil {
			// An entry no node can deliver is skipped by every node alike:
			// no stream diverges from another, so none is reset. It does
			// not move e.pos, which the next entry's link is checked
			// against: an entry written outside the publish scripts is not
			// in the chain of links, and the next one links past it; if it
			// was in the chain (a publication that got corrupted), the
			// next entry links to it, and that break resets the live
			// streams once, as a trimmed log does.
			e.badEntries.Add(1)
			e.badLog.Log(e.log, slog.LevelError, "", "cluster: malformed log entries skipped", "id", x.id, "err", err)
			e.skipAt, e.skipTo = e.pos, x.id // the reply is in id order
			continue
		}
		if en.epoch != e.epoch {
			e.newEpoch(en.epoch, en.prev)
		} else if en.prev < e.pos || (en.prev == e.pos && en.prevTag != "" && e.tag != "" && en.prevTag != e.tag) {
			// The entry links back below what this node applied: Redis went
			// back in time (a failover to a replica that lagged). What this
			// node read past the link is gone from Redis: mark it lost, as
			// join does. And entries up to the link may be ones it never
			// read (published on the new master while this node still read
			// the old one): its live streams reset. A link to this node's
			// position from another entry than the one it read (two
			// masters numbered alike for a moment) is the same case.
			e.log.Warn("cluster: Redis rolled back; live streams reset, replays from before answer gap", "redis_seq", en.prev, "applied", e.pos)
			lost = e.pos
			if e.pos > e.lost {
				e.rollbacks.Add(1) // join will not count this mark again
				e.lost = e.pos
			}
			e.hub.Reset(0, en.seq-1, "gap") // raises the floors past the mark
		} else if en.prev != e.pos {
			// The log was trimmed past this node (it stalled longer than
			// the log is long): the entries in between are lost to it.
			e.gaps.Add(1)
			e.log.Warn("cluster: log trimmed past this node; live streams reset", "applied", e.pos, "next_prev", en.prev)
			e.hub.Reset(0, en.seq-1, "gap")
		}
		e.applyLocked(en)
	}
	if len(list) > 0 {
		e.lagNs.Store(max(0, time.Now().UnixNano()-int64(e.pos/1000)*int64(time.Millisecond)))
		close(e.appliedCh)
		e.appliedCh = make(chan struct{})
	}
	e.mu.Unlock()
	if lost > 0 {
		if err := e.markLost(cctx, lost); err != nil {
			return len(list), err
		}
	}
	return len(list), nil
}

// applyLocked hands one entry to the hub. Called with e.mu held.
func (e *Engine) applyLocked(en entry) {
	at := time.UnixMilli(int64(en.seq / 1000))
	if d := en.msg.Disconnect; d != nil && d.Revoke != nil && e.cfg.OnRevoke != nil {
		e.cfg.OnRevoke(d.User, *d.Revoke) // before its streams end: they may not come back
	}
	n, err := e.hub.Apply(en.seq, at, en.msg)
	if err != nil {
		e.orderErrors.Add(1)
		e.log.Error("cluster: entry not applied", "seq", en.seq, "err", err)
	}
	e.pos, e.tag = en.seq, en.tag
	if n, ok := e.ownUnit(en.tag); ok && n > e.unitsDone {
		e.unitsDone = n
		if en.origin == e.node {
			e.unitIDs[n] = reply{epoch: en.epoch, seq: en.seq}
			delete(e.unitIDs, n-min(n, 1024))
		}
	}
	if en.origin == e.node {
		e.own[en.seq] = n
		// Drop answers whose publisher stopped waiting, at most once a
		// second of sequence time.
		if len(e.own) > 1024 && e.pos > e.pruned+uint64(time.Second/time.Microsecond) {
			e.pruned = e.pos
			for s := range e.own {
				if s+uint64(10*time.Second/time.Microsecond) < e.pos {
					delete(e.own, s)
				}
			}
		}
	}
}

// ownUnit returns the unit number of a tag this node gave ("<node>:<n>").
func (e *Engine) ownUnit(tag string) (uint64, bool) {
	rest, ok := strings.CutPrefix(tag, e.node)
	if !ok || len(rest) < 2 || rest[0] != ':' {
		return 0, false
	}
	n, err := strconv.ParseUint(rest[1:], 10, 64)
	return n, err == nil
}
