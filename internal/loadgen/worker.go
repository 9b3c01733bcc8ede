package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// WorkerConfig is what one worker process runs: subscribers First to
// First+Count-1 of the whole run.
type WorkerConfig struct {
	// Addrs are the servers' SSE ports (IPv4 host:port): subscriber i
	// connects to Addrs[i%len(Addrs)] and reconnects to the next one, so a
	// cluster's nodes share the streams and replay each other's ids.
	Addrs []string `json:"addrs"`
	Path  string   `json:"path"`
	First int      `json:"first"`
	Count int      `json:"count"`
	Subs  int      `json:"subs"` // streams of the whole run (picks the storm's and the churn's)
	// Tokens is how many tokens there are (n); each stream subscribes to
	// PerStream (k) of them, named TokenPrefix+number (see tokens.go).
	Tokens      int      `json:"tokens"`
	PerStream   int      `json:"per_stream"`
	TokenPrefix string   `json:"token_prefix"`
	SourceIPs   []string `json:"source_ips"`
	NonReaders  float64  `json:"non_readers"` // fraction of subscribers that never read
	Reconnect   float64  `json:"reconnect"`   // fraction reconnecting per minute, with Last-Event-ID
	// Storm streams of the run (picked evenly) close and reconnect with
	// Last-Event-ID once, spread over StormWithin seconds starting StormAt
	// seconds after publishing starts.
	// Each stays closed StormDown seconds. With StormNew they are not
	// connected before: the storm is their first connection (no
	// Last-Event-ID; their tokens are new topics).
	StormNew    bool    `json:"storm_new,omitempty"`
	Storm       int     `json:"storm,omitempty"`
	StormAt     float64 `json:"storm_at_s,omitempty"`
	StormWithin float64 `json:"storm_within_s,omitempty"`
	StormDown   float64 `json:"storm_down_s,omitempty"`
	// ChurnPool streams of the run (picked evenly; a storm's stream stays the storm's)
	// take turns closing and opening anew (a new id, no Last-Event-ID, the
	// same tokens), Churn per second in this worker, while publishing.
	ChurnPool int     `json:"churn_pool,omitempty"`
	Churn     float64 `json:"churn,omitempty"`
	Timeout   float64 `json:"timeout_s"` // hard limit of the worker's life
	// QuietS ends the wait for the last events after this long without
	// one (default 5 s).
	QuietS float64 `json:"quiet_s,omitempty"`
}

// Acct is the delivery accounting of one class of streams.
type Acct struct {
	Streams    int       `json:"streams"` // streams counted; for churn, stream lives
	Expected   uint64    `json:"expected"`
	Received   uint64    `json:"received"`
	Lost       uint64    `json:"lost"`
	Duplicated uint64    `json:"duplicated"`
	Reordered  uint64    `json:"reordered"`
	Latency    Histogram `json:"latency"`
}

func (a *Acct) add(o *Acct) {
	a.Streams += o.Streams
	a.Expected += o.Expected
	a.Received += o.Received
	a.Lost += o.Lost
	a.Duplicated += o.Duplicated
	a.Reordered += o.Reordered
	a.Latency.Merge(&o.Latency)
}

// StormReport is what the storm's streams saw.
type StormReport struct {
	Reconnects int            `json:"reconnects"` // closed and reconnected (streams not streaming at their turn are skipped)
	Answered   int            `json:"answered"`   // answered 200
	Refused    int            `json:"refused"`    // answered with another status
	Failed     int            `json:"failed"`     // no answer
	Replay     map[string]int `json:"replay"`     // verdicts of the answered: complete, gap, unknown
	Answer     Histogram      `json:"answer"`     // connect to response head
	// Window is the latency of the stable streams from the storm's first
	// reconnection to 3 s after its last answer.
	Window Histogram `json:"window"`
	// WindowTok is Window without the events to "*" (-broadcast-rate).
	WindowTok Histogram `json:"window_tok"`
}

