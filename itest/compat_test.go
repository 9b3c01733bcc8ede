package itest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"time"
)

func TestStreamHeadAndDelivery(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-cors-base=https://app.example")
		s := d.subscribe("?subscribe=room1-room2&id=c1") // no Connection: keep-alive
		if s.Status != 200 {
			t.Fatalf("status %d", s.Status)
		}
		for k, want := range map[string]string{
			"Content-Type":                "text/event-stream",
			"Cache-Control":               "no-cache",
			"Access-Control-Allow-Origin": "https://app.example",
			"X-Accel-Buffering":           "no",
		} {
			if got := s.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		d.send("room1=hello\n")
		d.send("room2=world")
		evs := s.expect("hello", "world")
		if evs[0].ID == "" || evs[0].ID == evs[1].ID {
			t.Errorf("ids %q and %q: want unique, non-empty", evs[0].ID, evs[1].ID)
		}
	})
}

func TestRouting(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		a := d.subscribe("?subscribe=room1&id=A")
		b := d.subscribe("?subscribe=room2-room1&id=B")
		star := d.subscribe("?subscribe=*&id=S")
		none := d.subscribe("?subscribe=&id=N")
		enc := d.subscribe("?subscribe=pc%2Dx-caf%C3%A9")
		d.send("room1=1;room2=2;room*=3;*=4;room1-A=5;*-B=6;other=7;roo*-S=8;pc%2Dx=9;caf%C3%A9=10;café=11")
		a.expect("1", "3", "4", "6", "8")
		b.expect("1", "2", "3", "4", "5", "8")
		star.expect("1", "2", "3", "4", "5", "6", "7", "9", "10", "11")
		none.expect("4", "6")
		enc.expect("4", "6", "9", "10") // tokens are raw bytes: café does not match caf%C3%A9
	})
}

func TestBodiesKeepEqualsLineBreaksAndLength(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		s := d.subscribe("?subscribe=t")
		d.send("t=a=b=c")
		d.send("t=line1\nline2\nline3")
		big := strings.Repeat("0123456789", 6000) // 60,000 bytes: under the 64 KiB default
		d.send("t=" + big)
		huge := strings.Repeat("x", 70000) // over the limit: rejected whole
		d.send("t=" + huge)
		d.send("t=after")
		s.expect("a=b=c", "line1\nline2\nline3", big, "after")
	})
}

func TestErrorAnswers(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		cases := []struct {
			req    string
			status int
		}{
			{"GET /nope?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n", 404},
			{"GET /sse/ HTTP/1.1\r\nHost: x\r\n\r\n", 404},
			{"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n", 400},              // bare GET: no stale parameters
			{"GET /sse?id=x HTTP/1.1\r\nHost: x\r\n\r\n", 400},         // no subscribe
			{"POST /sse?subscribe=a HTTP/1.1\r\nHost: x\r\n\r\n", 501}, // as hasses
			{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
			{"HEAD /sse HTTP/1.1\r\nHost: x\r\n\r\n", 200},
			{"OPTIONS /sse HTTP/1.1\r\nHost: x\r\n\r\n", 200},
			{"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		}
		for _, c := range cases {
			s := d.raw(c.req)
			if s.Status != c.status {
				t.Errorf("%q: status %d, want %d", c.req, s.Status, c.status)
			}
		}
		// A stale subscription must not leak into a later bare request.
		d.subscribe("?subscribe=stale1")
		if s := d.raw("GET /sse HTTP/1.1\r\nHost: x\r\n\r\n"); s.Status != 400 {
			t.Errorf("bare GET after a subscribe: %d, want 400", s.Status)
		}
	})
}

func TestSplitRequestHead(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		c := d.dial()
		defer c.Close()
		for _, part := range []string{"GE", "T /sse?subscribe=sp", "lit HTTP/1.1\r\nHost: x\r\n", "Connection: keep-alive\r\n", "\r\n"} {
			io.WriteString(c, part)
			time.Sleep(30 * time.Millisecond)
		}
		s := &stream{t: t, c: c, br: newReader(c)}
		s.readHead()
		if s.Status != 200 {
			t.Fatalf("status %d", s.Status)
		}
		d.send("split=ok")
		s.expect("ok")
	})
}

func TestOversizedHeadThenNormalService(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		s := d.raw("GET /sse?subscribe=" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if s.Status != 431 && s.Status != 400 {
			t.Errorf("64 KiB request head: status %d, want 431", s.Status)
		}
		ok := d.subscribe("?subscribe=fine")
		d.send("fine=yes")
		ok.expect("yes")
	})
}

func TestTokenLengths(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		long := strings.Repeat("k", 200) // hasses: over 30 characters never delivered
		s := d.subscribe("?subscribe=" + long)
		d.send(long + "=long token works")
		s.expect("long token works")
		if s := d.raw("GET /sse?subscribe=" + strings.Repeat("k", 300) + " HTTP/1.1\r\nHost: x\r\n\r\n"); s.Status != 400 {
			t.Errorf("token over the limit: status %d, want 400", s.Status)
		}
	})
}

