package itest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// proxySub is an EventSource-like client behind a proxy: it reads the body
// line by line (the proxy re-chunks the stream as it reads it, so a chunk
// is not an event), keeps every event over all its connections, and
// reconnects with Last-Event-ID.
type proxySub struct {
	t      *testing.T
	addr   string // the proxy, host:port
	target string // path and query
	client string // the browser's address, sent as X-Forwarded-For

	mu       sync.Mutex
	events   []event
	lastID   string
	comments int
	replays  []string // X-Hasses-Replay of each reconnection
	cur      *httpStream
	closed   chan struct{}
}

// connect opens the stream through the proxy (with the last id received,
// if any); the answer must be 200.
func (p *proxySub) connect() {
	p.t.Helper()
	p.mu.Lock()
	last := p.lastID
	p.mu.Unlock()
	headers := []string{"X-Forwarded-For: " + p.client}
	if last != "" {
		headers = append(headers, "Last-Event-ID: "+last)
	}
	s := mustGet(p.t, p.addr, p.target, http.StatusOK, headers...)
	closed := make(chan struct{})
	p.mu.Lock()
	if last != "" {
		p.replays = append(p.replays, s.resp.Header.Get("X-Hasses-Replay"))
	}
	p.cur, p.closed = s, closed
	p.mu.Unlock()
	go p.read(s, closed)
	p.t.Cleanup(func() { s.close(); <-closed })
}

// read parses s until it ends (or the test closes it).
func (p *proxySub) read(s *httpStream, closed chan struct{}) {
	defer close(closed)
	var block strings.Builder
	for {
		s.deadline(time.Now().Add(time.Minute))
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.HasPrefix(line, ":") {
			// A heartbeat: a comment line that ends no block.
			p.mu.Lock()
			p.comments++
			p.mu.Unlock()
			continue
		}
		if line != "\n" {
			block.WriteString(line)
			continue
		}
		if block.Len() == 0 {
			continue
		}
		ev := parseEvent(block.String())
		block.Reset()
		p.mu.Lock()
		if ev.HasData {
			p.events = append(p.events, ev)
		}
		if ev.ID != "" {
			p.lastID = ev.ID // the opening id block too, as EventSource
		}
		p.mu.Unlock()
	}
}

// close ends the current connection and waits for its reader.
func (p *proxySub) close() {
	p.mu.Lock()
	s, closed := p.cur, p.closed
	p.mu.Unlock()
	s.close()
	<-closed
}

// dropped reports whether the current connection has ended.
func (p *proxySub) dropped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
		return true
	default:
		return false
	}
}

func (p *proxySub) got() []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *proxySub) heartbeats() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.comments
}

// count returns how many events other than hasses-reset arrived.
func (p *proxySub) count() int {
	n := 0
	for _, ev := range p.got() {
		if ev.Event != "hasses-reset" {
			n++
		}
	}
	return n
}

// clusterPub is one publication: a token, the data, and the client id it
// excludes (token-ID), if any.
type clusterPub struct{ tok, data, excl string }

