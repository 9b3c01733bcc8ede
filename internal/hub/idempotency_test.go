package hub

import (
	"fmt"
	"testing"
	"time"
)

func TestIdempotentPublish(t *testing.T) {
	now := time.Unix(1000, 0)
	h, o, _ := newHub(t, Config{Epoch: 9, Now: func() time.Time { return now }, IdempotencyWindow: time.Minute})
	r := sub(h, o, "", "", "a")
	m := Message{Targets: []string{"a"}, Data: []byte("x"), Key: "order-1"}
	first, _ := h.Publish(m)
	again, _ := h.Publish(m)
	if first.Duplicate || !again.Duplicate || again.ID != first.ID || again.Receivers != first.Receivers || first.Receivers != 1 {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	// Another key, or none, publishes.
	if r2, _ := h.Publish(Message{Targets: []string{"a"}, Data: []byte("y"), Key: "order-2"}); r2.Duplicate {
		t.Fatalf("another key: %+v", r2)
	}
	if r3, _ := h.Publish(Message{Targets: []string{"a"}, Data: []byte("z")}); r3.Duplicate {
		t.Fatalf("no key: %+v", r3)
	}
	r.drain(t, -1)
	if fmt.Sprint(r.got) != "[x y z]" {
		t.Fatalf("delivered %q, want x y z once each", r.got)
	}
	// Past the window the key is forgotten.
	now = now.Add(61 * time.Second)
	if r4, _ := h.Publish(m); r4.Duplicate || r4.ID == first.ID {
		t.Fatalf("after the window: %+v", r4)
	}
}

func TestIdempotencyKeysBounded(t *testing.T) {
	h, _, _ := newHub(t, Config{})
	for i := range MaxIdempotencyKeys + 10 {
		h.Publish(Message{Targets: []string{"a"}, Data: []byte("x"), Key: fmt.Sprint(i)})
	}
	if n := len(h.keys.results); n != MaxIdempotencyKeys {
		t.Fatalf("%d keys kept, want %d", n, MaxIdempotencyKeys)
	}
	// The oldest went first.
	if r, _ := h.Publish(Message{Targets: []string{"a"}, Data: []byte("x"), Key: "0"}); r.Duplicate {
		t.Fatal("the oldest key is still remembered")
	}
	if r, _ := h.Publish(Message{Targets: []string{"a"}, Data: []byte("x"), Key: fmt.Sprint(MaxIdempotencyKeys + 9)}); !r.Duplicate {
		t.Fatal("the newest key was forgotten")
	}
}
