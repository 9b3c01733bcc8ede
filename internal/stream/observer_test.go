package stream

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/internal/handshake"
	"github.com/hasses-go/hasses/internal/hub"
)

// recorder is an Observer that writes down what it hears.
type recorder struct{ log []string }

func (r *recorder) Opened(i StreamInfo) {
	r.log = append(r.log, fmt.Sprintf("open %s %s %s %s", i.ID, i.User, strings.Join(i.Tokens, ","), i.Addr))
}

func (r *recorder) Ended(i StreamInfo, why Reason) {
	r.log = append(r.log, fmt.Sprintf("end %s %s %s %s %s", i.ID, i.User, strings.Join(i.Tokens, ","), i.Addr, why))
}

func (r *recorder) take() string {
	s := strings.Join(r.log, "|")
	r.log = nil
	return s
}

func observed(t *testing.T, cfg Config) (*fixture, *recorder) {
	r := &recorder{}
	cfg.Observer = r
	return newFixture(t, cfg), r
}

func TestObserverReasons(t *testing.T) {
	const head = "GET /sse?subscribe=a-b&id=tab1 HTTP/1.1\r\n\r\n"
	const who = "tab1  a,b 127.0.0.1:4000"

	t.Run("closed", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := f.conn(head)
		if got := r.take(); got != "open "+who {
			t.Fatalf("opened: %q", got)
		}
		c.Close()
		c.Close()
		if got := r.take(); got != "end "+who+" closed" {
			t.Fatalf("ended: %q", got)
		}
	})
	t.Run("write failed", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := f.conn(head)
		if c.Flush(&fakeWriter{err: errors.New("broken pipe")}, &f.sc, f.now) != Failed {
			t.Fatal("not failed")
		}
		c.Close()
		if got := r.take(); got != "open "+who+"|end "+who+" closed" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("lifetime, keep-alive, then a second stream", func(t *testing.T) {
		f, r := observed(t, Config{Lifetime: time.Minute})
		c := f.conn(head)
		w := &fakeWriter{}
		c.Flush(w, &f.sc, f.now)
		end := c.Deadline()
		c.Tick(end)
		if s := c.Flush(w, &f.sc, end); s != Waiting || c.State() != StateHead {
			t.Fatalf("%v %v", s, c.State())
		}
		if got := r.take(); got != "open "+who+"|end "+who+" lifetime" {
			t.Fatalf("%q", got)
		}
		c.Received([]byte("GET /sse?subscribe=c HTTP/1.1\r\n\r\n"), f.o, c, end)
		c.Close()
		if got := r.take(); got != "open   c 127.0.0.1:4000|end   c 127.0.0.1:4000 closed" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f, r := observed(t, Config{Authorize: func(*handshake.Request, time.Time) (time.Time, int, error) {
			return time.Unix(1_700_000_010, 0), 0, nil
		}})
		c := f.conn(head)
		w := &fakeWriter{}
		c.Flush(w, &f.sc, f.now)
		// Flush (not Tick) finds the deadline passed.
		if s := c.Flush(w, &f.sc, c.Deadline()); s != Waiting || c.State() != StateHead {
			t.Fatalf("%v %v", s, c.State())
		}
		if got := r.take(); got != "open "+who+"|end "+who+" expired" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("lagging", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := f.conn(head)
		w := &fakeWriter{}
		c.Flush(w, &f.sc, f.now)
		w.blocked = true
		f.publish("a", "x")
		c.Flush(w, &f.sc, f.now)
		for range 100 {
			f.publish("a", strings.Repeat("y", 1000))
		}
		if a := c.Tick(f.now.Add(time.Second)); a != Close {
			t.Fatalf("tick past the lag limit: %v", a)
		}
		c.Close()
		if got := r.take(); got != "open "+who+"|end "+who+" lagging" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		f, r := observed(t, Config{WriteTimeout: time.Second})
		c := f.conn(head)
		c.Flush(&fakeWriter{blocked: true}, &f.sc, f.now)
		if a := c.Tick(f.now.Add(time.Second)); a != Close {
			t.Fatalf("%v", a)
		}
		c.Close()
		if got := r.take(); got != "open "+who+"|end "+who+" lagging" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("shutdown, then stalled", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := f.conn(head)
		w := &fakeWriter{}
		c.Flush(w, &f.sc, f.now)
		f.core.Drain()
		c.Drain(f.now)
		w.blocked = true
		c.Flush(w, &f.sc, f.now)
		if a := c.Tick(c.Deadline()); a != Close {
			t.Fatalf("%v", a)
		}
		c.Close()
		if got := r.take(); got != "open "+who+"|end "+who+" shutdown" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := f.conn(head)
		w := &fakeWriter{}
		c.Flush(w, &f.sc, f.now)
		if _, err := f.hub.Publish(hub.Message{Targets: []string{"a"}, Event: "hasses-disconnect", Data: []byte("x"), Disconnect: &hub.Match{ID: "tab1"}}); err != nil {
			t.Fatal(err)
		}
		if s := c.Flush(w, &f.sc, f.now); s != Waiting || c.State() != StateHead {
			t.Fatalf("%v %v", s, c.State())
		}
		if got := r.take(); got != "open "+who+"|end "+who+" disconnect" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("reinit", func(t *testing.T) {
		f, r := observed(t, Config{})
		f.core.cfg.Reinit.Store(true)
		c := f.conn(head)
		c.Flush(&fakeWriter{}, &f.sc, f.now)
		if a := c.Received([]byte("GET /sse?subscribe=z HTTP/1.1\r\n\r\n"), f.o, c, f.now); a != Flush {
			t.Fatalf("reinit: %v", a)
		}
		c.Close()
		if got := r.take(); got != "open "+who+"|end "+who+" closed|open tab1  z 127.0.0.1:4000|end tab1  z 127.0.0.1:4000 closed" {
			t.Fatalf("%q", got)
		}
	})
	t.Run("refused and answered requests open nothing", func(t *testing.T) {
		f, r := observed(t, Config{})
		c := &Conn{}
		f.core.Accept(c, netipAddrPort("127.0.0.1:4000"), f.now)
		c.Received([]byte("HEAD /sse?subscribe=a HTTP/1.1\r\n\r\n"), f.o, c, f.now)
		c.Close()
		if got := r.take(); got != "" {
			t.Fatalf("%q", got)
		}
	})
}