func (r *StormReport) merge(o *StormReport) {
	r.Reconnects += o.Reconnects
	r.Answered += o.Answered
	r.Refused += o.Refused
	r.Failed += o.Failed
	for v, n := range o.Replay {
		if r.Replay == nil {
			r.Replay = map[string]int{}
		}
		r.Replay[v] += n
	}
	r.Answer.Merge(&o.Answer)
	r.Window.Merge(&o.Window)
	r.WindowTok.Merge(&o.WindowTok)
}

// ChurnReport is what the churn did.
type ChurnReport struct {
	Opens   int `json:"opens"`
	Refused int `json:"refused"`
}

// WorkerReport is what a worker tells the parent at the end.
type WorkerReport struct {
	Connected int         `json:"connected"`
	Failed    int         `json:"failed"`            // no answer: connection refused or closed
	Refused   map[int]int `json:"refused,omitempty"` // answers other than 200 while connecting, by status
	// RefusedReconnects counts reconnections (-reconnect, storm, churn)
	// answered with anything but 200.
	RefusedReconnects int     `json:"refused_reconnects,omitempty"`
	ConnectSecs       float64 `json:"connect_s"`
	// The accounting of the streams by class: stable (the rest, including
	// -reconnect's), the storm's and the churn's.
	Stable    Acct        `json:"stable"`
	StormAcct Acct        `json:"storm_acct"`
	ChurnAcct Acct        `json:"churn_acct"`
	Storm     StormReport `json:"storm"`
	Churn     ChurnReport `json:"churn"`
	// Tok and Bcast are the latency of the events published to one token
	// and to "*", also counted in the classes' Latency: with
	// -broadcast-rate, the report tells them apart.
	Tok         Histogram `json:"tok"`
	Bcast       Histogram `json:"bcast"`
	Unexpected  uint64    `json:"unexpected"` // events of a token the stream did not subscribe to
	Resets      uint64    `json:"resets"`     // hasses-reset events
	Other       uint64    `json:"other"`      // other events without a load payload (presence ...)
	Reconnects  uint64    `json:"reconnects"`
	Drops       uint64    `json:"drops"` // streams the server closed
	FirstRecvNs int64     `json:"first_recv_ns"`
	LastRecvNs  int64     `json:"last_recv_ns"`
}

// control messages between parent and worker, one JSON object per line.
type workerMsg struct {
	Ready     bool          `json:"ready,omitempty"`
	Connected int           `json:"connected,omitempty"`
	Failed    int           `json:"failed,omitempty"`
	Refused   map[int]int   `json:"refused,omitempty"`
	Start     bool          `json:"start,omitempty"`     // parent -> worker: publishing starts
	Published []uint64      `json:"published,omitempty"` // parent -> worker: per-token counts, the broadcast's last
	Report    *WorkerReport `json:"report,omitempty"`
}

// Subscriber states.
const (
	connecting = iota // TCP connect in progress
	requested         // request sent, waiting for the response head
	streaming         // answered 200
	closed
)

// Stream classes.
const (
	stable = iota
	stormClass
	churnClass
)

// tokState is a stream's accounting of one token: the last sequence number
// received, how many distinct ones, and (for a stream opened while
// publishing) the one before its first.
type tokState struct {
	last, got, base uint32
}

type subscriber struct {
	fd        int
	idx       int
	state     uint8
	class     uint8
	accepted  bool // answered 200 at least once (in this life, for churn): its losses count
	nonReader bool
	// fresh: opened while publishing without Last-Event-ID, so what was
	// published before it subscribed is unknown; each token's accounting
	// starts at its first event.
	fresh        bool
	stormPending bool // a storm reconnection waiting for its answer
	verdictOpen  bool // answered without X-Hasses-Replay: the first event says
	node         int  // index in WorkerConfig.Addrs
	gen          int  // churn: how many times it was opened anew (its id)
	connNs       int64
	parser       streamParser
	toks         []tokState // one per token, in the order of tokens.go
	bc           tokState   // the broadcast token
}

