package itest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// startSentinel starts a Redis Sentinel (redis-server --sentinel, from the
// same Debian package) that monitors r as master "main" with a quorum of 1,
// with the extra configuration lines given, and returns a client of it (its
// try and do send commands to the sentinel).
func startSentinel(t *testing.T, r *redisServer, conf ...string) *redisServer {
	t.Helper()
	dir := t.TempDir()
	for range 20 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		file := filepath.Join(dir, "sentinel.conf") // sentinel rewrites it: a file of its own
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor main 127.0.0.1 %d 1\n", port, dir, r.port)
		for _, c := range conf {
			text += c + "\n"
		}
		os.WriteFile(file, []byte(text), 0o600)
		cmd := exec.Command(r.path, file, "--sentinel")
		log := &logBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("sentinel log:\n%s", tail(log.String(), 3000))
			}
		})
		s := &redisServer{t: t, path: r.path, port: port, cmd: cmd, done: done, log: log}
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if out, err := s.try("PING"); err == nil && out == "+PONG" {
				return s
			}
		}
		t.Logf("sentinel did not start:\n%s", log.String())
	}
	t.Fatal("could not start a sentinel")
	return nil
}

func sentinelURL(s *redisServer) string {
	return fmt.Sprintf("-cluster=redis+sentinel://127.0.0.1:%d/0?master=main", s.port)
}

// TestClusterThroughSentinel joins two nodes through a Redis Sentinel that
// monitors the test's Redis.
func TestClusterThroughSentinel(t *testing.T) {
	r := startRedis(t)
	url := sentinelURL(startSentinel(t, r))
	a := start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	b := start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	waitFor(t, "the nodes to join through the sentinel", func() bool { return a.ready() && b.ready() })
	s := newSub(t, b, "?subscribe=room1")
	a.send("room1=via-sentinel;")
	s.waitCount(1, 5*time.Second)
	if got := s.data(); got[0] != "via-sentinel" {
		t.Fatalf("got %q", got)
	}
}

// TestClusterSentinelFailover moves the master of a sentinel-monitored Redis
// to its replica while three nodes publish and stream: once by kill -9 of
// the master (a crash), once by SENTINEL FAILOVER (the old master lives on
// and becomes a replica).
func TestClusterSentinelFailover(t *testing.T) {
	t.Run("kill9", func(t *testing.T) { testSentinelFailover(t, true) })
	t.Run("command", func(t *testing.T) { testSentinelFailover(t, false) })
}

// sent is one publication: an HTTP one (id set when answered 200) or a
// control-port line unit (never answered).
type sent struct {
	data string
	id   string
	at   time.Time // when it was sent
}

