package pipeline

import (
	"errors"
	"testing"

	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/publish"
)

type sink struct {
	got []hub.Message
	err error
}

func (s *sink) Publish(m hub.Message) (hub.Result, error) {
	if s.err != nil {
		return hub.Result{}, s.err
	}
	s.got = append(s.got, m)
	return hub.Result{ID: "e-1", Receivers: 1}, nil
}

func count(cs []Count, src Source, r Reason) int64 {
	for _, c := range cs {
		if c.Source == src && c.Reason == r {
			return c.N
		}
	}
	return -1
}

func TestPublishValidatesRoutesAndCounts(t *testing.T) {
	local, remote := &sink{}, &sink{}
	p := &Pipeline{Hub: local, Limits: hub.Limits{MaxData: 4}}
	ok := hub.Message{Targets: []string{"a"}, Data: []byte("x")}
	if _, err := p.Publish(ok, Control); err != nil || len(local.got) != 1 {
		t.Fatalf("local: %v, %d published", err, len(local.got))
	}
	// Invalid messages never reach a sink, whatever the input.
	if _, err := p.Publish(hub.Message{Targets: []string{"a"}, Data: []byte("12345")}, HTTP); !errors.Is(err, hub.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := p.Publish(hub.Message{Targets: []string{"a-b"}, Data: []byte("x")}, FIFO); !errors.Is(err, hub.ErrBadToken) {
		t.Fatalf("bad token: %v", err)
	}
	// With a cluster, the cluster numbers; the hub is not called.
	p.Cluster = remote
	if _, err := p.Publish(ok, ControlJSON); err != nil || len(remote.got) != 1 || len(local.got) != 1 {
		t.Fatalf("cluster: %v, remote %d local %d", err, len(remote.got), len(local.got))
	}
	remote.err = hub.ErrUnavailable
	if _, err := p.Publish(ok, HTTP); !errors.Is(err, hub.ErrUnavailable) {
		t.Fatalf("unavailable: %v", err)
	}
	p.Refuse(HTTP, Unauthorized)

	published, refused := p.Counts()
	if len(published) != int(numSources) || len(refused) != int(numSources)*int(numReasons) {
		t.Fatalf("%d published rows, %d refused rows", len(published), len(refused))
	}
	for src, want := range map[Source]int64{Control: 1, ControlJSON: 1, FIFO: 0, HTTP: 0} {
		if published[src].N != want {
			t.Errorf("published %v: %d, want %d", src, published[src].N, want)
		}
	}
	if p.Published() != 2 {
		t.Errorf("Published() = %d, want 2", p.Published())
	}
	for _, c := range []struct {
		src  Source
		r    Reason
		want int64
	}{{HTTP, TooLarge, 1}, {FIFO, BadRequest, 1}, {HTTP, Unavailable, 1}, {HTTP, Unauthorized, 1}, {Control, BadRequest, 0}} {
		if n := count(refused, c.src, c.r); n != c.want {
			t.Errorf("refused %v %v: %d, want %d", c.src, c.r, n, c.want)
		}
	}
}

func TestFromJSON(t *testing.T) {
	m := FromJSON(&publish.Message{Token: "b", Tokens: []string{"a"}, Data: "d", Event: "e", Exclude: "x"}, true)
	if len(m.Targets) != 2 || m.Targets[0] != "a" || m.Targets[1] != "b" || string(m.Data) != "d" || m.Event != "e" || m.Exclude != "x" || !m.Reply {
		t.Fatalf("%+v", m)
	}
}