type worker struct {
	cfg     WorkerConfig
	epfd    int
	subs    []*subscriber
	byFD    map[int]*subscriber
	addrs   []unix.SockaddrInet4
	rep     WorkerReport
	buf     []byte
	pending int  // subscribers without an answer yet
	ready   bool // the connect phase is over

	storm        []*subscriber
	stormIDs     [][]byte // the storm streams' last ids, from their close to their reconnection
	stormNext    int      // the next storm stream to close
	stormConn    int      // the next storm stream to reconnect
	stormPending int
	stormStart   time.Time
	stormLastNs  int64 // when the last storm reconnection was answered
	churn        []*subscriber
	churnNext    int
	churned      int
	pubStart     time.Time // zero until publishing starts
}

// RunWorker runs a worker: it reads its config from the environment (set by
// the parent), talks JSON lines on stdin/stdout, and exits by itself.
func RunWorker(in io.Reader, out io.Writer) error {
	var cfg WorkerConfig
	if err := json.Unmarshal([]byte(os.Getenv(workerEnv)), &cfg); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	raiseFileLimit()
	return runWorker(cfg, in, out)
}

func runWorker(cfg WorkerConfig, in io.Reader, out io.Writer) error {
	cfg.PerStream = max(cfg.PerStream, 1)
	cfg.Tokens = max(cfg.Tokens, cfg.PerStream)
	cfg.Subs = max(cfg.Subs, cfg.First+cfg.Count)
	if cfg.TokenPrefix == "" {
		cfg.TokenPrefix = "t"
	}
	w := &worker{cfg: cfg, byFD: map[int]*subscriber{}, buf: make([]byte, 64<<10)}
	for _, a := range cfg.Addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().Is4() {
			return fmt.Errorf("worker: server address %q must be IPv4 host:port", a)
		}
		w.addrs = append(w.addrs, unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	}
	if len(w.addrs) == 0 {
		return fmt.Errorf("worker: no server address")
	}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	deadline := time.Now().Add(time.Duration(cfg.Timeout * float64(time.Second)))

	start := time.Now()
	for i := range cfg.Count {
		idx := cfg.First + i
		s := &subscriber{idx: idx, node: idx % len(w.addrs), toks: make([]tokState, cfg.PerStream)}
		s.nonReader = cfg.NonReaders > 0 && float64(i%1000) < cfg.NonReaders*1000
		if !s.nonReader {
			switch {
			case picked(idx, cfg.Storm, cfg.Subs):
				s.class = stormClass
				w.storm = append(w.storm, s)
				if cfg.StormNew {
					s.state, s.fresh = closed, true
					w.subs = append(w.subs, s)
					continue // connects in the storm
				}
			case picked(idx, cfg.ChurnPool, cfg.Subs) && cfg.Churn > 0:
				s.class = churnClass
				w.churn = append(w.churn, s)
			}
		}
		w.subs = append(w.subs, s)
		w.connect(s, nil)
		if i%200 == 199 { // let the kernel's accept queue drain
			w.poll(0)
		}
	}
	for w.pending > 0 && time.Now().Before(deadline) {
		w.poll(100)
	}
	w.rep.ConnectSecs = time.Since(start).Seconds()
	refused := 0
	for _, n := range w.rep.Refused {
		refused += n
	}
	for _, s := range w.subs {
		if s.state == streaming {
			w.rep.Connected++
		}
	}
	w.rep.Failed = len(w.subs) - w.rep.Connected - refused
	if cfg.StormNew {
		w.rep.Failed -= len(w.storm)
	}
	w.ready = true
	enc.Encode(workerMsg{Ready: true, Connected: w.rep.Connected, Failed: w.rep.Failed, Refused: w.rep.Refused})

	// Read events until the parent says what was published.
	cmds := make(chan workerMsg, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 256<<20) // the counts of a million tokens
		for sc.Scan() {
			var m workerMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				cmds <- m
			}
		}
		close(cmds)
	}()
	nextReconnect := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		select {
		case m, ok := <-cmds:
			if m.Start {
				w.startPublishing(time.Now())
				continue
			}
			if !ok || m.Published != nil {
				w.finish(m.Published, deadline)
				return enc.Encode(workerMsg{Report: &w.rep})
			}
		default:
		}
		w.poll(10)
		now := time.Now()
		w.stormDue(now)
		w.churnDue(now)
		if cfg.Reconnect > 0 && now.After(nextReconnect) {
			nextReconnect = nextReconnect.Add(time.Second)
			w.reconnectSome(cfg.Reconnect / 60)
		}
	}
	w.finish(nil, deadline)
	return enc.Encode(workerMsg{Report: &w.rep})
}

