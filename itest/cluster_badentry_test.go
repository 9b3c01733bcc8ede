package itest

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisCLI runs redis-cli against r with the commands on its input and
// returns its output lines.
func (r *redisServer) cli(commands ...string) []string {
	r.t.Helper()
	cmd := exec.Command("redis-cli", "-p", strconv.Itoa(r.port))
	cmd.Stdin = strings.NewReader(strings.Join(commands, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-cli: %v: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Malformed entries in the cluster's log (written by something else than
// a node) are skipped and counted: no stream is reset, the events around
// them arrive, and the log gets a line per second, not one per entry. Each
// used to reset every live stream and log an ERROR line.
func TestClusterMalformedEntriesSkipped(t *testing.T) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Skip("redis-cli is not installed")
	}
	redis := startRedis(t)
	d := startNode(t, redis)
	s := newSub(t, d, "?subscribe=a")
	if code, _, _ := d.publishHTTP(jsonMsg("a", "one")); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	s.waitCount(1, 10*time.Second)
	top := redis.cli("XREVRANGE {hasses}:log + - COUNT 1")[0]
	seq, err := strconv.ParseUint(strings.TrimSuffix(top, "-0"), 10, 64)
	if err != nil {
		t.Fatalf("log top %q", top)
	}
	var garbage []string
	for i := range 200 {
		switch i % 3 {
		case 0:
			garbage = append(garbage, fmt.Sprintf("XADD {hasses}:log %d-0 m garbage", seq+uint64(i)+1))
		case 1:
			garbage = append(garbage, fmt.Sprintf("XADD {hasses}:log %d-0 h nonsense m x", seq+uint64(i)+1))
		default:
			garbage = append(garbage, fmt.Sprintf("XADD {hasses}:log %d-7 x y", seq+uint64(i)+1))
		}
	}
	redis.cli(garbage...)
	waitFor(t, "a publication after the garbage", func() bool {
		code, _, _ := d.publishHTTP(jsonMsg("a", "two"))
		return code == 200
	})
	s.waitCount(2, 10*time.Second)
	waitFor(t, "the malformed entries counted", func() bool {
		return d.metric(`hasses_cluster_bus_errors_total{reason="malformed"}`) == 200
	})
	if got := strings.Join(s.data(), ","); got != "one,two" || s.resets() != 0 || s.dropped() {
		t.Errorf("stream got %q, %d resets, dropped %v; want one,two and no reset", got, s.resets(), s.dropped())
	}
	if n := strings.Count(d.log.String(), "malformed log entries skipped"); n < 1 || n > 3 {
		t.Errorf("%d log lines for 200 malformed entries, want one a second", n)
	}

	// A corrupted entry in the chain of links (the head names it) is an
	// event lost for its tokens, which no one can name: the next entry
	// links to it, and live streams get one reset for it.
	epoch := redis.cli("HGET {hasses}:meta e")[0]
	head := redis.cli("HGET {hasses}:meta s")[0]
	tag := redis.cli("HGET {hasses}:meta u")[0]
	bad, _ := strconv.ParseUint(head, 10, 64)
	bad += 1000
	redis.cli(fmt.Sprintf("XADD {hasses}:log %d-0 h \"%s %s x:1 %s\" m corrupted", bad, epoch, head, tag),
		fmt.Sprintf("HSET {hasses}:meta s %d u x:1", bad))
	waitFor(t, "a publication after the corrupted entry", func() bool {
		code, _, _ := d.publishHTTP(jsonMsg("a", "three"))
		return code == 200
	})
	s.waitCount(3, 10*time.Second)
	if got := strings.Join(s.data(), ","); got != "one,two,three" || s.resets() != 1 {
		t.Errorf("stream got %q, %d resets; want one,two,three and one reset", got, s.resets())
	}
}