func TestHandshakeTimeoutWithoutTraffic(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-handshake-timeout=1s")
		c, err := net.Dial("tcp", d.sse)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		opened := time.Now()
		_, err = c.Read(make([]byte, 1))
		if err != io.EOF {
			t.Fatalf("silent connection: read %v, want EOF from the server closing it", err)
		}
		if el := time.Since(opened); el < 900*time.Millisecond {
			t.Errorf("closed after %v, before the 1 s timeout", el)
		}
	})
}

func TestControlReplies(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		d.subscribe("?subscribe=room1")
		d.subscribe("?subscribe=room1-x")
		d.subscribe("?subscribe=*")
		d.send("room1=m")
		if got := d.command("tcpnumberofclients"); got != `{"numberofclients": 3}` {
			t.Errorf("tcpnumberofclients = %q", got)
		}
		if got := d.command("tcpsubscribedclients:room1"); got != `{"subscribedclients": 2, "subscribedfor": "room1"}` {
			t.Errorf("tcpsubscribedclients = %q", got)
		}
		got := d.command(`tcpsubscribedclients:a"b`)
		var v map[string]any
		if err := json.Unmarshal([]byte(got), &v); err != nil || v["subscribedfor"] != `a"b` {
			t.Errorf("reply for a quote is not valid JSON: %q (%v)", got, err)
		}
		status := d.command("tcpstatus")
		if err := json.Unmarshal([]byte(status), &v); err != nil {
			t.Fatalf("tcpstatus %q: %v", status, err)
		}
		for k, want := range map[string]float64{"allconncli": 3, "sseconncli": 3, "msgproccnt": 1, "msgsendcnt": 3, "loglevel": 1} {
			if v[k] != want {
				t.Errorf("tcpstatus %s = %v, want %v (%s)", k, v[k], want, status)
			}
		}
		if want := map[bool]string{false: "unencrypted (http)", true: "SSL encrypted (https)"}[d.tls != nil]; v["mode"] != want {
			t.Errorf("mode %v, want %v", v["mode"], want)
		}
		// clientlist (to the log) lists every stream with its tokens.
		d.send("clientlist")
		waitFor(t, "clientlist in the log", func() bool {
			return strings.Count(d.log.String(), "room1") >= 2 && strings.Contains(d.log.String(), "streaming")
		})
		// Two commands in one batch: back-to-back objects.
		if got := d.command("tcpnumberofclients;tcpnumberofclients"); got != `{"numberofclients": 3}{"numberofclients": 3}` {
			t.Errorf("two commands: %q", got)
		}
	})
}

func TestControlFraming(t *testing.T) {
	d := start(t)
	s := d.subscribe("?subscribe=a-b")
	// A message split over two segments of one connection.
	c, err := net.Dial("tcp", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "a=hello ")
	time.Sleep(40 * time.Millisecond)
	io.WriteString(c, "world;a=first;a=sec")
	time.Sleep(40 * time.Millisecond)
	io.WriteString(c, "ond;a=third")
	// No terminator, connection held open: delivered after the idle gap.
	s.expect("hello world", "first", "second", "third")
	c.Close()
	// Newline-separated messages in one write are two messages.
	d.send("a=1\nb=2\n")
	s.expect("1", "2")
	// PHP's pattern: no newline, then half-close.
	d.send("b=php")
	s.expect("php")
}

func TestFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "events")
	d := start(t, "-cp=", "-fifo="+fifo)
	s := d.subscribe("?subscribe=f")
	waitFor(t, "the fifo", func() bool { _, err := os.Stat(fifo); return err == nil })
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "f=via fifo\n")
	f.Close()
	s.expect("via fifo")
}

// Spec 8.2: hasses crashed when the newest client stopped reading.
func TestNonReadingNewestClientDoesNotHurtOthers(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-max-lag=4194304") // the reader may lag under load (-race, TLS); the stalled one falls ~5 MB behind
		reader := d.subscribe("?subscribe=t")
		stalled := d.raw("GET /sse?subscribe=t HTTP/1.1\r\nHost: x\r\n\r\n")
		tcpOf(stalled.c).SetReadBuffer(4096)
		body := strings.Repeat("z", 1000)
		done := make(chan error, 1)
		go func() {
			for i := range 5000 { // ~5 MB
				ev, err := reader.next(10 * time.Second)
				if err != nil {
					done <- fmt.Errorf("event %d: %w", i, err)
					return
				}
				if ev.Data != fmt.Sprintf("%d %s", i, body) {
					done <- fmt.Errorf("event %d = %.20q", i, ev.Data)
					return
				}
			}
			done <- nil
		}()
		c, _ := net.Dial("tcp", d.ctl)
		for i := range 5000 {
			fmt.Fprintf(c, "t=%d %s;", i, body)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The stalled client fell over the 4 MiB lag limit and was closed.
		waitFor(t, "the stalled client to be dropped", func() bool {
			return strings.Contains(d.command("tcpnumberofclients"), `"numberofclients": 1}`)
		})
	})
}

