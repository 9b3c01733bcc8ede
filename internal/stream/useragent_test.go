package stream

import (
	"fmt"
	"testing"
)

func TestUserAgentsIntern(t *testing.T) {
	var u userAgents
	if u.intern("") != nil {
		t.Error("an empty User-Agent was interned")
	}
	a, b := u.intern("Mozilla/5.0 a"), u.intern(string([]byte("Mozilla/5.0 a")))
	if a != b || *a != "Mozilla/5.0 a" {
		t.Errorf("one User-Agent interned as two: %p %q, %p %q", a, *a, b, *b)
	}
	if c := u.intern("curl/8"); c == a || *c != "curl/8" {
		t.Errorf("another User-Agent interned as %q", *c)
	}
	// Past the bound the table starts anew; what was handed out stays.
	for i := range 2 * maxUserAgents {
		if s := fmt.Sprint("ua ", i); *u.intern(s) != s {
			t.Fatalf("intern(%q) changed it", s)
		}
	}
	if len(u.m) > maxUserAgents {
		t.Errorf("%d User-Agents interned, over the bound of %d", len(u.m), maxUserAgents)
	}
	if *a != "Mozilla/5.0 a" {
		t.Errorf("a string handed out changed: %q", *a)
	}
}

// A head in several reads is kept aside (Conn.x) only until it is
// complete; two connections from one browser share its User-Agent.
func TestSplitHeadAndUserAgent(t *testing.T) {
	f := newFixture(t, Config{})
	head := "GET /sse?subscribe=a HTTP/1.1\r\nUser-Agent: Mozilla/5.0 test\r\n\r\n"
	var cs []*Conn
	for range 2 {
		c := &Conn{}
		if st := f.core.Accept(c, netipAddrPort("127.0.0.1:4000"), f.now); st != 0 {
			t.Fatalf("accept: %d", st)
		}
		for i := range len(head) - 1 {
			if a := c.Received([]byte(head[i:i+1]), f.o, c, f.now); a != None || !c.pending() {
				t.Fatalf("after %d bytes of the head: action %v, pending %v", i+1, a, c.pending())
			}
		}
		if a := c.Received([]byte(head[len(head)-1:]), f.o, c, f.now); a != Flush || c.State() != StateStream {
			t.Fatalf("the last byte of the head: action %v, state %v", a, c.State())
		}
		if c.x != nil {
			t.Errorf("the connection keeps its extra fields after the head: %+v", *c.x)
		}
		cs = append(cs, c)
	}
	if ua := cs[0].UserAgent(); ua != "Mozilla/5.0 test" {
		t.Errorf("UserAgent() = %q", ua)
	}
	if cs[0].ua != cs[1].ua {
		t.Error("two connections keep a User-Agent each")
	}
	for _, c := range cs {
		c.Close()
	}
}
