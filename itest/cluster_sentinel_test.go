package itest

import (
	"encoding/json"
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

// ack is one HTTP publication and its answer.
type ack struct {
	data     string
	id       string // "" unless answered 200
	sentAt   time.Time
	answered time.Time
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
		nodes = append(nodes, start(t, url, "-pub=127.0.0.1:0", "-admin=127.0.0.1:0", "-heartbeat=200ms", "-history-count=10000"))
	}
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
		node int
		s    *sub
	}
	var subs []named
	for i, d := range nodes {
		for _, q := range []string{"?subscribe=r1", "?subscribe=*"} {
			subs = append(subs, named{fmt.Sprintf("node%d%s", i, q), i, newSub(t, d, q)})
		}
	}

	// Publishers on every node, all on r1: answered HTTP publications and
	// control-port line units, each source in order.
	var (
		mu    sync.Mutex
		acks  []ack
		lines []string // line units sent, each source in order
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
				a := ack{data: fmt.Sprintf("h%d-%d", i, k), sentAt: time.Now()}
				status, id, _ := d.publishHTTP(jsonMsg("r1", a.data))
				if a.answered = time.Now(); status == http.StatusOK {
					if id == "" {
						t.Errorf("HTTP publish %s: 200 without an id", a.data)
					}
					a.id = id
				}
				mu.Lock()
				acks = append(acks, a)
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
				data := fmt.Sprintf("c%d-%d", i, k)
				d.send("r1=" + data + ";")
				mu.Lock()
				lines = append(lines, data)
				mu.Unlock()
			}
		})
	}
	for _, n := range subs {
		n.s.waitCount(3, 5*time.Second)
	}
	// The last id each r1 stream had before the failover, for the replays.
	before := map[int]string{}
	for _, n := range subs {
		if strings.HasSuffix(n.name, "r1") {
			before[n.node] = n.s.got()[len(n.s.got())-1].ID
		}
	}
	heartbeats := make([]int, len(subs))
	for i, n := range subs {
		heartbeats[i] = n.s.heartbeats()
	}

	// The replica has the cluster's dataset (after a diskless sync, the
	// master streams writes only once the replica first acknowledges, up to
	// a second later: a failover before that promotes an empty replica, a
	// new epoch).
	waitFor(t, "the replica to stream the cluster's writes", func() bool {
		e, _ := replica.try("HGET {hasses}:meta e")
		return e != "" && e == master.do("HGET {hasses}:meta e")
	})
	moved := time.Now()
	if kill {
		master.kill()
	} else if out := sen.do("SENTINEL FAILOVER main"); out != "+OK" {
		t.Fatalf("SENTINEL FAILOVER: %q", out)
	}
	// A stream opened during the failover gets its 200 and its events.
	var late []named
	for i, d := range nodes {
		late = append(late, named{fmt.Sprintf("node%d-late", i), i, newSub(t, d, "?subscribe=r1")})
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, _ := replica.try("INFO replication")
		if strings.Contains(info, "role:master") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the sentinel did not promote the replica within 10 s")
		}
	}
	promoted := time.Since(moved)
	// The nodes follow the new master: ready, and publishing works on each.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok := true
		for _, d := range nodes {
			ok = ok && d.ready() && strings.Contains(d.command("tcpcluster"), `"ready":true`)
		}
		if ok {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the nodes did not become ready within 10 s of the promotion")
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
	mu.Lock()
	linesBefore := len(lines)
	mu.Unlock()
	time.Sleep(600 * time.Millisecond) // publishing goes on on the new master
	close(stop)
	wg.Wait()

	// The streams stayed open, with heartbeats.
	for i, n := range subs {
		if n.s.dropped() || n.s.heartbeats() == heartbeats[i] {
			t.Errorf("%s: dropped %v, %d heartbeats since the failover", n.name, n.s.dropped(), n.s.heartbeats()-heartbeats[i])
		}
	}

	// What every stream must show. An HTTP publication answered 200 after
	// the failover completed (sent after it) must be everywhere; one
	// answered before may be missing only from a stream that received a
	// hasses-reset after it. Line units are not answered: each source's
	// units arrive in order, once; one missing needs a reset too.
	mu.Lock()
	defer mu.Unlock()
	idOf := map[string]string{}
	var strict []string
	for _, a := range acks {
		if a.id == "" {
			continue
		}
		idOf[a.data] = a.id
		if a.sentAt.After(completed) {
			strict = append(strict, a.data)
		}
	}
	lineSet := map[string]bool{}
	for _, l := range lines {
		lineSet[l] = true
	}
	var lastLine []string // the last unit of each source: every stream waits for them
	for i := range nodes {
		for k := len(lines) - 1; k >= 0; k-- {
			if strings.HasPrefix(lines[k], fmt.Sprintf("c%d-", i)) {
				lastLine = append(lastLine, lines[k])
				break
			}
		}
	}
	all := append(subs, late...)
	for _, n := range all {
		want := append(append([]string(nil), strict...), lastLine...)
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			have := map[string]bool{}
			for _, d := range n.s.data() {
				have[d] = true
			}
			missing := 0
			for _, d := range want {
				if !have[d] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if time.Now().After(end) {
				t.Errorf("%s: %d of the events published after the failover never arrived", n.name, missing)
				break
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show up
	seen := map[string]string{}        // data -> id, across streams
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
				continue // the probes are on another token, for the * streams
			}
			if got[ev.Data] {
				t.Errorf("%s: %q delivered twice", n.name, ev.Data)
			}
			got[ev.Data] = true
			if id, ok := idOf[ev.Data]; ok && id != ev.ID {
				t.Errorf("%s: %q delivered as %s, answered as %s", n.name, ev.Data, ev.ID, id)
			}
			if id, ok := seen[ev.Data]; ok && id != ev.ID {
				t.Errorf("%s: %q has id %s here and %s elsewhere", n.name, ev.Data, ev.ID, id)
			}
			seen[ev.Data] = ev.ID
			if !lineSet[ev.Data] && !strings.HasPrefix(ev.Data, "h") {
				t.Errorf("%s: unexpected event %+v", n.name, ev)
			}
		}
		checkSourceOrder(t, n.name, n.s.data())
		first := seqOf(t, evs[0].ID)
		covered := func(q uint64) bool { // a reset came at or after event q
			for _, r := range resets {
				if r >= q {
					return true
				}
			}
			return false
		}
		for _, a := range acks {
			if a.id != "" && seqOf(t, a.id) >= first && !got[a.data] && !covered(seqOf(t, a.id)) {
				t.Errorf("%s: %s (%s, answered 200) missing without a hasses-reset (silent hole)", n.name, a.data, a.id)
			}
		}
		if n.s.query == "?subscribe=r1" && !strings.HasSuffix(n.name, "late") {
			for i, l := range lines {
				if i < linesBefore && !got[l] && len(resets) == 0 && seqOf(t, evs[0].ID) > 0 && l > "" {
					// A line unit has no id; judge by the stream's own
					// units of that source: a unit missing between two it
					// got is a hole.
					src := l[:strings.IndexByte(l, '-')+1]
					k, _ := strconv.Atoi(l[len(src):])
					if got[fmt.Sprintf("%s%d", src, k+1)] && k >= 3 {
						t.Errorf("%s: line unit %s missing without a hasses-reset", n.name, l)
					}
				}
			}
		}
		if len(resets) > 0 {
			t.Logf("%s: %d hasses-reset", n.name, len(resets))
		}
	}

	// A reconnect with an id from before the failover: complete only with
	// every answered event after it.
	for i, d := range nodes {
		s := &sub{t: t, query: "?subscribe=r1", lastID: before[i]}
		s.connect(d)
		from := seqOf(t, before[i])
		var want []string
		for _, a := range acks {
			if a.id != "" && seqOf(t, a.id) > from {
				want = append(want, a.data)
			}
		}
		switch rp := s.replays[0]; rp {
		case "complete":
			s.waitCount(len(want), 5*time.Second)
			have := map[string]bool{}
			for _, d := range s.data() {
				have[d] = true
			}
			for _, w := range want {
				if !have[w] {
					t.Errorf("node %d: replay from %s is complete but lacks %s", i, before[i], w)
				}
			}
		case "gap", "unknown":
			t.Logf("node %d: replay from before the failover: %s", i, rp)
		default:
			t.Errorf("node %d: replay from before the failover: %q", i, rp)
		}
	}

	var stats []string
	for i, d := range nodes {
		var st struct {
			Cluster struct {
				Seq uint64 `json:"seq"`
			} `json:"cluster"`
		}
		json.Unmarshal([]byte(d.command("tcpcluster")), &st)
		stats = append(stats, fmt.Sprintf("node%d rollbacks %v gaps %v", i, d.metric("hasses_cluster_rollbacks_total"), d.metric("hasses_cluster_bus_gaps_total")))
	}
	t.Logf("kill=%v: replica promoted %v after, nodes publishing again %v after; %d HTTP publications (%d after), %d line units; %s; whole test %v",
		kill, promoted.Round(time.Millisecond), followed.Round(time.Millisecond), len(acks), len(strict), len(lines), strings.Join(stats, ", "), time.Since(began).Round(time.Millisecond))
}