// TestClusterBehindNginx runs the recipe of docs/cluster.md, "Three nodes
// behind nginx on one Redis": streams opened through nginx are balanced
// over the nodes, receive what is published on any node once, in one order,
// under one id; a node killed with -9 loses nothing for its streams, which
// nginx moves to the other nodes on reconnect; a stopped Redis leaves the
// streams through nginx open and new ones welcome.
func TestClusterBehindNginx(t *testing.T) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		if path, err = exec.LookPath("/usr/sbin/nginx"); err != nil { // root's PATH may lack it
			t.Skip("nginx is not installed (.ci/run installs it)")
		}
	}
	r := startRedis(t)
	// The recipe's options (nginx's address trusted: it names the
	// browser in X-Forwarded-For); -heartbeat lowered so that the Redis outage
	// below need not last 20 s to see one.
	var nodes []*daemon
	var addrs []string
	for range 3 {
		d := startNode(t, r, "-retry=2s", "-trusted-proxies=127.0.0.1", "-heartbeat=500ms")
		nodes = append(nodes, d)
		addrs = append(addrs, d.sse)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // nginx's workers run as nobody when started by root
	ngx := startNginxCluster(t, path, proxyVars{Dir: dir, Port: freePort(t), Nodes: addrs})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log:\n%s\n%s", ngx.errors(), ngx.output())
		}
	})

	// 1. 30 streams through nginx, each from its own browser address, with
	// a client id; one token each, a few with two tokens or all of them.
	const n = 30
	tokensOf := func(i int) []string {
		switch i % 10 {
		case 8:
			return []string{"t0", "t1"}
		case 9:
			return []string{"*"}
		}
		return []string{fmt.Sprintf("t%d", i%3)}
	}
	subs := make([]*proxySub, n)
	for i := range n {
		subs[i] = &proxySub{t: t, addr: ngx.addr, client: fmt.Sprintf("203.0.113.%d", i+1),
			target: fmt.Sprintf("/sse?subscribe=%s&id=c%d", strings.Join(tokensOf(i), "-"), i)}
		subs[i].connect()
	}
	// Which node serves which stream: clientlist names the browser behind
	// nginx (X-Forwarded-For passed through).
	where := func() map[string]int {
		at := map[string]int{}
		for k, d := range nodes {
			select {
			case <-d.done:
				continue // killed
			default:
			}
			for _, c := range d.clients() {
				if client, _, ok := strings.Cut(c.Addr, " via 127.0.0.1:"); ok && c.State == "streaming" {
					if prev, dup := at[client]; dup {
						t.Errorf("%s streams on nodes %d and %d", client, prev, k)
					}
					at[client] = k
				}
			}
		}
		return at
	}
	perNode := func(at map[string]int) []int {
		counts := make([]int, len(nodes))
		for _, k := range at {
			counts[k]++
		}
		return counts
	}
	at := where()
	// least_conn: 30 streams opened one after the other are 10 per node.
	if got := perNode(at); len(at) != n || !slices.Equal(got, []int{10, 10, 10}) {
		t.Fatalf("streams per node %v (%d of %d placed), want 10 each: least_conn", got, len(at), n)
	}
	for k, d := range nodes {
		if got := d.metric("hasses_streams"); got != 10 {
			t.Errorf("node %d: hasses_streams %v, want 10", k, got)
		}
	}
	// Four browsers of node 2 leave and come back: least_conn sends all
	// four to node 2, the node with the fewest open streams (round robin
	// would spread them).
	var left []*proxySub
	for _, s := range subs {
		if at[s.client] == 2 && len(left) < 4 {
			s.close()
			left = append(left, s)
		}
	}
	waitFor(t, "node 2 to see them leave", func() bool { return nodes[2].metric("hasses_streams") == 6 })
	for _, s := range left {
		s.connect()
	}
	at = where()
	for _, s := range left {
		if at[s.client] != 2 {
			t.Errorf("%s came back on node %d, want node 2 (least_conn)", s.client, at[s.client])
		}
	}
	var view struct {
		Cluster struct {
			Streams int
			Nodes   []struct {
				Addr    string
				Streams int
			}
		}
	}
	waitFor(t, "tcpcluster to show 10 streams on each node", func() bool {
		json.Unmarshal([]byte(nodes[0].command("tcpcluster")), &view)
		if view.Cluster.Streams != n || len(view.Cluster.Nodes) != 3 {
			return false
		}
		for _, v := range view.Cluster.Nodes {
			if v.Streams != 10 || !slices.Contains(addrs, v.Addr) {
				return false
			}
		}
		return true
	})

	// What each stream must receive: the publications of its tokens that
	// do not exclude its id.
	var mu sync.Mutex
	var pubs []clusterPub
	acked := map[string]string{} // data -> id answered by the HTTP API
	published := func(p clusterPub, id string) {
		mu.Lock()
		defer mu.Unlock()
		pubs = append(pubs, p)
		if id != "" {
			acked[p.data] = id
		}
	}
	wantOf := func(i int) map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		want := map[string]bool{}
		for _, p := range pubs {
			if (slices.Contains(tokensOf(i), p.tok) || tokensOf(i)[0] == "*") && p.excl != fmt.Sprintf("c%d", i) {
				want[p.data] = true
			}
		}
		return want
	}
	httpPub := func(d *daemon, p clusterPub) {
		status, id, _ := d.publishHTTP(jsonMsg(p.tok, p.data))
		if status != http.StatusOK || id == "" {
			t.Errorf("HTTP publish %q: status %d id %q", p.data, status, id)
			return
		}
		published(p, id)
	}
	// check waits until every stream has its events, then checks them all:
	// once each, ids increasing and alike on every stream (and equal to
	// the ids the HTTP API answered), each publisher's order kept.
	check := func(stage string) {
		t.Helper()
		end := time.Now().Add(10 * time.Second)
		for i, s := range subs {
			for s.count() < len(wantOf(i)) && time.Now().Before(end) {
				time.Sleep(20 * time.Millisecond)
			}
		}
		time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
		mu.Lock()
		ids := maps.Clone(acked)
		mu.Unlock()
		for i, s := range subs {
			name := fmt.Sprintf("%s: stream %d (%s)", stage, i, s.target)
			snap := &sub{t: t, events: s.got()} // checkStream reads a sub
			checkStream(t, name, snap, wantOf(i), ids)
			checkSourceOrder(t, name, snap.data())
		}
	}

	// 2. Publications on two nodes at once: the control port of node 0
	// (with one exclusion) and the HTTP API of node 1.
	var wg sync.WaitGroup
	wg.Go(func() {
		var b strings.Builder
		var units []clusterPub
		for k := range 30 {
			p := clusterPub{tok: fmt.Sprintf("t%d", k%3), data: fmt.Sprintf("ctl-%d", k)}
			if k == 3 {
				p.excl = "c0"
				fmt.Fprintf(&b, "%s-%s=%s;", p.tok, p.excl, p.data)
			} else {
				fmt.Fprintf(&b, "%s=%s;", p.tok, p.data)
			}
			units = append(units, p)
		}
		nodes[0].send(b.String())
		for _, p := range units {
			published(p, "")
		}
	})
	wg.Go(func() {
		for k := range 15 {
			httpPub(nodes[1], clusterPub{tok: fmt.Sprintf("t%d", k%3), data: fmt.Sprintf("http-%d", k)})
		}
	})
	wg.Wait()
	check("published on two nodes")
	if t.Failed() {
		t.FailNow()
	}

	// 3. kill -9 of node 1 while node 0 (control port) and node 2 (HTTP
	// API) go on publishing.
	victim := 1
	stop := make(chan struct{})
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			p := clusterPub{tok: fmt.Sprintf("t%d", k%3), data: fmt.Sprintf("ctl4-%d", k)}
			nodes[0].send(p.tok + "=" + p.data + ";")
			published(p, "")
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			httpPub(nodes[2], clusterPub{tok: fmt.Sprintf("t%d", k%3), data: fmt.Sprintf("http4-%d", k)})
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	nodes[victim].kill9()
	var moved []int
	for i, s := range subs {
		if at[s.client] == victim {
			moved = append(moved, i)
			waitFor(t, fmt.Sprintf("stream %d on the killed node to end", i), s.dropped)
		}
	}
	for i, s := range subs {
		if at[s.client] != victim && s.dropped() {
			t.Fatalf("stream %d on node %d ended with the kill of node %d", i, at[s.client], victim)
		}
	}
	// They reconnect through nginx with their last id, as EventSource
	// does (after its retry delay).
	time.Sleep(100 * time.Millisecond)
	for _, i := range moved {
		subs[i].connect()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	at = where()
	if got := perNode(at); len(at) != n || got[victim] != 0 || got[0] != 15 || got[2] != 15 {
		t.Errorf("streams per node after the reconnects: %v (%d of %d placed), want 15 on each survivor", got, len(at), n)
	}
	for _, i := range moved {
		if rp := subs[i].replays; !slices.Equal(rp, []string{"complete"}) {
			t.Errorf("stream %d moved from the killed node: X-Hasses-Replay %q, want complete", i, rp)
		}
	}
	check("kill -9 of a node")
	// nginx did try the dead node and passed the request on
	// (proxy_next_upstream): still, every reconnect got 200.
	refused := strings.Count(ngx.errors(), "Connection refused")
	if refused == 0 {
		t.Errorf("nginx never tried the killed node (least_conn: it had the fewest streams):\n%s", ngx.errors())
	}
	mu.Lock()
	total := len(pubs)
	mu.Unlock()
	t.Logf("%d publications; %d streams moved off the killed node through nginx (%d connects refused and passed on), all complete, 0 lost, 0 duplicated",
		total, len(moved), refused)
	if t.Failed() {
		t.FailNow()
	}

	// 4. Redis stopped: the streams through nginx stay open (heartbeats
	// arrive), a new stream gets 200 with its first comment, a reconnect
	// gets 200 and a complete replay.
	beats := make([]int, n)
	for i, s := range subs {
		beats[i] = s.heartbeats()
	}
	r.pause()
	outage := time.Now()
	late := &proxySub{t: t, addr: ngx.addr, target: "/sse?subscribe=t0&id=late", client: "203.0.113.200"}
	late.connect()
	again := subs[0]
	again.close()
	again.connect()
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		all := late.heartbeats() > 0
		for i, s := range subs {
			all = all && s.heartbeats() > beats[i]
		}
		if all {
			break
		}
	}
	for i, s := range subs {
		if s.dropped() || s.heartbeats() == beats[i] {
			t.Errorf("stream %d while Redis is stopped: dropped %v, %d heartbeats", i, s.dropped(), s.heartbeats()-beats[i])
		}
	}
	if late.heartbeats() == 0 || late.dropped() {
		t.Errorf("new stream while Redis is stopped: no comment through nginx (dropped %v)", late.dropped())
	}
	if rp := again.replays; rp[len(rp)-1] != "complete" {
		t.Errorf("reconnect while Redis is stopped: X-Hasses-Replay %q, want complete", rp[len(rp)-1])
	}
	stopped := time.Since(outage)
	r.resume()
	// Published after the outage (the control port queues it if Redis is
	// not back yet), it reaches every stream, the new one too.
	var b strings.Builder
	for k := range 3 {
		p := clusterPub{tok: fmt.Sprintf("t%d", k), data: fmt.Sprintf("after-%d", k)}
		fmt.Fprintf(&b, "%s=%s;", p.tok, p.data)
		published(p, "")
	}
	nodes[2].send(b.String())
	check("Redis stopped")
	waitFor(t, "the new stream's event", func() bool { return late.count() == 1 })
	if evs := late.got(); len(evs) != 1 || evs[0].Data != "after-0" {
		t.Errorf("the stream opened while Redis was stopped got %+v, want after-0", evs)
	}
	t.Logf("Redis stopped %v: %d streams through nginx kept open with heartbeats, a new one got 200", stopped.Round(time.Millisecond), n)
}
