package stream

import (
	"strconv"
	"time"

	"github.com/hasses-go/hasses/internal/chunked"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/sse"
)

// Writer moves bytes to one client.
type Writer interface {
	// Write writes bufs in order and returns how many bytes it took. A
	// writer that would block returns a short count and a nil error; the
	// stream then waits until Unblock. A writer that blocks returns a
	// short count only with an error.
	Write(bufs [][]byte) (int, error)
}

// Status is what a Flush left behind.
type Status uint8

const (
	// Waiting: everything pending is written.
	Waiting Status = iota
	// Blocked: the writer took part of it; call Unblock and Flush again
	// once the connection is writable.
	Blocked
	// Finished: the stream's last bytes (or the answer) are written.
	Finished
	// Failed: a write failed, or the client is too slow: close now.
	Failed
)

// Action is what a Tick asks the front end to do.
type Action uint8

const (
	None  Action = iota
	Flush        // something was queued or the stream began to end
	Close        // close the connection now
)

// Scratch is the working memory of Flush, reused across streams by one
// goroutine (an epoll loop) or owned by one stream.
type Scratch struct {
	Batch  hub.Batch
	Writes int64 // writes that carried events, for Core.AddWrites
	bufs   [1][]byte
}

// Stream is one event stream. The zero value is closed; Core.Open opens it.
// It is kept small: tens of thousands live at once.
type Stream struct {
	core     *Core
	sub      *hub.Sub
	out      []byte // the stream's own bytes (head, preamble, heartbeat, end), written before events
	outOff   int32
	endRetry int32  // milliseconds of the retry hint sent with the end
	chunked  bool   // frame own bytes as HTTP/1.1 chunks and end with the last chunk
	initID   bool   // the opening id is a block of its own (initid=1, the default)
	blocked  bool   // the writer would block; wait for Unblock
	ending   bool   // takes no more events: the rest of the current one, then the end
	ended    bool   // the end is queued: Finished once out is written
	grant    bool   // deadline is when the subscriber token expires
	why      Reason // why it ends, for the Observer
	endSeq   uint64 // an ending stream takes the events published up to here
	// deadline is the end of the stream's lifetime or grant; once ending,
	// the time by which its last bytes must be written.
	// Times are Unix nanoseconds (zero: none): a time.Time is three
	// times the size, and tens of thousands of streams live at once.
	deadline  int64
	lastWrite int64
	// expiring is the grant's expiry while its hasses-expiring event is to
	// come (at expiring-RenewBefore); negated once due while the stream is
	// in the middle of an event, to go out at the next event boundary;
	// zero: none, or sent.
	expiring int64
}

var (
	heartbeatText  = sse.AppendComment(nil, "")
	heartbeatChunk = chunked.Append(nil, heartbeatText)
)

// Sub returns the hub subscription; nil once closed.
func (st *Stream) Sub() *hub.Sub { return st.sub }

// Tokens returns the tokens the stream subscribed to; nil once closed.
func (st *Stream) Tokens() []string {
	if st.sub == nil {
		return nil
	}
	return st.core.hub.Tokens(st.sub)
}

// Deadline returns when Tick must next run for a deadline: the
// hasses-expiring event, the end of the lifetime or grant, or, once ending,
// the end of the linger time.
func (st *Stream) Deadline() time.Time {
	if w := st.warnAt(); w != 0 && w < st.deadline {
		return time.Unix(0, w)
	}
	return fromNanos(st.deadline)
}

// Ends returns when the stream's bytes must be written by: the end of the
// lifetime or grant, or, once ending, the end of the linger time. Unlike
// Deadline, never the time of an event to send.
func (st *Stream) Ends() time.Time { return fromNanos(st.deadline) }

// warnAt returns when the hasses-expiring event is due (Unix nanoseconds),
// zero when there is none to send.
func (st *Stream) warnAt() int64 {
	if st.expiring <= 0 || st.ending || st.ended {
		return 0
	}
	return st.expiring - int64(st.core.cfg.RenewBefore)
}

