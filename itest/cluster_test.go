package itest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkStream asserts what a stream of a cluster received: exactly the
// events of want (each once), with strictly increasing ids, each with the
// id every other stream saw for it (ids records them across streams), and
// no hasses-reset.
func checkStream(t *testing.T, name string, s *sub, want map[string]bool, ids map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	var last uint64
	for _, ev := range s.got() {
		if ev.Event == "hasses-reset" {
			t.Errorf("%s: unexpected hasses-reset %+v", name, ev)
			continue
		}
		if seen[ev.Data] {
			t.Errorf("%s: %q delivered twice", name, ev.Data)
		}
		seen[ev.Data] = true
		if !want[ev.Data] {
			t.Errorf("%s: %q is not for this stream", name, ev.Data)
		}
		if q := seqOf(t, ev.ID); q <= last {
			t.Errorf("%s: id %s of %q not above the previous one", name, ev.ID, ev.Data)
		} else {
			last = q
		}
		if id, ok := ids[ev.Data]; ok && id != ev.ID {
			t.Errorf("%s: %q has id %s here and %s elsewhere", name, ev.Data, ev.ID, id)
		}
		ids[ev.Data] = ev.ID
	}
	for d := range want {
		if !seen[d] {
			t.Errorf("%s: %q never delivered", name, d)
		}
	}
}

// checkSourceOrder asserts that the events of each source ("<source>-<n>")
// arrive in the order they were sent.
func checkSourceOrder(t *testing.T, name string, data []string) {
	t.Helper()
	last := map[string]int{}
	for _, d := range data {
		i := strings.LastIndexByte(d, '-')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(d[i+1:])
		if err != nil {
			continue
		}
		src := d[:i]
		if prev, ok := last[src]; ok && n <= prev {
			t.Errorf("%s: %q after %s-%d", name, d, src, prev)
		}
		last[src] = n
	}
}

func TestClusterOrderExactlyOnce(t *testing.T) {
	r := startRedis(t)
	fifo := filepath.Join(t.TempDir(), "ctl")
	nodes := []*daemon{startNode(t, r), startNode(t, r), startNode(t, r, "-fifo="+fifo)}
	queries := []string{"?subscribe=r1", "?subscribe=r2", "?subscribe=r1-r2", "?subscribe=*"}
	type named struct {
		name string
		s    *sub
	}
	var subs []named
	for i, d := range nodes {
		for _, q := range queries {
			subs = append(subs, named{fmt.Sprintf("node%d%s", i, q), newSub(t, d, q)})
		}
	}
	want := map[string]map[string]bool{"r1": {}, "r2": {}}
	add := func(tok, data string) { want[tok][data] = true }

	const perTCP, perHTTP, perFIFO, chain = 60, 20, 30, 24
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]string{} // data -> id answered by the HTTP API
	for i, d := range nodes {
		var b strings.Builder
		for k := range perTCP {
			tok, data := fmt.Sprintf("r%d", k%2+1), fmt.Sprintf("n%d.tcp-%d", i, k)
			add(tok, data)
			fmt.Fprintf(&b, "%s=%s;", tok, data)
		}
		wg.Go(func() { d.send(b.String()) })
		var msgs [][2]string
		for k := range perHTTP {
			msgs = append(msgs, [2]string{fmt.Sprintf("r%d", k%2+1), fmt.Sprintf("n%d.http-%d", i, k)})
			add(msgs[k][0], msgs[k][1])
		}
		wg.Go(func() {
			for _, m := range msgs {
				status, id, _ := d.publishHTTP(jsonMsg(m[0], m[1]))
				if status != http.StatusOK || id == "" {
					t.Errorf("HTTP publish on node %d: status %d id %q", i, status, id)
				}
				mu.Lock()
				acked[m[1]] = id
				mu.Unlock()
			}
		})
	}
	var fb strings.Builder
	for k := range perFIFO {
		tok, data := fmt.Sprintf("r%d", k%2+1), fmt.Sprintf("fifo-%d", k)
		add(tok, data)
		fmt.Fprintf(&fb, "%s=%s;", tok, data)
	}
	wg.Go(func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		f.WriteString(fb.String())
		f.Close()
	})
	// A chain of publications, each answered before the next is sent, on
	// the nodes in turn: they must be delivered in that order.
	for k := range chain {
		add("r1", fmt.Sprintf("chain-%d", k))
	}
	var chainIDs []uint64
	wg.Go(func() {
		for k := range chain {
			data := fmt.Sprintf("chain-%d", k)
			status, id, _ := nodes[k%3].publishHTTP(jsonMsg("r1", data))
			if status != http.StatusOK {
				t.Errorf("chain publish %d: status %d", k, status)
				continue
			}
			mu.Lock()
			acked[data] = id
			chainIDs = append(chainIDs, seqOf(t, id))
			mu.Unlock()
		}
	})
	wg.Wait()
	if !slices.IsSorted(chainIDs) {
		t.Errorf("chain ids not increasing: %v", chainIDs)
	}

	all := map[string]bool{}
	for _, set := range want {
		for d := range set {
			all[d] = true
		}
	}
	wantOf := map[string]map[string]bool{"?subscribe=r1": want["r1"], "?subscribe=r2": want["r2"],
		"?subscribe=r1-r2": all, "?subscribe=*": all}
	for _, n := range subs {
		n.s.waitCount(len(wantOf[n.s.query]), 20*time.Second)
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	ids := map[string]string{}
	for d, id := range acked {
		ids[d] = id
	}
	for _, n := range subs {
		checkStream(t, n.name, n.s, wantOf[n.s.query], ids)
		checkSourceOrder(t, n.name, n.s.data())
	}
	t.Logf("%d publications, %d streams on 3 nodes: each got its events once, in one order, under the same ids", len(all), len(subs))
}

