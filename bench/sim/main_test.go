package main

import "testing"

// TestPoint runs a small point through every phase, with whole and with
// partial writes: every event reaches every stream it was published to
// (runPoint stops the process otherwise), and the figures are filled in.
func TestPoint(t *testing.T) {
	for _, partial := range []int{0, 40} {
		r := runPoint(500, 2, simConfig{loops: 2, rounds: 2, perUser: 1000, publishers: 2, partial: partial, split: true})
		if r.HeapPerStream <= 0 || r.SplitHubSub <= 0 || r.SplitHubTopics <= 0 {
			t.Errorf("partial=%d: memory not measured: %+v", partial, r)
		}
		if r.Broadcast.Delivered != 2*500 || r.PerUser.Delivered != 1000 {
			t.Errorf("partial=%d: delivered %d broadcast, %d per-user; want 1000, 1000", partial, r.Broadcast.Delivered, r.PerUser.Delivered)
		}
	}
}