// startPublishing starts the clocks of the storm and the churn.
func (w *worker) startPublishing(now time.Time) {
	w.pubStart = now
	w.stormStart = now.Add(time.Duration(w.cfg.StormAt * float64(time.Second)))
}

// stormDue closes and reconnects the storm's streams whose turn has come:
// the i-th of this worker's m closes at StormAt + StormWithin·i/m and
// reconnects StormDown later.
func (w *worker) stormDue(now time.Time) {
	if w.pubStart.IsZero() || len(w.storm) == 0 {
		return
	}
	if w.stormIDs == nil {
		w.stormIDs = make([][]byte, len(w.storm))
	}
	at := func(i int) time.Time {
		return w.stormStart.Add(time.Duration(w.cfg.StormWithin * float64(time.Second) * float64(i) / float64(len(w.storm))))
	}
	down := time.Duration(w.cfg.StormDown * float64(time.Second))
	for w.stormNext < len(w.storm) && !now.Before(at(w.stormNext)) {
		s := w.storm[w.stormNext]
		if w.cfg.StormNew {
			w.stormIDs[w.stormNext] = []byte{} // its first connection: no Last-Event-ID
		} else if s.state == streaming { // one refused or closed before has nothing to reconnect
			w.stormIDs[w.stormNext] = append([]byte(nil), s.parser.lastID...)
			w.drop(s)
		}
		w.stormNext++
	}
	for w.stormConn < w.stormNext && !now.Before(at(w.stormConn).Add(down)) {
		s, id := w.storm[w.stormConn], w.stormIDs[w.stormConn]
		w.stormIDs[w.stormConn] = nil
		w.stormConn++
		if id == nil {
			continue
		}
		w.connect(s, id)
		if s.state != closed {
			s.stormPending = true
			w.stormPending++
		} else {
			w.rep.Storm.Failed++
		}
		w.rep.Storm.Reconnects++
	}
}

// inStormWindow: from the storm's first (re)connection to 3 s after its
// last answer.
func (w *worker) inStormWindow(now int64) bool {
	if len(w.storm) == 0 || w.pubStart.IsZero() || now < w.stormStart.UnixNano() {
		return false
	}
	return w.stormConn < len(w.storm) || w.stormPending > 0 || now <= w.stormLastNs+3e9
}

// churnDue closes and opens anew the churn's streams due by now, in turn.
func (w *worker) churnDue(now time.Time) {
	if w.pubStart.IsZero() || len(w.churn) == 0 {
		return
	}
	due := int(w.cfg.Churn*now.Sub(w.pubStart).Seconds()) - w.churned
	for range due {
		s := w.churn[w.churnNext%len(w.churn)]
		w.churnNext++
		w.churned++
		w.endLife(s, nil)
		w.drop(s)
		clear(s.toks)
		s.bc = tokState{}
		s.fresh, s.accepted = true, false
		s.gen++
		w.connect(s, nil)
		w.rep.Churn.Opens++
	}
}

// acct returns the accounting of s's class.
func (w *worker) acct(s *subscriber) *Acct {
	switch s.class {
	case stormClass:
		return &w.rep.StormAcct
	case churnClass:
		return &w.rep.ChurnAcct
	}
	return &w.rep.Stable
}

