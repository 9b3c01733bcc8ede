package cluster

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// What Redis sends passes; what would crash or exhaust the client fails
// the connection. Each input is fed whole and a byte at a time: the verdict
// does not depend on how the reads split it.
func TestRESPGuard(t *testing.T) {
	good := []string{
		"+OK\r\n",
		"-ERR unknown command\r\n",
		":12345\r\n:-1\r\n",
		"$5\r\nhello\r\n$0\r\n\r\n$-1\r\n",
		"*-1\r\n*0\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
		"%2\r\n+proto\r\n:3\r\n+modules\r\n*0\r\n",
		"|1\r\n+ttl\r\n:3\r\n$2\r\nab\r\n",
		">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
		"#t\r\n#f\r\n_\r\n,1.5\r\n(123456789012345678901234567890\r\n",
		"=8\r\ntxt:abcd\r\n!3\r\nERR\r\n~1\r\n+a\r\n",
		"$11\r\n$-5\r\n*999\r\n\r\n", // lengths inside a body are data
		"*1048576\r\n",               // the bound itself
	}
	bad := []string{
		"$-5\r\n",
		"$9223372036854775807\r\n",
		"$99999999999999999999\r\n",
		"$536870913\r\n",
		"*9223372036854775807\r\n",
		"*1048577\r\n",
		"*2\r\n*1048576\r\n",
		"%524289\r\n",
		"%4611686018427387904\r\n",
		"~-1\r\n",
		"*-2\r\n",
		"$?\r\n;3\r\nabc\r\n;0\r\n",
		"*?\r\n:1\r\n.\r\n",
		"$5x\n",
		"$\r\n",
		"$ 5\r\n",
		"#x\r\n",
		"_abc\r\n",
		"@\r\n",
		"$1234567890123456789012\r\n",
		"+" + strings.Repeat("x", guardMaxLine+1),
	}
	run := func(in string, split bool) error {
		g := &respGuard{}
		if !split {
			return g.check([]byte(in))
		}
		for i := range len(in) {
			if err := g.check([]byte{in[i]}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, in := range good {
		for _, split := range []bool{false, true} {
			if err := run(in, split); err != nil {
				t.Errorf("%q (split %v): %v", in, split, err)
			}
		}
	}
	for _, in := range bad {
		for _, split := range []bool{false, true} {
			if err := run(in, split); err == nil {
				t.Errorf("%q (split %v) passed", tail(in), split)
			}
		}
	}
}

func tail(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// FuzzRESPGuard: the guard never panics, and its verdict and state do not
// depend on where the reads split the stream.
func FuzzRESPGuard(f *testing.F) {
	f.Add([]byte("*2\r\n$1\r\na\r\n*1\r\n:1\r\n"), uint16(3))
	f.Add([]byte("|1\r\n+ttl\r\n:3\r\n$2\r\nab\r\n#t\r\n_\r\n"), uint16(9))
	f.Add([]byte("$-5\r\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := &respGuard{}
		err1 := whole.check(in)
		at := int(cut) % (len(in) + 1)
		parts := &respGuard{}
		err2 := parts.check(in[:at])
		if err2 == nil {
			err2 = parts.check(in[at:])
		}
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v, split at %d: %v", err1, at, err2)
		}
		if err1 == nil && (whole.state != parts.state || whole.pending != parts.pending || whole.body != parts.body) {
			t.Fatalf("states differ: %+v %+v", whole, parts)
		}
		if whole.pending < 0 || whole.pending > guardMaxPending || whole.body < 0 {
			t.Fatalf("out of bounds: %+v", whole)
		}
	})
}

// fakeRedis answers the client's handshake, then every other command with
// reply. It returns its address and a channel that gets each command.
func fakeRedis(t *testing.T, reply string) (string, <-chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cmds := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					var out string
					switch strings.ToUpper(args[0]) {
					case "HELLO":
						out = "%2\r\n+proto\r\n:3\r\n+version\r\n+7.2.0\r\n"
					case "CLUSTER":
						out = "-ERR This instance has cluster support disabled\r\n"
					case "CLIENT", "SELECT", "AUTH":
						out = "+OK\r\n"
					default:
						select {
						case cmds <- strings.Join(args, " "):
						default:
						}
						out = reply
					}
					if _, err := c.Write([]byte(out)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), cmds
}

// readCommand reads one RESP command (an array of bulk strings).
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil || len(line) < 3 || line[0] != '*' {
		return nil, errors.New("not a command")
	}
	var n int
	for _, c := range line[1 : len(line)-2] {
		n = n*10 + int(c-'0')
	}
	args := make([]string, 0, n)
	for range n {
		if _, err := r.ReadString('\n'); err != nil { // $len
			return nil, err
		}
		a, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args = append(args, strings.TrimSuffix(a, "\r\n"))
	}
	return args, nil
}

// A malformed reply costs the connection, not the process: the client
// (with hasses' options) gets an error where it panicked in its own
// goroutine, and the next command is answered on a new connection.
func TestMalformedReplyCostsTheConnection(t *testing.T) {
	for _, reply := range []string{"$-5\r\n", "$9223372036854775807\r\n", "*9223372036854775807\r\n", "%-3\r\n"} {
		addr, cmds := fakeRedis(t, reply)
		opt, err := parseURL("redis://" + addr + "/0")
		if err != nil {
			t.Fatal(err)
		}
		c, err := rueidis.NewClient(opt)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.Do(ctx, c.B().Get().Key("k").Build()).Error()
			cancel()
			if !errors.Is(err, errBadReply) && (err == nil || !strings.Contains(err.Error(), "malformed reply")) {
				t.Errorf("%q: error %v, want a malformed reply", reply, err)
			}
			if got := <-cmds; got != "GET k" {
				t.Errorf("%q: command %q", reply, got)
			}
		}
		c.Close()
	}
}
