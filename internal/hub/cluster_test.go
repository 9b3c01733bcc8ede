package hub

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func apply(t *testing.T, h *Hub, seq uint64, target, data string) {
	t.Helper()
	if _, err := h.Apply(seq, time.Now(), Message{Targets: []string{target}, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyKeepsExternalIDs(t *testing.T) {
	h, o, _ := newHub(t, Config{Epoch: 36})
	r := sub(h, o, "", "", "room1")
	apply(t, h, 1000, "room1", "a")
	apply(t, h, 1005, "room*", "b")
	if _, err := h.Apply(1005, time.Now(), Message{Targets: []string{"room1"}}); !errors.Is(err, ErrOrder) {
		t.Fatalf("Apply of an old seq: err %v, want ErrOrder", err)
	}
	r.drain(t, -1)
	if got := strings.Join(r.got, ","); got != "a,b" || r.lastID != "10-1005" {
		t.Fatalf("got %q last id %q, want a,b and 10-1005", got, r.lastID)
	}
	if e, s := h.Head(); e != 36 || s != 1005 {
		t.Fatalf("Head = %d, %d", e, s)
	}
	// A replay from an applied id is exact.
	s, replay := h.Subscribe(o, []string{"room1"}, "", "10-1000", nil)
	rr := &reader{h: h, s: s}
	rr.drain(t, -1)
	if replay != ReplayComplete || strings.Join(rr.got, ",") != "b" {
		t.Fatalf("replay %v got %q", replay, rr.got)
	}
}

func TestReplicaRefusesPublish(t *testing.T) {
	h, _, _ := newHub(t, Config{})
	h.SetReplica()
	if _, err := h.Publish(Message{Targets: []string{"a"}, Data: []byte("d")}); !errors.Is(err, ErrReplica) {
		t.Fatalf("a replica must refuse Publish: %v", err)
	}
	if _, s := h.Head(); s != 0 {
		t.Fatalf("a refused publication must not be numbered (seq %d)", s)
	}
}

func TestResetRaisesFloorsAndTellsLiveStreams(t *testing.T) {
	h, o, _ := newHub(t, Config{Epoch: 36})
	live := sub(h, o, "", "", "room1")
	star := sub(h, o, "", "", "*")
	apply(t, h, 10, "room1", "a")
	if !h.Reset(72, 20, "gap") {
		t.Fatal("no reset event for live streams")
	}
	apply(t, h, 21, "room1", "b")
	for _, r := range []*reader{live, star} {
		r.drain(t, -1)
		if got := strings.Join(r.got, ","); got != "a,gap,b" || r.lastID != "20-21" {
			t.Fatalf("got %q last %q, want a,gap,b and 20-21", got, r.lastID)
		}
	}
	for lastID, want := range map[string]Replay{"10-10": ReplayUnknown, "20-15": ReplayGap, "20-20": ReplayComplete} {
		if _, replay := h.Subscribe(o, []string{"room1"}, "", lastID, nil); replay != want {
			t.Errorf("replay from %s = %v, want %v", lastID, replay, want)
		}
	}
	// A reset below the head only raises the floors.
	if h.Reset(0, 21, "gap") {
		t.Fatal("reset event sent at an existing seq")
	}
	if _, replay := h.Subscribe(o, []string{"other"}, "", "20-20", nil); replay != ReplayGap {
		t.Fatalf("new topic below the floor: %v, want gap", replay)
	}
}

func TestRaiseFloorKeepsTheHead(t *testing.T) {
	h, o, _ := newHub(t, Config{Epoch: 36})
	live := sub(h, o, "", "", "room1")
	apply(t, h, 10, "room1", "a")
	h.RaiseFloor(50) // events up to 50 may be missing elsewhere; the head stays
	if _, s := h.Head(); s != 10 {
		t.Fatalf("head moved to %d", s)
	}
	apply(t, h, 20, "room1", "b") // still accepted: below the floor, above the head
	apply(t, h, 60, "room1", "c")
	live.drain(t, -1)
	if got := strings.Join(live.got, ","); got != "a,b,c" {
		t.Fatalf("live stream got %q", got)
	}
	for lastID, want := range map[string]Replay{"10-10": ReplayGap, "10-20": ReplayGap, "10-50": ReplayComplete} {
		if _, replay := h.Subscribe(o, []string{"room1"}, "", lastID, nil); replay != want {
			t.Errorf("replay from %s = %v, want %v", lastID, replay, want)
		}
	}
}

// TestClusterIDAheadIsComplete: in a cluster, a client may reconnect to a
// node that has not applied its last id yet. An id of the epoch at most
// clusterAhead ahead is complete, and the events up to it are skipped when
// they arrive; one further ahead is unknown, as any id ahead is on a
// single node.
func TestClusterIDAheadIsComplete(t *testing.T) {
	h, o, _ := newHub(t, Config{Epoch: 36})
	apply(t, h, 1000, "room1", "a")
	if _, replay := h.Subscribe(o, []string{"room1"}, "", "10-1500", nil); replay != ReplayUnknown {
		t.Fatalf("single node, id ahead: replay %v, want unknown", replay)
	}
	h.SetReplica()
	s, replay := h.Subscribe(o, []string{"room1"}, "", "10-1500", nil)
	if replay != ReplayComplete {
		t.Fatalf("cluster, id 500 ahead: replay %v, want complete", replay)
	}
	apply(t, h, 1200, "room1", "b")
	apply(t, h, 1500, "room1", "c")
	apply(t, h, 1600, "room1", "d")
	r := &reader{h: h, s: s}
	r.drain(t, -1)
	if got := strings.Join(r.got, ","); got != "d" {
		t.Fatalf("got %q, want only d (b and c are at or before the client's id)", got)
	}
	far := "10-" + strconv.FormatUint(1600+clusterAhead+1, 10)
	if _, replay := h.Subscribe(o, []string{"room1"}, "", far, nil); replay != ReplayUnknown {
		t.Fatalf("cluster, id %s beyond the allowance: replay %v, want unknown", far, replay)
	}
}