// token returns s's state of token tok (n is the broadcast), or nil.
func (w *worker) token(s *subscriber, tok int) *tokState {
	if tok == w.cfg.Tokens {
		return &s.bc
	}
	if j := tokenSlot(s.idx, w.cfg.PerStream, w.cfg.Tokens, tok); j >= 0 {
		return &s.toks[j]
	}
	return nil
}

// expectMore reports whether s still waits for events published to it.
func (w *worker) expectMore(s *subscriber, published []uint64) bool {
	n := w.cfg.Tokens
	check := func(ts *tokState, tok int) bool {
		if tok >= len(published) || (s.fresh && ts.got == 0 && ts.last == 0) {
			return false // nothing known of this token: nothing to wait for
		}
		return uint64(ts.base)+uint64(ts.got) < published[tok]
	}
	first := firstToken(s.idx, w.cfg.PerStream, n)
	for j := range s.toks {
		if check(&s.toks[j], (first+j)%n) {
			return true
		}
	}
	return check(&s.bc, n)
}

// endLife adds what one life of a churn stream expected and lost.
func (w *worker) endLife(s *subscriber, published []uint64) {
	w.countFrom(s, &w.rep.ChurnAcct, published)
}

// countFrom adds to a what a stream expected and lost when what was
// published before it subscribed is unknown (it opened while publishing)
// or it closed before the end: for each token, the events from its first
// (or from the start, for a stream open since before publishing) to its
// last, or to the last published if the stream is still open at the end
// (published != nil). What a stream closed in the middle would have
// received next is not counted.
func (w *worker) countFrom(s *subscriber, a *Acct, published []uint64) {
	if !s.accepted || s.nonReader {
		return
	}
	a.Streams++
	n := w.cfg.Tokens
	count := func(ts *tokState, tok int) {
		if s.fresh && ts.got == 0 && ts.last == 0 {
			return
		}
		hi := uint64(ts.last)
		if published != nil && s.state == streaming && tok < len(published) {
			hi = max(hi, published[tok])
		}
		exp := hi - uint64(ts.base)
		a.Expected += exp
		a.Lost += exp - min(exp, uint64(ts.got))
	}
	first := firstToken(s.idx, w.cfg.PerStream, n)
	for j := range s.toks {
		count(&s.toks[j], (first+j)%n)
	}
	count(&s.bc, n)
}

// finish reads until every reading subscriber has everything published to
// its tokens, or nothing arrived for 5 s, then computes the losses.
func (w *worker) finish(published []uint64, deadline time.Time) {
	done := func() bool {
		if w.stormConn < w.stormNext || w.pending > 0 {
			return false // streams still down or reconnecting: they replay what they missed
		}
		for _, s := range w.subs {
			if s.state == streaming && !s.nonReader && w.expectMore(s, published) {
				return false
			}
		}
		return true
	}
	received := func() uint64 {
		return w.rep.Stable.Received + w.rep.StormAcct.Received + w.rep.ChurnAcct.Received
	}
	last := received()
	quietSince := time.Now()
	quiet := 5 * time.Second
	if w.cfg.QuietS > 0 {
		quiet = time.Duration(w.cfg.QuietS * float64(time.Second))
	}
	for !done() && time.Now().Before(deadline) && time.Since(quietSince) < quiet {
		w.poll(50)
		w.stormDue(time.Now())
		if r := received(); r != last {
			last, quietSince = r, time.Now()
		}
	}
	for _, s := range w.subs {
		if s.verdictOpen { // answered, no event since: nothing said it was not complete
			s.verdictOpen = false
			w.verdict("complete")
		}
		if s.fresh || s.class == churnClass {
			w.countFrom(s, w.acct(s), published)
			continue
		}
		// Refused subscribers were told so: their messages are not lost.
		if !s.accepted || s.nonReader {
			continue
		}
		a := w.acct(s)
		a.Streams++
		n := w.cfg.Tokens
		first := firstToken(s.idx, w.cfg.PerStream, n)
		for j := range s.toks {
			w.expect(a, published, (first+j)%n, s.toks[j].got)
		}
		w.expect(a, published, n, s.bc.got)
	}
}