// Spec 8.3: hasses died of SIGPIPE when a client closed during a burst.
func TestClientClosingMidBurst(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		keep := d.subscribe("?subscribe=t")
		for range 20 {
			s := d.subscribe("?subscribe=t")
			go func() { time.Sleep(2 * time.Millisecond); s.c.Close() }()
		}
		var b strings.Builder
		for i := range 400 {
			fmt.Fprintf(&b, "*=%d;t=%d;", i, i)
		}
		d.send(b.String())
		for range 800 {
			if _, err := keep.next(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-d.done:
			t.Fatalf("hasses died: %v", d.err)
		default:
		}
	})
}

func TestSIGTERMEndsStreamsCleanly(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t)
		s := d.subscribe("?subscribe=t")
		d.send("t=before")
		s.expect("before")
		d.cmd.Process.Signal(syscall.SIGTERM)
		s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		sawRetry := false
		for {
			payload, err := s.chunk()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("stream did not end with the last chunk: %v", err)
			}
			if strings.HasPrefix(payload, "retry: ") {
				sawRetry = true
			}
		}
		if !sawRetry {
			t.Error("no retry hint before the end of the stream")
		}
		<-d.done
		if d.err != nil {
			t.Fatalf("exit status %v, want 0", d.err)
		}
	})
}

func TestUsageErrorsExitNonZero(t *testing.T) {
	for _, args := range [][]string{
		{"-p=8080", "-murl=/sse"},         // no -cp or -fifo
		{"-cp=8085", "-murl=/sse"},        // no -p
		{"-p=8080", "-cp=8085", "-bogus"}, // unknown
		{"-p=8080", "-cp=8085", "-murl=/sse", "-fifo=relative/path"},
	} {
		out, err := exec.Command(binPath, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() == 0 {
			t.Errorf("%v: exit %v, want non-zero\n%s", args, err, out)
		}
	}
	if out, err := exec.Command(binPath, "-h").CombinedOutput(); err != nil || !strings.Contains(string(out), "-murl") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}

func TestBusyPortFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec.Command(binPath, "-nodaemon", "-p="+ln.Addr().String(), "-cp=127.0.0.1:0", "-murl=/sse").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "could not bind") {
		t.Errorf("busy port: %v\n%s", err, out)
	}
}

func TestDaemonModeAndPidFile(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "hasses.pid")
	logFile := filepath.Join(dir, "hasses.log")
	cmd := exec.Command(binPath, "-p=127.0.0.1:0", "-cp=127.0.0.1:0", "-murl=/sse", "-pidfile="+pidFile, "-l="+logFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("detaching: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file %q", raw)
	}
	proc, _ := os.FindProcess(pid)
	defer proc.Kill()
	if err := proc.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("daemon %d not running: %v", pid, err)
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("daemon session %d, want its own (%d)", sid, pid)
	}
	proc.Signal(syscall.SIGTERM)
	waitFor(t, "the pid file to be removed", func() bool { _, err := os.Stat(pidFile); return os.IsNotExist(err) })
	logText, _ := os.ReadFile(logFile)
	if !strings.Contains(string(logText), "hasses started") {
		t.Errorf("log file lacks the start line:\n%s", logText)
	}
}

func TestDaemonStartupFailureReachesTheTerminal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	out, err := exec.Command(binPath, "-p="+ln.Addr().String(), "-cp=127.0.0.1:0", "-murl=/sse",
		"-l="+filepath.Join(dir, "h.log")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 || !strings.Contains(string(out), "could not bind") {
		t.Errorf("detached start on a busy port: %v\n%s", err, out)
	}
}

func TestReinit(t *testing.T) {
	eachFrontEnd(t, func(t *testing.T, start startFunc) {
		d := start(t, "-ra")
		s := d.subscribe("?subscribe=old&id=keep")
		d.send("old=1")
		s.expect("1")
		// A new GET on the streaming connection replaces the subscriptions; a
		// complete new head is written on the stream, as hasses did.
		io.WriteString(s.c, "GET /sse?subscribe=new HTTP/1.1\r\nHost: x\r\n\r\n")
		s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := s.br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("after reinit: %q %v", line, err)
		}
		s.readHeadRest()
		waitFor(t, "the new subscription", func() bool {
			return strings.Contains(d.command("tcpsubscribedclients:new"), `"subscribedclients": 1,`)
		})
		d.send("old=2;new-keep=excluded;new=3")
		s.expect("3") // old no longer subscribed; the id was kept
		d.send("reinit_disable")
		io.WriteString(s.c, "GET /sse?subscribe=other HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		d.send("other=no;new=4")
		s.expect("4") // with reinit off the request is ignored
	})
}
