package gcpace

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		percent        int
		headroom, live int64
		want           int
	}{
		{50, 64 * mib, 1000 * mib, 50},  // a large heap: its share is above the floor
		{50, 64 * mib, 128 * mib, 50},   // exactly the floor
		{50, 64 * mib, 100 * mib, 64},   // the floor
		{50, 64 * mib, 8 * mib, 800},    // a small heap grows by the floor
		{50, 64 * mib, 0, 1600},         // before the first collection: as if 4 MiB
		{50, 64 * mib, 1 * mib, 1600},   // nor less
		{100, 0, 8 * mib, 100},          // no floor
		{50, 64*mib + 1, 64 * mib, 101}, // rounded up
	} {
		if got := Percent(c.percent, c.headroom, c.live); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.percent, c.headroom, c.live, got, c.want)
		}
	}
}

func TestCgroupLimit(t *testing.T) {
	for _, c := range []struct {
		file, content string
		want          int64
	}{
		{"memory.max", "67108864\n", 64 << 20},
		{"memory.max", "max\n", 0},
		{"memory/memory.limit_in_bytes", "134217728\n", 128 << 20},
		{"memory/memory.limit_in_bytes", "9223372036854771712\n", 0}, // v1's unlimited
		{"other", "1", 0},
	} {
		root := t.TempDir()
		p := filepath.Join(root, c.file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := cgroupLimit(root); got != c.want {
			t.Errorf("%s %q: %d, want %d", c.file, c.content, got, c.want)
		}
	}
}

// The headroom is at most an eighth of GOMEMLIMIT.
func TestHeadroomUnderLimit(t *testing.T) {
	old := debug.SetMemoryLimit(80 << 20)
	defer debug.SetMemoryLimit(old)
	if got := Headroom(); got != 10<<20 {
		t.Fatalf("Headroom under an 80 MiB limit = %d, want 10 MiB", got)
	}
}

// After each collection the percent follows the live heap.
func TestPacerFollowsLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	p := &Pacer{Percent: 50, Headroom: 64 << 20}
	p.Start()
	defer p.Stop()
	if got := gogc(); got != 50 {
		t.Fatalf("not boosted: GOGC %d, want 50", got)
	}
	if !p.Boost(true) || p.Boost(true) {
		t.Fatal("Boost did not report its change")
	}
	defer p.Boost(false)
	live := make([][]byte, 0, 64)
	for _, size := range []int{0, 24 << 20, 200 << 20} {
		for n := 0; n < size; n += 1 << 20 {
			live = append(live, make([]byte, 1<<20))
		}
		// The update runs on the cleanup goroutine after a cycle, or
		// after the next when one had begun meanwhile (the new sentinel,
		// allocated during its marking, survives it).
		var want int
		for range 5 {
			runtime.GC()
			want = Percent(50, 64<<20, liveHeap())
			if waitGOGC(want) {
				break
			}
		}
		if got := gogc(); got != want {
			t.Fatalf("live %d MiB: GOGC %d, want %d", liveHeap()>>20, got, want)
		}
	}
	runtime.KeepAlive(live)
	live = nil // a small heap again: the floor counts
	for range 5 {
		runtime.GC()
		if waitGOGC(Percent(50, 64<<20, liveHeap())) {
			break
		}
	}
	p.Boost(false)
	if got := gogc(); got == 50 {
		t.Fatal("boost off: GOGC lowered before a collection")
	}
	for range 5 { // after the next collection (or the one after)
		runtime.GC()
		if waitGOGC(50) {
			break
		}
	}
	if got := gogc(); got != 50 {
		t.Fatalf("boost off, collected: GOGC %d, want 50", got)
	}
}

// A nil Pacer (GOGC set: not the server's to pace) does nothing.
func TestNilPacer(t *testing.T) {
	var p *Pacer
	if p.Boost(true) {
		t.Fatal("a nil Pacer boosted")
	}
}

func liveHeap() int64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func gogc() int {
	s := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}}
	rtmetrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC waits a little for the cleanup goroutine to set GOGC to want.
func waitGOGC(want int) bool {
	for range 40 {
		if gogc() == want {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
