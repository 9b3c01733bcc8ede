package itest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Issue 9: a unit sent on a control connection closed before the next one
// was opened is delivered before every unit of that next connection. PHP
// backends publish that way: open, write, close, for every message.
func TestControlOrderAcrossConnections(t *testing.T) {
	d := start(t)
	s := d.subscribe("?subscribe=ord")
	const n = 400
	done := make(chan error, 1)
	go func() {
		for i := range n {
			ev, err := s.next(10 * time.Second)
			if err != nil {
				done <- fmt.Errorf("after %d events: %w", i, err)
				return
			}
			if want := fmt.Sprint(i); ev.Data != want {
				done <- fmt.Errorf("event %d is %q: out of order", i, ev.Data)
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		c, err := net.Dial("tcp", d.ctl)
		if err != nil {
			t.Fatal(err)
		}
		// Every framing a sender uses: no terminator at all (ended by the
		// end of file), a newline, a separator.
		io.WriteString(c, "ord="+fmt.Sprint(i)+[]string{"", "\n", ";"}[i%3])
		c.Close()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A held-open connection's complete units, already received when a later
// connection is opened, go before that connection's units.
func TestControlOrderHeldOpen(t *testing.T) {
	d := start(t)
	s := d.subscribe("?subscribe=o")
	held, err := net.Dial("tcp", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	const n = 100
	for i := range n {
		io.WriteString(held, fmt.Sprintf("o=held%d\n", i))
		c, err := net.Dial("tcp", d.ctl)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, fmt.Sprintf("o=short%d", i))
		c.Close()
	}
	pos := map[string]int{}
	var order []string
	for i := range 2 * n {
		ev, err := s.next(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d events: %v", i, err)
		}
		pos[ev.Data] = i
		order = append(order, ev.Data)
	}
	for i := range n {
		h, ok1 := pos[fmt.Sprintf("held%d", i)]
		sh, ok2 := pos[fmt.Sprintf("short%d", i)]
		if !ok1 || !ok2 || h > sh || i > 0 && pos[fmt.Sprintf("short%d", i-1)] > sh {
			t.Fatalf("held%d/short%d out of order: %s", i, i, strings.Join(order, " "))
		}
	}
}
