package itest

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hasses-go/hasses/internal/loadgen"
)

// runLoad builds cmd/hasses-load and runs it against d with args; it
// returns the result of its JSON line.
func runLoad(t *testing.T, d *daemon, args ...string) *loadgen.Result {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hasses-load")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/hasses-load").CombinedOutput(); err != nil {
		t.Fatalf("building hasses-load: %v\n%s", err, out)
	}
	args = append([]string{"-addr", d.sse, "-ctl", d.ctl, "-timeout", "60s"}, args...)
	out, err := exec.Command(bin, args...).CombinedOutput()
	t.Logf("hasses-load %s:\n%s", strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("hasses-load: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r loadgen.Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("the last line is not the result: %v", err)
	}
	return &r
}

// TestLoadStorm: the load tool against the real server, 50 streams of 8
// tokens of their own (400 topics), 200 messages to random tokens and 10 to
// *, 30 % of the streams reconnecting with Last-Event-ID in the middle:
// every event reaches every stream once and in order, and every replay is
// complete.
func TestLoadStorm(t *testing.T) {
	d := start(t)
	r := runLoad(t, d, "-n", "50", "-tokens", "0", "-tokens-per-stream", "8", "-rate", "100", "-broadcast-rate", "5",
		"-duration", "2s", "-storm", "0.3", "-storm-at", "500ms", "-storm-within", "500ms", "-storm-down", "200ms")
	if r.Connected != 50 || r.Tokens != 400 || r.Published != 210 || r.Broadcasts != 10 {
		t.Errorf("%d connected, %d tokens, %d published (%d to *); want 50, 400, 210 (10)", r.Connected, r.Tokens, r.Published, r.Broadcasts)
	}
	// 200 messages reach one stream each, 10 reach all 50.
	if r.Expected != 200+10*50 || r.Received != r.Expected || r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Unexpected != 0 {
		t.Errorf("expected %d received %d lost %d duplicated %d reordered %d unexpected %d; want 700 received of 700, none else",
			r.Expected, r.Received, r.Lost, r.Duplicated, r.Reordered, r.Unexpected)
	}
	st := r.Storm
	if st == nil || st.Streams != 15 || st.Reconnects != 15 || st.Answered != 15 || st.Replay["complete"] != 15 || st.Lost != 0 {
		t.Errorf("storm %+v: want 15 streams reconnected, answered and replayed complete, none lost", st)
	}
	if r.Resets != 0 {
		t.Errorf("%d hasses-reset events", r.Resets)
	}
}

// TestLoadChurn: streams closing and opening anew while publishing, on
// shared tokens: nothing lost, duplicated or reordered, on the stable
// streams or the churning ones.
func TestLoadChurn(t *testing.T) {
	d := start(t)
	r := runLoad(t, d, "-n", "40", "-tokens", "20", "-tokens-per-stream", "4", "-token-prefix", "room",
		"-rate", "100", "-duration", "2s", "-churn", "10")
	c := r.Churn
	if r.Connected != 40 || c == nil || c.Pool != 20 || c.Opens < 15 || c.Refused != 0 {
		t.Fatalf("%d connected, churn %+v; want 40, about 20 opened anew among 20", r.Connected, c)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Unexpected != 0 || c.Lost != 0 || r.Received == 0 {
		t.Errorf("received %d, lost %d duplicated %d reordered %d unexpected %d, churn %+v; want none lost, duplicated or reordered",
			r.Received, r.Lost, r.Duplicated, r.Reordered, r.Unexpected, c)
	}
}

// TestLoadConnectStorm: 50 streams of 8 new tokens each connect for the
// first time while 10 others receive: nothing lost, duplicated or
// reordered, every new stream answered.
func TestLoadConnectStorm(t *testing.T) {
	d := start(t)
	r := runLoad(t, d, "-n", "60", "-tokens", "0", "-tokens-per-stream", "8", "-rate", "100", "-broadcast-rate", "5",
		"-duration", "2s", "-storm", "50", "-storm-new", "-storm-at", "500ms", "-storm-within", "500ms")
	st := r.Storm
	if r.Connected != 10 || st == nil || !st.New || st.Streams != 50 || st.Reconnects != 50 || st.Answered != 50 {
		t.Fatalf("%d connected before, storm %+v; want 10, and 50 new streams answered", r.Connected, st)
	}
	if r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Unexpected != 0 || st.Expected == 0 || r.Resets != 0 {
		t.Errorf("lost %d duplicated %d reordered %d unexpected %d resets %d, storm %+v; want none, and the new streams expecting events",
			r.Lost, r.Duplicated, r.Reordered, r.Unexpected, r.Resets, st)
	}
}
