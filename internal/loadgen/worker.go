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
	Addrs      []string `json:"addrs"`
	Path       string   `json:"path"`
	First      int      `json:"first"`
	Count      int      `json:"count"`
	Tokens     int      `json:"tokens"`
	SourceIPs  []string `json:"source_ips"`
	NonReaders float64  `json:"non_readers"` // fraction of subscribers that never read
	Reconnect  float64  `json:"reconnect"`   // fraction reconnecting per minute, with Last-Event-ID
	Timeout    float64  `json:"timeout_s"`   // hard limit of the worker's life
}

// WorkerReport is what a worker tells the parent at the end.
type WorkerReport struct {
	Connected int         `json:"connected"`
	Failed    int         `json:"failed"`            // no answer: connection refused or closed
	Refused   map[int]int `json:"refused,omitempty"` // answers other than 200 while connecting, by status
	// RefusedReconnects counts reconnections (-reconnect) answered with
	// anything but 200.
	RefusedReconnects int       `json:"refused_reconnects,omitempty"`
	ConnectSecs       float64   `json:"connect_s"`
	Received          uint64    `json:"received"`
	Expected          uint64    `json:"expected"`
	Lost              uint64    `json:"lost"`
	Duplicated        uint64    `json:"duplicated"`
	Reordered         uint64    `json:"reordered"`
	Reconnects        uint64    `json:"reconnects"`
	Drops             uint64    `json:"drops"` // streams the server closed
	FirstRecvNs       int64     `json:"first_recv_ns"`
	LastRecvNs        int64     `json:"last_recv_ns"`
	Latency           Histogram `json:"latency"`
}

// control messages between parent and worker, one JSON object per line.
type workerMsg struct {
	Ready     bool          `json:"ready,omitempty"`
	Connected int           `json:"connected,omitempty"`
	Failed    int           `json:"failed,omitempty"`
	Refused   map[int]int   `json:"refused,omitempty"`
	Published []uint64      `json:"published,omitempty"` // parent -> worker: per-token counts
	Report    *WorkerReport `json:"report,omitempty"`
}

// Subscriber states.
const (
	connecting = iota // TCP connect in progress
	requested         // request sent, waiting for the response head
	streaming         // answered 200
	closed
)

type subscriber struct {
	fd        int
	idx       int
	token     int
	state     uint8
	accepted  bool // answered 200 at least once: its losses count
	nonReader bool
	node      int // index in WorkerConfig.Addrs
	parser    streamParser
	lastSeq   uint64
	got       uint64
	lastID    []byte
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
		s := &subscriber{idx: idx, token: idx % max(cfg.Tokens, 1), node: idx % len(w.addrs)}
		s.nonReader = cfg.NonReaders > 0 && float64(i%1000) < cfg.NonReaders*1000
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
	w.ready = true
	enc.Encode(workerMsg{Ready: true, Connected: w.rep.Connected, Failed: w.rep.Failed, Refused: w.rep.Refused})

	// Read events until the parent says what was published.
	cmds := make(chan workerMsg, 1)
	go func() {
		sc := bufio.NewScanner(in)
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
			if !ok || m.Published != nil {
				w.finish(m.Published, deadline)
				return enc.Encode(workerMsg{Report: &w.rep})
			}
		default:
		}
		w.poll(50)
		if cfg.Reconnect > 0 && time.Now().After(nextReconnect) {
			nextReconnect = nextReconnect.Add(time.Second)
			w.reconnectSome(cfg.Reconnect / 60)
		}
	}
	w.finish(nil, deadline)
	return enc.Encode(workerMsg{Report: &w.rep})
}

// finish reads until every reading subscriber has everything published to
// its token, or nothing arrived for 5 s, then computes the losses.
func (w *worker) finish(published []uint64, deadline time.Time) {
	done := func() bool {
		for _, s := range w.subs {
			if s.state == streaming && !s.nonReader && s.token < len(published) && s.got < published[s.token] {
				return false
			}
		}
		return true
	}
	last := w.rep.Received
	quietSince := time.Now()
	for !done() && time.Now().Before(deadline) && time.Since(quietSince) < 5*time.Second {
		w.poll(50)
		if w.rep.Received != last {
			last, quietSince = w.rep.Received, time.Now()
		}
	}
	for _, s := range w.subs {
		// Refused subscribers were told so: their messages are not lost.
		if !s.accepted || s.nonReader || s.token >= len(published) {
			continue
		}
		w.rep.Expected += published[s.token]
		if s.got < published[s.token] {
			w.rep.Lost += published[s.token] - s.got
		}
	}
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
	s.parser = streamParser{inHead: true}
	s.lastID = lastID
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

func (w *worker) sendRequest(s *subscriber) {
	if e, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 {
		w.drop(s)
		return
	}
	req := fmt.Sprintf("GET %s?subscribe=t%d&id=c%d HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n", w.cfg.Path, s.token, s.idx)
	if len(s.lastID) > 0 {
		req += "Last-Event-ID: " + string(s.lastID) + "\r\n"
	}
	req += "\r\n"
	if _, err := unix.Write(s.fd, []byte(req)); err != nil {
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
			s.parser.feed(w.buf[:n], func(line []byte) { w.event(s, line, now) })
			if s.state == requested && !s.parser.inHead {
				w.answered(s)
				if s.nonReader {
					return // it never reads again: the server sees a full window
				}
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
func (w *worker) answered(s *subscriber) {
	w.pending--
	if s.parser.status == 200 {
		s.state, s.accepted = streaming, true
		return
	}
	if w.ready {
		w.rep.RefusedReconnects++
	} else {
		if w.rep.Refused == nil {
			w.rep.Refused = map[int]int{}
		}
		w.rep.Refused[s.parser.status]++
	}
	delete(w.byFD, s.fd)
	unix.Close(s.fd)
	s.state = closed
}

func (w *worker) event(s *subscriber, line []byte, now int64) {
	p, ok := parsePayload(line)
	if !ok {
		return
	}
	w.rep.Received++
	switch {
	case p.seq == s.lastSeq:
		w.rep.Duplicated++
		return
	case p.seq < s.lastSeq: // older than one already seen: late, or a duplicate
		w.rep.Reordered++
	default:
		s.lastSeq = p.seq
	}
	s.got++
	if w.rep.FirstRecvNs == 0 {
		w.rep.FirstRecvNs = now
	}
	w.rep.LastRecvNs = now
	w.rep.Latency.Add(time.Duration(now - p.sentNs))
}

func (w *worker) drop(s *subscriber) {
	if s.state == connecting || s.state == requested {
		w.pending--
	}
	if s.state != closed {
		delete(w.byFD, s.fd)
		unix.Close(s.fd)
	}
	s.state = closed
}

// reconnectSome closes a fraction of the streams and reconnects them, to
// the next server of Addrs, with the id of the last event they received, so
// that the server (another node of a cluster) replays what they missed in
// between.
func (w *worker) reconnectSome(frac float64) {
	for _, s := range w.subs {
		if s.state == streaming && !s.nonReader && rand.Float64() < frac {
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