func TestClusterRoutingAcrossNodes(t *testing.T) {
	r := startRedis(t)
	a, b := startNode(t, r), startNode(t, r)
	x := newSub(t, b, "?subscribe=room7&id=x")
	y := newSub(t, b, "?subscribe=room8-room7&id=y")
	star := newSub(t, b, "?subscribe=*&id=s")
	other := newSub(t, b, "?subscribe=other")
	// Published on a; every stream is on b.
	a.send("room*=prefix;room7-x=not-x;*=all;*-y=all-but-y;other=o;roo*-s=prefix-but-s")
	if status, _, _ := a.publishHTTP(`{"tokens":["room7","room8"],"data":"multi"}`); status != http.StatusOK {
		t.Fatalf("multi-token publish: %d", status)
	}
	check := func(name string, s *sub, want ...string) {
		t.Helper()
		s.waitCount(len(want), 5*time.Second)
		time.Sleep(50 * time.Millisecond)
		if got := s.data(); !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
	check("room7 id=x", x, "prefix", "all", "all-but-y", "prefix-but-s", "multi")
	check("room8-room7 id=y", y, "prefix", "not-x", "all", "prefix-but-s", "multi")
	check("* id=s", star, "prefix", "not-x", "all", "all-but-y", "o", "multi")
	check("other", other, "all", "all-but-y", "o")

	// The cluster view: both nodes, and the streams of each.
	var view struct {
		Cluster struct {
			Ready   bool
			Streams int
			Nodes   []struct {
				Addr    string
				Streams int
			}
		}
	}
	waitFor(t, "the cluster view", func() bool {
		json.Unmarshal([]byte(a.command("tcpcluster")), &view)
		return view.Cluster.Streams == 4 && len(view.Cluster.Nodes) == 2
	})
	if !view.Cluster.Ready || view.Cluster.Nodes[1].Addr != b.sse || view.Cluster.Nodes[1].Streams != 4 {
		t.Errorf("tcpcluster on a: %+v", view)
	}
	if got := a.metric(`hasses_cluster_nodes`); got != 2 {
		t.Errorf("hasses_cluster_nodes = %v", got)
	}
}

func TestClusterReplayOnAnotherNodeAndALaterOne(t *testing.T) {
	r := startRedis(t)
	a, b, c := startNode(t, r), startNode(t, r), startNode(t, r)
	s := newSub(t, a, "?subscribe=room1")
	probe := newSub(t, b, "?subscribe=room1")
	c.send("room1=before;")
	s.waitCount(1, 5*time.Second)
	s.close()
	var want []string
	var msgs strings.Builder
	for k := range 20 {
		want = append(want, fmt.Sprintf("missed-%d", k))
		fmt.Fprintf(&msgs, "room1=missed-%d;room2=noise-%d;", k, k)
	}
	c.send(msgs.String())
	lastID := s.got()[0].ID
	probe.waitCount(21, 5*time.Second) // b has applied them

	// On another node that was up all along.
	s.connect(b)
	s.waitCount(21, 5*time.Second)
	if got := s.data()[1:]; !slices.Equal(got, want) || s.replays[0] != "complete" {
		t.Fatalf("replay on b: %s, got %q, want %q", s.replays[0], got, want)
	}
	s.close()

	// On a node started after the id was issued: it loads the log.
	d := startNode(t, r)
	late := &sub{t: t, query: "?subscribe=room1", lastID: lastID}
	late.connect(d)
	late.waitCount(20, 5*time.Second)
	if got := late.data(); !slices.Equal(got, want) || late.replays[0] != "complete" {
		t.Fatalf("replay on a node started later: %s, got %q, want %q", late.replays[0], got, want)
	}
	// Live delivery continues after the replay, on every node.
	a.send("room1=live;")
	late.waitCount(21, 5*time.Second)

	// An id of another epoch (another cluster or a lost dataset) is unknown.
	other := &sub{t: t, query: "?subscribe=room1", lastID: "zz-5"}
	other.connect(d)
	if other.replays[0] != "unknown" {
		t.Fatalf("foreign id: X-Hasses-Replay %q, want unknown", other.replays[0])
	}
}

func TestClusterKill9UnderLoad(t *testing.T) {
	r := startRedis(t)
	nodes := []*daemon{startNode(t, r), startNode(t, r), startNode(t, r)}
	const perNode, tokens = 10, 4
	var subs []*sub
	for _, d := range nodes {
		for k := range perNode {
			subs = append(subs, newSub(t, d, fmt.Sprintf("?subscribe=t%d", k%tokens)))
		}
	}
	victim := nodes[1]
	// Publishers on the two surviving nodes, through the HTTP API: what
	// was answered 200 must reach every stream of its token.
	var mu sync.Mutex
	want := map[string][]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, d := range []*daemon{nodes[0], nodes[2]} {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				tok, data := fmt.Sprintf("t%d", k%tokens), fmt.Sprintf("p%d-%d", i, k)
				mu.Lock() // one publication per token at a time, so want is in id order
				if status, _, _ := d.publishHTTP(jsonMsg(tok, data)); status == http.StatusOK {
					want[tok] = append(want[tok], data)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	victim.kill9()
	// The victim's clients notice and reconnect elsewhere, as EventSource
	// does after its retry delay.
	time.Sleep(150 * time.Millisecond)
	for i, s := range subs[perNode : 2*perNode] {
		waitFor(t, "the stream to notice the kill", s.dropped)
		s.connect([]*daemon{nodes[0], nodes[2]}[i%2])
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for i, s := range subs {
		tok := fmt.Sprintf("t%d", i%perNode%tokens)
		s.waitCount(len(want[tok]), 10*time.Second)
		time.Sleep(10 * time.Millisecond)
		if got := s.data(); !slices.Equal(got, want[tok]) {
			t.Errorf("stream %d (%s): %d events, want %d; lost or duplicated", i, tok, len(got), len(want[tok]))
		}
		for _, rp := range s.replays {
			if rp != "complete" {
				t.Errorf("stream %d: replay %q after the kill, want complete", i, rp)
			}
		}
		total += len(want[tok])
	}
	t.Logf("%d deliveries checked; %d streams moved from the killed node, 0 lost, 0 duplicated", total, perNode)
}

func TestClusterRedisRestart(t *testing.T) {
	r := startRedis(t)
	a, b := startNode(t, r, "-heartbeat=200ms"), startNode(t, r, "-heartbeat=200ms", "-cluster-queue=2")
	sa, sb := newSub(t, a, "?subscribe=room1"), newSub(t, b, "?subscribe=room1")
	s2 := newSub(t, a, "?subscribe=room2")
	a.send("room1=one;")
	sa.waitCount(1, 5*time.Second)
	sb.waitCount(1, 5*time.Second)
	oldID := sa.got()[0].ID

	r.kill()
	waitFor(t, "the nodes to notice", func() bool { return !a.ready() && !b.ready() })
	status, _, h := b.publishHTTP(jsonMsg("room1", "refused"))
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("HTTP publish while Redis is down: %d Retry-After %q, want 503 with Retry-After", status, h.Get("Retry-After"))
	}
	a.send("room1=q-1;room1=q-2;room1=q-3;")           // queued in order
	b.send("room2=d-1;room2=d-2;room2=d-3;room2=d-4;") // beyond b's queue of 2: dropped
	comments := sa.heartbeats()
	// A browser reconnecting now still gets its stream (200).
	late := newSub(t, b, "?subscribe=room1")
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && sa.heartbeats() == comments; {
		time.Sleep(50 * time.Millisecond)
	}
	if sa.dropped() || sb.dropped() || sa.heartbeats() == comments {
		t.Fatalf("streams must stay open with heartbeats while Redis is down (dropped %v %v, heartbeats %d)", sa.dropped(), sb.dropped(), sa.heartbeats()-comments)
	}

	r.restart() // empty: a new dataset, a new epoch
	waitFor(t, "the nodes to be ready again", func() bool { return a.ready() && b.ready() })
	for name, s := range map[string]*sub{"a": sa, "b": sb, "late": late} {
		s.waitCount(map[string]int{"a": 4, "b": 4, "late": 3}[name], 10*time.Second)
		time.Sleep(50 * time.Millisecond)
		evs := s.got()
		if s.resets() != 1 {
			t.Errorf("%s: %d hasses-reset events, want exactly 1: %+v", name, s.resets(), evs)
		}
		data := s.data()
		if got := data[len(data)-3:]; !slices.Equal(got, []string{"q-1", "q-2", "q-3"}) {
			t.Errorf("%s: queued units %q, want q-1 q-2 q-3 in order", name, got)
		}
		if i := slices.IndexFunc(evs, func(ev event) bool { return ev.Event == "hasses-reset" }); i >= 0 {
			if i != len(evs)-4 || strings.Split(evs[i].ID, "-")[0] == strings.Split(oldID, "-")[0] {
				t.Errorf("%s: the reset must come before the queued units, with the new epoch: %+v", name, evs)
			}
		}
	}
	s2.waitCount(2, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	if got := s2.data(); !slices.Equal(got, []string{"d-1", "d-2"}) {
		t.Errorf("units queued on b: %q, want d-1 d-2 (its queue holds 2)", got)
	}
	if n := b.metric(`hasses_cluster_publish_errors_total{reason="queue_full"}`); n != 2 || !strings.Contains(b.log.String(), "publish queue full") {
		t.Errorf("dropped units: counted %v, want 2, and logged", n)
	}
	if a.metric("hasses_cluster_epoch_changes_total") != 1 {
		t.Errorf("epoch changes on a: %v, want 1", a.metric("hasses_cluster_epoch_changes_total"))
	}
	// An id from before the restart cannot be resumed exactly.
	old := &sub{t: t, query: "?subscribe=room1", lastID: oldID}
	old.connect(b)
	if old.replays[0] != "unknown" {
		t.Errorf("old id after a Redis restart: %q, want unknown", old.replays[0])
	}
	// And an id after the restart resumes exactly, on the other node.
	sb.close()
	b.send("room1=after;")
	sa.waitCount(5, 5*time.Second)
	sb.connect(a)
	sb.waitCount(5, 5*time.Second)
	if got := sb.data(); got[len(got)-1] != "after" || sb.replays[0] != "complete" {
		t.Errorf("resume after the restart: %s %q", sb.replays[0], got)
	}
}

func TestClusterRedisPaused(t *testing.T) {
	r := startRedis(t)
	a, b := startNode(t, r), startNode(t, r)
	sa, sb := newSub(t, a, "?subscribe=room1"), newSub(t, b, "?subscribe=room1")
	var want []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var slowest time.Duration
	wg.Go(func() { // line units on a: queued while Redis does not answer
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			data := fmt.Sprintf("tcp-%d", k)
			a.send("room1=" + data + ";")
			want = append(want, data)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	r.pause()
	time.Sleep(2 * time.Second)
	r.resume()
	time.Sleep(300 * time.Millisecond)
	// A publish answered after the pause is delivered after everything
	// queued before it.
	start := time.Now()
	status := 0
	for time.Since(start) < 3*time.Second && status != http.StatusOK {
		status, _, _ = b.publishHTTP(jsonMsg("room1", "http-after")) // 503: retry, as a publisher should
		if status != http.StatusOK {
			time.Sleep(100 * time.Millisecond)
		}
	}
	slowest = time.Since(start)
	close(stop)
	wg.Wait()
	if status != http.StatusOK {
		t.Fatalf("publish after the pause: %d", status)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, s := range map[string]*sub{"a": sa, "b": sb} {
		s.waitCount(len(want)+1, 10*time.Second)
		time.Sleep(50 * time.Millisecond)
		got := s.data()
		tail := got[len(got)-1]
		got = got[:len(got)-1]
		if i := slices.Index(got, "http-after"); i >= 0 {
			// The publisher was still sending line units after the HTTP
			// publish; those come after it.
			got = slices.Delete(slices.Clone(s.data()), i, i+1)
			tail = "http-after"
		}
		if !slices.Equal(got, want) || tail != "http-after" || s.resets() != 0 {
			t.Errorf("%s: %d events (resets %d), want the %d line units in order and http-after", name, len(got), s.resets(), len(want))
		}
	}
	t.Logf("%d units across a 2 s pause of Redis: none lost, order kept; publish after it answered in %v", len(want), slowest)
}

func TestClusterLogTrimmedPastStalledNode(t *testing.T) {
	r := startRedis(t)
	const logLen = 600
	// A history long enough for the replays below (the default keeps 100
	// events per token).
	a := startNode(t, r, fmt.Sprintf("-cluster-log=%d", logLen), "-history-count=5000")
	b := startNode(t, r, fmt.Sprintf("-cluster-log=%d", logLen), "-history-count=5000")
	s := newSub(t, b, "?subscribe=room1")
	probe := newSub(t, a, "?subscribe=room1")
	a.send("room1=before;")
	s.waitCount(1, 5*time.Second)

	b.cmd.Process.Signal(syscall.SIGSTOP)
	// 2,000 publications while b is stopped, in bursts shorter than the
	// log so that a, which is running, never falls behind it.
	const total = 2000
	for k := 0; k < total; k += 200 {
		var msgs strings.Builder
		for j := k; j < k+200; j++ {
			fmt.Fprintf(&msgs, "room1=m-%d;", j)
		}
		a.send(msgs.String())
		probe.waitCount(k+201, 10*time.Second)
	}
	if n, _ := strconv.Atoi(strings.TrimPrefix(r.do("XLEN {hasses}:log"), ":")); n > 1000 {
		t.Fatalf("the log keeps %d entries; -cluster-log=%d should have trimmed it", n, logLen)
	}
	b.cmd.Process.Signal(syscall.SIGCONT)

	waitFor(t, "the stalled node to catch up", func() bool {
		d := s.data()
		return d[len(d)-1] == fmt.Sprintf("m-%d", total-1)
	})
	if probe.resets() != 0 {
		t.Fatalf("the running node reset its streams: it fell behind the log")
	}
	evs := s.got()
	i := slices.IndexFunc(evs, func(ev event) bool { return ev.Event == "hasses-reset" })
	if i < 0 || s.resets() != 1 || evs[i].Data != "gap" {
		t.Fatalf("stalled node: want one hasses-reset (gap), got %d: %d events, first %+v last %+v", s.resets(), len(evs), evs[:min(len(evs), 5)], evs[len(evs)-1])
	}
	// Before the reset: the events it had; after: the rest of the log, in
	// order, with no hole after the reset's id.
	after := s.data()[i:]
	first, _ := strconv.Atoi(strings.TrimPrefix(after[0], "m-"))
	for k, d := range after {
		if d != fmt.Sprintf("m-%d", first+k) {
			t.Fatalf("after the reset: %q at %d, want m-%d", d, k, first+k)
		}
	}
	if b.metric("hasses_cluster_bus_gaps_total") != 1 {
		t.Errorf("bus gaps on b: %v, want 1", b.metric("hasses_cluster_bus_gaps_total"))
	}
	// A reconnect from before the hole cannot be complete on b.
	old := &sub{t: t, query: "?subscribe=room1", lastID: evs[0].ID}
	old.connect(b)
	if old.replays[0] != "gap" {
		t.Errorf("replay from before the hole on b: %q, want gap", old.replays[0])
	}
	// From the reset's id it is complete.
	fromReset := &sub{t: t, query: "?subscribe=room1", lastID: evs[i].ID}
	fromReset.connect(b)
	if fromReset.replays[0] != "complete" {
		t.Errorf("replay from the reset's id: %q, want complete", fromReset.replays[0])
	}
	t.Logf("b missed %d events while stopped; it said so with one hasses-reset", first)
}

func TestClusterRedisRollback(t *testing.T) {
	r := startRedis(t)
	a, b := startNode(t, r), startNode(t, r)
	sa := newSub(t, a, "?subscribe=room1")
	a.send("room1=one;room1=two;")
	sa.waitCount(2, 5*time.Second)
	if got := r.do("SAVE"); got != "+OK" {
		t.Fatalf("SAVE: %q", got)
	}
	b.send("room1=three;room1=four;")
	sa.waitCount(4, 5*time.Second)
	evs := sa.got()
	r.restart() // from the RDB: three and four are gone from Redis
	waitFor(t, "the nodes to be ready again", func() bool { return a.ready() && b.ready() })
	a.send("room1=five;")
	sa.waitCount(5, 5*time.Second)
	time.Sleep(100 * time.Millisecond)
	// A node that never saw three and four must not claim a complete
	// replay from before them.
	c := startNode(t, r)
	for _, ev := range evs[1:3] { // the ids of two and three
		s := &sub{t: t, query: "?subscribe=room1", lastID: ev.ID}
		s.connect(c)
		if s.replays[0] != "gap" {
			t.Errorf("replay from %s (%s) on a node that joined after the rollback: %q, want gap", ev.Data, ev.ID, s.replays[0])
		}
	}
	last := sa.got()[len(sa.got())-1]
	fresh := &sub{t: t, query: "?subscribe=room1", lastID: last.ID}
	fresh.connect(c)
	if fresh.replays[0] != "complete" {
		t.Errorf("replay from after the rollback: %q, want complete", fresh.replays[0])
	}
	if got := sa.data(); !slices.Equal(got, []string{"one", "two", "three", "four", "five"}) || seqOf(t, last.ID) <= seqOf(t, evs[3].ID) {
		t.Errorf("live stream across the rollback: %q; new ids must stay above the lost ones", got)
	}
	if a.metric("hasses_cluster_rollbacks_total")+b.metric("hasses_cluster_rollbacks_total") < 1 {
		t.Errorf("the rollback was not noticed")
	}
	// a had read past the restored state: it cannot tell whether the
	// entries below the new link are all ones it read (after a failover,
	// other nodes may have published on the new master meanwhile), so its
	// live stream gets one hasses-reset, before "five".
	if evs := sa.got(); sa.resets() != 1 || evs[len(evs)-2].Event != "hasses-reset" {
		t.Errorf("live stream on a node past the restored state: %+v, want one hasses-reset before five", evs)
	}
}