// appendExpiring appends the hasses-expiring event, without an id: it is
// the stream's own, not in the log, so the client's last id stays the
// stream's position. It is sent once.
func (st *Stream) appendExpiring(text []byte) []byte {
	exp := st.expiring
	if exp < 0 {
		exp = -exp
	}
	st.expiring = 0
	text = append(text, "event: hasses-expiring\ndata: {\"exp\":"...)
	text = strconv.AppendInt(text, exp/int64(time.Second), 10)
	return append(text, "}\n\n"...)
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Idle reports whether nothing is queued or half-written, so that a
// heartbeat or a new head may be written without cutting into an event.
func (st *Stream) Idle() bool {
	return !st.blocked && int(st.outOff) == len(st.out) && (st.sub == nil || !st.sub.Pending())
}

// Start queues the response head (nil when the front end writes it its own
// way) and the preamble: the retry hint; for a stream opened without
// Last-Event-ID, the id it would resume from, so that a client cut before
// the first event resumes from the moment its stream opened; and, when the
// requested replay is not complete, a hasses-reset event whose id is where
// the stream resumes, so that the page can resynchronise and a reconnect
// does not send the unusable id again. A grant that expires within
// RenewBefore gets its hasses-expiring event at once, after the preamble. A
// stream on presence tokens then gets their members (hasses-presence).
//
// Only the opening id (with initid=1) ends a data-less block: EventSource
// then takes the id without dispatching an event. The retry line otherwise
// joins the next block (see package sse).
func (st *Stream) Start(head []byte, replay hub.Replay) {
	snapshot := st.out // from Open: the members of its presence tokens
	// The preamble is built on the stack and st.out allocated once, at its
	// size: appends from nothing would leave garbage in every size class
	// on the way, among the connections' and subscriptions' own, and a
	// burst of connections would leave those spans half empty.
	var pre [128]byte
	text := pre[:0]
	if r := st.core.cfg.Retry; r > 0 {
		text = sse.AppendRetry(text, r.Milliseconds())
	}
	switch replay {
	case hub.ReplayNone:
		var id [48]byte
		text = sse.AppendID(text, st.core.hub.CursorEventID(st.sub).AppendTo(id[:0]), st.initID)
	case hub.ReplayGap, hub.ReplayUnknown:
		id := st.core.hub.CursorID(st.sub)
		text = sse.AppendEvent(text, []byte(id), "hasses-reset", []byte(replay.String()))
	}
	if w := st.warnAt(); w != 0 && w <= st.lastWrite { // lastWrite: when Open ran
		text = st.appendExpiring(text)
	}
	if len(text) == 0 && len(snapshot) > 0 {
		text, snapshot = snapshot, nil
	}
	if len(text) == 0 {
		// A body byte at once: a proxy speaking HTTP/2 to the browser
		// (nginx) holds the response head until the first body bytes, and
		// the page's EventSource would stay "connecting" until the first
		// heartbeat.
		text = heartbeatText
	}
	st.out = append(make([]byte, 0, len(head)+len(text)+len(snapshot)+2*(chunked.MaxHeader+len(chunked.Trailer))), head...)
	st.queue(text)
	if len(snapshot) > 0 {
		st.queue(snapshot) // a block (and chunk) of its own
	}
}

// queue appends SSE text to the stream's own bytes, framed for its
// transport.
func (st *Stream) queue(text []byte) {
	if st.chunked {
		st.out = chunked.Append(st.out, text)
	} else {
		st.out = append(st.out, text...)
	}
}

// answer queues a complete answer on a connection without a stream.
func (st *Stream) answer(core *Core, resp []byte, now time.Time) {
	*st = Stream{core: core, out: resp, ended: true, lastWrite: now.UnixNano(), deadline: now.Add(Linger).UnixNano()}
}

// Blocked reports whether the stream waits for its connection to become
// writable.
func (st *Stream) Blocked() bool { return st.blocked }

// Unblock tells the stream that its connection is writable again.
func (st *Stream) Unblock() { st.blocked = false }

// Flush writes what is pending: the stream's own bytes, then events from
// the hub, until the writer would block or nothing is left. Past its
// deadline a stream takes no more events: it finishes the event it is in
// the middle of, ends, and is Finished.
func (st *Stream) Flush(w Writer, sc *Scratch, now time.Time) Status {
	b := &sc.Batch
	for !st.blocked {
		if int(st.outOff) < len(st.out) {
			sc.bufs[0] = st.out[st.outOff:]
			n, err := w.Write(sc.bufs[:])
			sc.bufs[0] = nil
			if n > 0 {
				st.lastWrite = now.UnixNano()
			}
			st.outOff += int32(n)
			if err != nil {
				return Failed
			}
			if int(st.outOff) < len(st.out) {
				st.blocked = true
				return Blocked
			}
			st.out, st.outOff = nil, 0
		}
		if st.ended {
			return Finished
		}
		if st.sub == nil {
			return Waiting
		}
		if !st.ending && now.UnixNano() >= st.deadline {
			st.because(st.deadlineReason())
			st.End(0, now)
		}
		if st.expiring < 0 && !st.ending && !st.sub.Pending() { // at an event boundary
			st.queue(st.appendExpiring(nil))
			continue
		}
		if st.ending {
			if st.core.hub.FillUntil(st.sub, b, MaxWriteBufs, MaxWriteBytes, st.endSeq) {
				st.because(Lagging)
				st.core.lagged.Add(1)
				return Failed
			}
			if len(b.Bufs) == 0 {
				if st.endRetry > 0 {
					st.queue(sse.AppendRetry(nil, int64(st.endRetry)))
				}
				if st.chunked {
					st.out = append(st.out, chunked.Last...)
				}
				st.ended = true
				continue
			}
		} else if st.core.hub.Fill(st.sub, b, MaxWriteBufs, MaxWriteBytes) {
			st.because(Lagging)
			st.core.lagged.Add(1)
			st.core.cfg.Logger.Debug("closing a slow subscriber: over the lag limit", "id", st.sub.ID)
			return Failed
		} else if len(b.Bufs) == 0 {
			return Waiting
		}
		n, err := w.Write(b.Bufs)
		sc.Writes++
		st.sub.Wrote(b, n)
		if n > 0 {
			st.lastWrite = now.UnixNano()
		}
		if err != nil {
			return Failed
		}
		if n < b.Bytes {
			st.blocked = true
			return Blocked
		}
		if !st.ending && st.sub.Ended() { // a disconnection was its last event
			st.because(Disconnect)
			st.ending, st.endSeq = true, st.sub.Cursor()
			st.deadline = now.Add(Linger).UnixNano()
			continue
		}
		// Everything pending was written, unless a due hasses-expiring
		// waited for this event's end.
		if !st.ending && len(b.Bufs) < MaxWriteBufs && b.Bytes < MaxWriteBytes && st.expiring >= 0 {
			return Waiting
		}
	}
	return Blocked
}

// Tick enforces the deadlines and the slow-consumer policy and sends
// heartbeats and the hasses-expiring event. Front ends call it at
// Deadline, and at least once a second for heartbeats and blocked streams.
func (st *Stream) Tick(now time.Time) Action {
	if st.sub == nil && !st.ended {
		return None
	}
	cfg := &st.core.cfg
	if w := st.warnAt(); w != 0 && now.UnixNano() >= w {
		// Due. In the middle of an event, Flush sends it once the event is
		// written, and Deadline moves on to the end.
		st.expiring = -st.expiring
	}
	if st.expiring < 0 && !st.ending && now.UnixNano() < st.deadline && st.Idle() {
		st.queue(st.appendExpiring(nil))
		return Flush
	}
	idle := time.Duration(now.UnixNano() - st.lastWrite)
	switch {
	case now.UnixNano() >= st.deadline:
		if st.ending || st.ended {
			return Close // it never took its last bytes
		}
		st.because(st.deadlineReason())
		st.End(0, now)
		return Flush
	case st.blocked:
		if idle >= cfg.WriteTimeout {
			st.because(Lagging)
			st.core.stalled.Add(1)
			st.core.cfg.Logger.Debug("closing a stalled stream: no write progress", "after", cfg.WriteTimeout)
			return Close
		}
		if st.sub != nil && !st.ending && st.core.hub.Lagging(st.sub) {
			st.because(Lagging)
			st.core.lagged.Add(1)
			st.core.cfg.Logger.Debug("closing a slow subscriber: over the lag limit", "id", st.sub.ID)
			return Close
		}
	case cfg.Heartbeat > 0 && st.sub != nil && !st.ending && idle >= cfg.Heartbeat && st.Idle():
		if st.chunked {
			st.out = append(st.out, heartbeatChunk...)
		} else {
			st.out = append(st.out, heartbeatText...)
		}
		return Flush
	}
	return None
}

// HeartbeatDue returns when Tick may next have a heartbeat to send, for
// front ends that sleep until then; zero without heartbeats.
func (st *Stream) HeartbeatDue() time.Time {
	if hb := st.core.cfg.Heartbeat; hb > 0 {
		return time.Unix(0, st.lastWrite).Add(hb)
	}
	return time.Time{}
}

// End makes the stream take no events published from now on: it writes
// those published before, sends retry (if non-zero) and ends. It must take
// its last bytes within Linger.
func (st *Stream) End(retry time.Duration, now time.Time) {
	if st.ending || st.ended || st.sub == nil {
		return
	}
	st.ending = true
	st.endRetry = int32(retry.Milliseconds())
	st.endSeq = st.core.hub.LastSeq()
	st.deadline = now.Add(Linger).UnixNano()
}

// Drain ends the stream for a graceful shutdown, with a randomised retry
// hint.
func (st *Stream) Drain(now time.Time) Action {
	st.because(Shutdown)
	st.End(DrainRetry(), now)
	return Flush
}

// Close unsubscribes the stream and drops what it holds. It may be called
// more than once.
func (st *Stream) Close() {
	if st.sub != nil {
		ob := st.core.cfg.Observer
		var info StreamInfo
		if ob != nil {
			info = st.info() // while subscribed: its tokens are its topics'
		}
		st.core.hub.Unsubscribe(st.sub)
		st.core.streams.Add(-1)
		if ob != nil {
			ob.Ended(info, st.why)
		}
	}
	core := st.core
	*st = Stream{core: core}
}