func (w *worker) expect(a *Acct, published []uint64, tok int, got uint32) {
	if tok >= len(published) {
		return
	}
	a.Expected += published[tok]
	a.Lost += published[tok] - min(published[tok], uint64(got))
}

func (w *worker) verdict(v string) {
	if w.rep.Storm.Replay == nil {
		w.rep.Storm.Replay = map[string]int{}
	}
	w.rep.Storm.Replay[v]++
}

func (w *worker) connect(s *subscriber, lastID []byte) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.state = closed
		return
	}
	if n := len(w.cfg.SourceIPs); n > 0 {
		if a, err := netip.ParseAddr(w.cfg.SourceIPs[s.idx%n]); err == nil && a.Is4() {
			unix.Bind(fd, &unix.SockaddrInet4{Addr: a.As4()})
		}
	}
	if s.nonReader {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	}
	if err := unix.Connect(fd, &w.addrs[s.node]); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		s.state = closed
		return
	}
	s.fd, s.state = fd, connecting
	s.connNs = time.Now().UnixNano()
	lastID = append(s.parser.lastID[:0], lastID...)
	s.parser = streamParser{inHead: true, lastID: lastID}
	w.byFD[fd] = s
	w.pending++
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

func (w *worker) poll(ms int) {
	var events [512]unix.EpollEvent
	n, err := unix.EpollWait(w.epfd, events[:], ms)
	if err != nil {
		return
	}
	for _, ev := range events[:n] {
		s := w.byFD[int(ev.Fd)]
		if s == nil {
			continue
		}
		if s.state == connecting && ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			w.sendRequest(s)
		}
		reads := s.state == requested || (s.state == streaming && !s.nonReader)
		if reads && ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			w.read(s)
		}
	}
}

// request returns s's request head: its tokens, its id (c<index>, then
// c<index>.<n> for the n-th stream opened anew by the churn) and the
// Last-Event-ID it resumes from, if any.
func (w *worker) request(s *subscriber) []byte {
	req := fmt.Appendf(nil, "GET %s?subscribe=", w.cfg.Path)
	req = appendSubscribe(req, s.idx, w.cfg.PerStream, w.cfg.Tokens, w.cfg.TokenPrefix)
	req = fmt.Appendf(req, "&id=c%d", s.idx)
	if s.gen > 0 {
		req = fmt.Appendf(req, ".%d", s.gen)
	}
	req = append(req, " HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n"...)
	if len(s.parser.lastID) > 0 {
		req = fmt.Appendf(req, "Last-Event-ID: %s\r\n", s.parser.lastID)
	}
	return append(req, "\r\n"...)
}

func (w *worker) sendRequest(s *subscriber) {
	if e, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
		w.drop(s)
		return
	}
	if _, err := unix.Write(s.fd, w.request(s)); err != nil {
		w.drop(s)
		return
	}
	s.state = requested
}

