package itest

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// respRelay relays TCP connections to a real redis-server; on demand it
// replaces the next chunk Redis sends (on whichever connection comes first)
// with a reply of its own.
type respRelay struct {
	ln       net.Listener
	mu       sync.Mutex
	inject   string // the reply to send instead of the next chunk; "" = none
	injected atomic.Int64
}

func startRESPRelay(t *testing.T, target string) *respRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &respRelay{ln: ln}
	var wg sync.WaitGroup
	var open sync.Map
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			open.Store(c, nil)
			open.Store(s, nil)
			wg.Go(func() { io.Copy(s, c); s.Close() })
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if err != nil {
						return
					}
					out := buf[:n]
					r.mu.Lock()
					if r.inject != "" {
						out = []byte(r.inject)
						r.inject = ""
						r.injected.Add(1)
					}
					r.mu.Unlock()
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			})
		}
	})
	return r
}

func (r *respRelay) url() string { return "redis://" + r.ln.Addr().String() + "/0" }

func (r *respRelay) send(reply string) {
	r.mu.Lock()
	r.inject = reply
	r.mu.Unlock()
}

// One malformed reply from Redis (a relay in front of a real redis-server
// sends it) costs the node one connection to Redis: the process lives, its
// streams stay open, and publications flow again on a new connection. The
// Redis client used to panic in its own goroutine on these lengths, or run
// out of memory on the array count.
func TestClusterMalformedReplyCostsOneConnection(t *testing.T) {
	redis := startRedis(t)
	relay := startRESPRelay(t, fmt.Sprintf("127.0.0.1:%d", redis.port))
	d := start(t, "-cluster="+relay.url(), "-pub=127.0.0.1:0", "-admin=127.0.0.1:0")
	waitFor(t, "the node to join the cluster", func() bool { return d.ready() })
	s := newSub(t, d, "?subscribe=a")
	for i, bad := range []string{"$-5\r\n", "$9223372036854775807\r\n", "*9223372036854775807\r\n", "%1152921504606846976\r\n"} {
		relay.send(bad)
		waitFor(t, "the relay to send "+strings.TrimSpace(bad), func() bool { return relay.injected.Load() == int64(i+1) })
		select {
		case <-d.done:
			t.Fatalf("hasses exited on %q: %v", bad, d.err)
		default:
		}
		if s.dropped() {
			t.Fatalf("the stream ended on %q", bad)
		}
		// Publications flow again (the publisher may have lost the one
		// whose reply was replaced, and retries it).
		want := fmt.Sprint("after-", i)
		waitFor(t, "a publication after "+strings.TrimSpace(bad), func() bool {
			code, _, _ := d.publishHTTP(jsonMsg("a", want))
			return code == 200
		})
		waitFor(t, "the event on the stream", func() bool { return strings.Contains(strings.Join(s.data(), ","), want) })
	}
	if !strings.Contains(d.log.String(), "malformed reply from Redis") {
		t.Error("no log line names the malformed reply")
	}
}
