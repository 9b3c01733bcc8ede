package itest

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// Issue 9: in a JSON line longer than the limit, what followed a ';' inside
// "data" ran as separate units and commands, even with -ctl-secret set.
func TestControlOversizedJSONNoInjection(t *testing.T) {
	d := start(t, "-ctl-secret=test-secret-0123456789")
	evil := d.subscribe("?subscribe=evil")
	ok := d.subscribe("?subscribe=ok")
	for _, n := range []int{90 << 10, 1 << 20} { // over -max-message; also over the longest valid JSON unit
		data := strings.Repeat("x", n) + ";evil=injected;evil=again;" + strings.Repeat("y", 1000)
		reply := d.send("auth test-secret-0123456789\n" + `{"token":"ok","data":"` + data + `"}` + "\nok=after\n")
		if !strings.HasPrefix(reply, `{"auth": "ok"}`+"\n"+`{"error":"`) || !strings.Contains(reply, "limit") {
			t.Errorf("reply %q: want auth ok and a JSON error", reply)
		}
	}
	ok.expect("after", "after")
	evil.expectNone(300 * time.Millisecond)
	if !strings.Contains(d.log.String(), "unit rejected") {
		t.Errorf("rejection not logged")
	}
}

// -max-message is exact for plain units too (it was 614 bytes with
// -max-message=100), and an oversized JSON unit gets its JSON error reply
// at once (hasses publish -to tcp:// waited 10 s for nothing).
func TestControlMaxMessageExact(t *testing.T) {
	d := start(t, "-max-message=100")
	s := d.subscribe("?subscribe=t")
	d.send("t=" + strings.Repeat("a", 101) + "\n")
	d.send("t#ev=" + strings.Repeat("b", 101) + ";")
	d.send("t=" + strings.Repeat("c", 600))
	d.send("t=" + strings.Repeat("d", 100) + "\r\n")
	s.expect(strings.Repeat("d", 100))
	s.expectNone(300 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, data := range []string{strings.Repeat("e", 101), strings.Repeat("<", 2000), strings.Repeat("f", 1<<20)} {
		_, err := publish.PublishTCP(ctx, d.ctl, "", publish.Message{Token: "t", Data: data})
		var pe *publish.Error
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "limit") {
			t.Errorf("%d bytes of data over tcp: %v, want an error answer about the limit", len(data), err)
		}
	}
	// Escaping may make a valid JSON unit six times as long as its data.
	if _, err := publish.PublishTCP(ctx, d.ctl, "", publish.Message{Token: "t", Data: strings.Repeat("<", 100)}); err != nil {
		t.Errorf("100 escaped bytes: %v", err)
	}
	s.expect(strings.Repeat("<", 100))
}

// An unrecognised unit is logged at the normal level, about once a second
// per reason, with the count of lines held back.
func TestControlBadUnitsLogged(t *testing.T) {
	d := start(t)
	c, err := net.Dial("tcp", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 50 {
		c.Write([]byte("room1 = hello;tcpstatu;"))
	}
	waitFor(t, "the log lines", func() bool {
		l := d.log.String()
		return strings.Contains(l, "blank or control character") && strings.Contains(l, "not a command")
	})
	time.Sleep(1100 * time.Millisecond)
	c.Write([]byte("room1 = hello;"))
	waitFor(t, "the count of suppressed lines", func() bool { return strings.Contains(d.log.String(), "suppressed=49") })
	if n := strings.Count(d.log.String(), "blank or control character"); n != 2 {
		t.Errorf("%d log lines for 51 bad units, want 2:\n%s", n, d.log.String())
	}
	if !strings.Contains(d.log.String(), "level=WARN msg=\"control: unit ignored") {
		t.Errorf("not logged at the normal level:\n%s", d.log.String())
	}
}