func testSentinelFailover(t *testing.T, kill bool) {
	began := time.Now()
	master := startRedis(t, "--repl-diskless-sync-delay", "0") // the default waits 5 s for more replicas
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	waitFor(t, "the replica to sync", func() bool {
		info, _ := replica.try("INFO replication")
		return strings.Contains(info, "master_link_status:up")
	})
	sen := startSentinel(t, master, "sentinel down-after-milliseconds main 1000", "sentinel failover-timeout main 5000")
	waitFor(t, "the sentinel to see the replica", func() bool {
		n, _ := sen.try("SENTINEL REPLICAS main")
		return n == "*1"
	})
	url := sentinelURL(sen)
	var nodes []*daemon
	for range 3 {
		nodes = append(nodes, start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0", "-heartbeat=200ms",
			"-history-count=10000", "-drain=100ms"))
	}
	t.Cleanup(func() { // in parallel: each takes about a second
		var wg sync.WaitGroup
		for _, d := range nodes {
			wg.Go(func() { d.stop() })
		}
		wg.Wait()
	})
	waitFor(t, "the nodes to join through the sentinel", func() bool {
		for _, d := range nodes {
			if !d.ready() {
				return false
			}
		}
		return true
	})
	type named struct {
		name string
		s    *sub
	}
	var subs []named
	for i, d := range nodes {
		for _, q := range []string{"?subscribe=r1", "?subscribe=*"} {
			subs = append(subs, named{fmt.Sprintf("node%d%s", i, q), newSub(t, d, q)})
		}
	}

	// Publishers on every node, all to r1: answered HTTP publications
	// ("h<node>-<n>") and control-port line units ("c<node>-<n>").
	var (
		mu    sync.Mutex
		pubs  []sent
		lines []sent
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for i, d := range nodes {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				p := sent{data: fmt.Sprintf("h%d-%d", i, k), at: time.Now()}
				status, id, _ := d.publishHTTP(jsonMsg("r1", p.data))
				if status == http.StatusOK {
					if id == "" {
						t.Errorf("HTTP publish %s: 200 without an id", p.data)
					}
					p.id = id
				}
				mu.Lock()
				pubs = append(pubs, p)
				mu.Unlock()
				time.Sleep(30 * time.Millisecond)
			}
		})
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(30 * time.Millisecond):
				}
				l := sent{data: fmt.Sprintf("c%d-%d", i, k), at: time.Now()}
				d.send("r1=" + l.data + ";") // returns once the node took it
				mu.Lock()
				lines = append(lines, l)
				mu.Unlock()
			}
		})
	}
	for _, n := range subs {
		n.s.waitCount(6, 5*time.Second)
	}
	// The replica has the cluster's dataset. (After a diskless sync, the
	// master streams writes only once the replica first acknowledges, up to
	// a second later: a failover before that promotes an empty replica,
	// which the nodes take for a new epoch.)
	waitFor(t, "the replica to stream the cluster's writes", func() bool {
		e, _ := replica.try("HGET {hasses}:meta e")
		return e != "" && e == master.do("HGET {hasses}:meta e")
	})
	// The last id each node's r1 stream had before the failover, for the
	// replays.
	var before []string
	for _, n := range subs {
		if n.s.query == "?subscribe=r1" {
			before = append(before, n.s.got()[len(n.s.got())-1].ID)
		}
	}
	heartbeats := make([]int, len(subs))
	for i, n := range subs {
		heartbeats[i] = n.s.heartbeats()
	}

	moved := time.Now()
	if kill {
		master.kill()
	} else if out := sen.do("SENTINEL FAILOVER main"); out != "+OK" {
		t.Fatalf("SENTINEL FAILOVER: %q", out)
	}
	// A stream opened during the failover gets its 200 and the events
	// published after it.
	var late []named
	for i, d := range nodes {
		late = append(late, named{fmt.Sprintf("node%d-late", i), newSub(t, d, "?subscribe=r1")})
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, _ := replica.try("INFO replication"); strings.Contains(info, "role:master") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the sentinel did not promote the replica within 10 s")
		}
	}
	promoted := time.Since(moved)
	// The nodes follow the new master: /readyz and tcpcluster say ready,
	// and an HTTP publish is answered 200 on each.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok := true
		for _, d := range nodes {
			ok = ok && d.ready() && strings.Contains(d.command("tcpcluster"), `"ready":true`)
		}
		if ok {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the nodes were not ready within 10 s of the promotion")
		}
	}
	// ... and none is still connected to the old master, which (after
	// SENTINEL FAILOVER) stays a master, accepting writes, until the
	// sentinel turns it into a replica some seconds later.
	if !kill {
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if clients, err := master.try("CLIENT LIST"); err == nil && !strings.Contains(clients, "name=hasses") {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("nodes still connected to the old master 10 s after the promotion")
			}
		}
	}
	for i, d := range nodes {
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if status, _, _ := d.publishHTTP(jsonMsg("probe", "p")); status == http.StatusOK {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("node %d: no publish answered 200 within 10 s of the promotion", i)
			}
		}
	}
	completed := time.Now()
	followed := completed.Sub(moved)
	time.Sleep(600 * time.Millisecond) // publishing goes on on the new master
	close(stop)
	wg.Wait()

	// The streams stayed open; through the seconds without a master (a
	// kill), heartbeats went on. (SENTINEL FAILOVER leaves no quiet time.)
	for i, n := range subs {
		if n.s.dropped() || (kill && n.s.heartbeats() == heartbeats[i]) {
			t.Errorf("%s: dropped %v, %d heartbeats since the failover; want open, with heartbeats", n.name, n.s.dropped(), n.s.heartbeats()-heartbeats[i])
		}
	}

	// Every publication sent after the failover completed (HTTP answered
	// 200, and every line unit) must reach every stream.
	mu.Lock()
	defer mu.Unlock()
	idOf := map[string]string{}
	var after []string
	for _, p := range pubs {
		if p.id != "" {
			idOf[p.data] = p.id
			if p.at.After(completed) {
				after = append(after, p.data)
			}
		}
	}
	isLine := map[string]bool{}
	for _, l := range lines {
		isLine[l.data] = true
		if l.at.After(completed) {
			after = append(after, l.data)
		}
	}
	if len(after) < 10 {
		t.Fatalf("only %d publications after the failover", len(after))
	}
	all := append(subs, late...)
	end := time.Now().Add(5 * time.Second)
	for _, n := range all {
		for ; ; time.Sleep(20 * time.Millisecond) {
			have := map[string]bool{}
			for _, d := range n.s.data() {
				have[d] = true
			}
			var missing []string
			for _, d := range after {
				if !have[d] {
					missing = append(missing, d)
				}
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(end) {
				t.Errorf("%s: %d publications made after the failover never arrived: %q", n.name, len(missing), missing)
				break
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up

	// What the new master holds: a publication answered by the old one and
	// not in it was lost by the failover (asynchronous replication: the
	// replica lagged, or the old master took writes after the promotion).
	kept := map[string]bool{}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(replica.port))}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log, err := c.Do(context.Background(), c.B().Xrange().Key("{hasses}:log").Start("-").End("+").Build()).AsXRange()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range log {
		kept[x.FieldValues["d"]] = true
	}

	// Around the failover: once each, ids increasing, the answered id
	// everywhere, each source in order; a publication the new master kept
	// (answered 200, or a line unit) missing from a stream that was open
	// for it only if a hasses-reset came at or after it. One the failover
	// lost may be missing without a reset on a node that never read it.
	lostAnswered := map[string]bool{}
	seen := map[string]string{} // data -> id, across streams
	totalResets := 0
	for _, n := range all {
		evs := n.s.got()
		got := map[string]bool{}
		var last uint64
		var resets []uint64
		for _, ev := range evs {
			q := seqOf(t, ev.ID)
			if q <= last {
				t.Errorf("%s: id %s (%q) not above the previous one", n.name, ev.ID, ev.Data)
			}
			last = max(last, q)
			if ev.Event == "hasses-reset" {
				resets = append(resets, q)
				continue
			}
			if ev.Data == "p" {
				continue // the probes, for the * streams
			}
			if got[ev.Data] {
				t.Errorf("%s: %q delivered twice", n.name, ev.Data)
			}
			got[ev.Data] = true
			if _, ok := idOf[ev.Data]; !ok && !isLine[ev.Data] && !strings.HasPrefix(ev.Data, "h") {
				t.Errorf("%s: unexpected event %+v", n.name, ev)
			}
			if id, ok := idOf[ev.Data]; ok && id != ev.ID {
				t.Errorf("%s: %q delivered as %s, answered as %s", n.name, ev.Data, ev.ID, id)
			}
			if id, ok := seen[ev.Data]; ok && id != ev.ID {
				t.Errorf("%s: %q has id %s here and %s elsewhere", n.name, ev.Data, ev.ID, id)
			}
			seen[ev.Data] = ev.ID
		}
		checkSourceOrder(t, n.name, n.s.data())
		totalResets += len(resets)
		resetAfter := func(q uint64) bool {
			for _, r := range resets {
				if r >= q {
					return true
				}
			}
			return false
		}
		first := seqOf(t, evs[0].ID) // a late stream: what came before it is not its own
		for _, p := range pubs {
			if p.id == "" || seqOf(t, p.id) < first || got[p.data] || resetAfter(seqOf(t, p.id)) {
				continue
			}
			if !kept[p.data] {
				lostAnswered[p.data] = true
				continue
			}
			t.Errorf("%s: %s (%s, answered 200) missing without a hasses-reset: a silent hole", n.name, p.data, p.id)
		}
		if !strings.HasSuffix(n.name, "-late") {
			for _, l := range lines {
				if !got[l.data] && kept[l.data] && len(resets) == 0 {
					t.Errorf("%s: line unit %s missing without a hasses-reset: a silent hole", n.name, l.data)
				}
			}
		}
	}

	// A reconnect with an id from before the failover: complete only with
	// every publication answered after it.
	replays := make([]string, len(nodes))
	for i, d := range nodes {
		s := &sub{t: t, query: "?subscribe=r1", lastID: before[i]}
		s.connect(d)
		from := seqOf(t, before[i])
		var want []string
		for _, p := range pubs {
			if p.id != "" && seqOf(t, p.id) > from {
				want = append(want, p.data)
			}
		}
		switch replays[i] = s.replays[0]; replays[i] {
		case "complete":
			var missing []string
			for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				have := map[string]bool{}
				for _, d := range s.data() {
					have[d] = true
				}
				missing = missing[:0]
				for _, w := range want {
					if !have[w] {
						missing = append(missing, w)
					}
				}
				if len(missing) == 0 || time.Now().After(end) {
					break
				}
			}
			if len(missing) > 0 {
				t.Errorf("node %d: the replay from %s claims complete but lacks %d answered publications: %q", i, before[i], len(missing), missing)
			}
		case "gap", "unknown":
		default:
			t.Errorf("node %d: replay from before the failover: %q", i, replays[i])
		}
	}

	var rollbacks, gaps, epochs float64
	for _, d := range nodes {
		rollbacks += d.metric("hasses_cluster_rollbacks_total")
		gaps += d.metric("hasses_cluster_bus_gaps_total")
		epochs += d.metric("hasses_cluster_epoch_changes_total")
	}
	t.Logf("replica promoted %v after, nodes publishing again %v after; %d HTTP publications (%d answered), %d line units, %d after the failover; "+
		"resets %d on %d streams, rollbacks %v, bus gaps %v, epoch changes %v; answered but lost by the failover, missing without a reset: %d; replays from before %v; test %v",
		promoted.Round(time.Millisecond), followed.Round(time.Millisecond), len(pubs), len(idOf), len(lines), len(after),
		totalResets, len(all), rollbacks, gaps, epochs, len(lostAnswered), replays, time.Since(began).Round(time.Millisecond))
}