func (w *worker) read(s *subscriber) {
	for s.state == requested || s.state == streaming {
		n, err := unix.Read(s.fd, w.buf)
		if n > 0 {
			now := time.Now().UnixNano()
			s.parser.feed(w.buf[:n], func(ev event) {
				if s.state == requested { // the head's read holds the first events too
					w.answered(s, now)
				}
				w.event(s, ev, now)
			})
			if s.state == requested && !s.parser.inHead {
				w.answered(s, now)
			}
			if s.nonReader && s.state == streaming {
				return // it never reads again: the server sees a full window
			}
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err == unix.EINTR {
			continue
		}
		if s.state == streaming {
			w.rep.Drops++
		}
		w.drop(s) // closed before answering: counted as failed
		return
	}
}

// answered handles a complete response head: 200 starts the stream, any
// other status (429 too many per address, 503 server full, 403 ...) is a
// refusal, counted by status and never as lost messages.
func (w *worker) answered(s *subscriber, now int64) {
	w.pending--
	storm := s.stormPending
	if storm {
		s.stormPending = false
		w.stormPending--
		w.stormLastNs = now
		w.rep.Storm.Answer.Add(time.Duration(now - s.connNs))
	}
	if s.parser.status == 200 {
		s.state, s.accepted = streaming, true
		if storm {
			w.rep.Storm.Answered++
			switch {
			case s.fresh: // a first connection: nothing to replay
			case s.parser.replay != "":
				w.verdict(s.parser.replay)
			default:
				s.verdictOpen = true
			}
		}
		return
	}
	switch {
	case storm:
		w.rep.Storm.Refused++
		w.rep.RefusedReconnects++
	case w.ready:
		if s.class == churnClass {
			w.rep.Churn.Refused++
		}
		w.rep.RefusedReconnects++
	default:
		if w.rep.Refused == nil {
			w.rep.Refused = map[int]int{}
		}
		w.rep.Refused[s.parser.status]++
	}
	delete(w.byFD, s.fd)
	unix.Close(s.fd)
	s.state = closed
}

func (w *worker) event(s *subscriber, ev event, now int64) {
	if s.state != streaming {
		return // refused: an error page, no events
	}
	if string(ev.name) == "hasses-reset" {
		w.rep.Resets++
		if s.verdictOpen {
			s.verdictOpen = false
			w.verdict(string(ev.data))
		}
		return
	}
	if s.verdictOpen {
		s.verdictOpen = false
		w.verdict("complete")
	}
	p, ok := parsePayload(ev.data)
	if !ok {
		w.rep.Other++
		return
	}
	ts := w.token(s, p.tok)
	if ts == nil {
		w.rep.Unexpected++
		return
	}
	a := w.acct(s)
	a.Received++
	seq := uint32(p.seq)
	if s.fresh && ts.got == 0 && ts.last == 0 {
		ts.base, ts.last = seq-1, seq-1 // the first event of this token since it subscribed
	}
	switch {
	case seq == ts.last:
		a.Duplicated++
		return
	case seq < ts.last: // older than one already seen: late, or a duplicate
		a.Reordered++
	default:
		ts.last = seq
	}
	ts.got++
	if w.rep.FirstRecvNs == 0 {
		w.rep.FirstRecvNs = now
	}
	w.rep.LastRecvNs = now
	d := time.Duration(now - p.sentNs)
	a.Latency.Add(d)
	if p.tok == w.cfg.Tokens {
		w.rep.Bcast.Add(d)
	} else {
		w.rep.Tok.Add(d)
	}
	if s.class == stable && w.inStormWindow(now) {
		w.rep.Storm.Window.Add(d)
		if p.tok != w.cfg.Tokens {
			w.rep.Storm.WindowTok.Add(d)
		}
	}
}

func (w *worker) drop(s *subscriber) {
	if s.state == connecting || s.state == requested {
		w.pending--
		if s.stormPending {
			s.stormPending = false
			w.stormPending--
			w.rep.Storm.Failed++
		}
	}
	if s.state != closed {
		delete(w.byFD, s.fd)
		unix.Close(s.fd)
	}
	s.state = closed
}

// reconnectSome closes a fraction of the stable streams and reconnects
// them, to the next server of Addrs, with the id of the last event they
// received, so that the server (another node of a cluster) replays what
// they missed in between.
func (w *worker) reconnectSome(frac float64) {
	for _, s := range w.subs {
		if s.class == stable && s.state == streaming && !s.nonReader && rand.Float64() < frac {
			id := append([]byte(nil), s.parser.lastID...)
			w.drop(s)
			s.node = (s.node + 1) % len(w.addrs)
			w.connect(s, id)
			w.rep.Reconnects++
		}
	}
}

func raiseFileLimit() {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
}
