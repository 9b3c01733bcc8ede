package control

import (
	"strings"
	"testing"
)

// oversized feeds parts and returns the sizes of the units rejected.
func oversized(f *Framer, parts ...string) []int {
	var out []int
	emit := func(u Unit) {
		if u.Oversized {
			out = append(out, u.Size)
		}
	}
	for _, p := range parts {
		f.Feed([]byte(p), emit)
	}
	f.Flush(emit)
	return out
}

func typed(f *Framer, parts ...string) []Unit {
	var out []Unit
	emit := func(u Unit) {
		u.Data = []byte(string(u.Data))
		out = append(out, u)
	}
	for _, p := range parts {
		f.Feed([]byte(p), emit)
	}
	f.Flush(emit)
	return out
}

// The injection of issue 9: a JSON unit over the limit whose data holds
// separators and "token=" pieces. It must be rejected whole, and nothing
// inside it run.
func TestOversizedJSONIsRejectedWhole(t *testing.T) {
	data := strings.Repeat("x", 90<<10) + ";evil=injected;tcpstatus;" + strings.Repeat("y", 100)
	line := `{"token":"a","data":"` + data + `"}` + "\nok=after\n"
	for _, parts := range [][]string{{line}, {line[:1000], line[1000:]}, {line[:90<<10], line[90<<10:]}} {
		got := typed(&Framer{MaxBody: 64 << 10, MaxJSON: 80 << 10}, parts...)
		if len(got) != 2 || !got[0].Oversized || got[0].Kind != KindJSON || string(got[1].Data) != "ok=after" {
			t.Fatalf("got %d units: %+v", len(got), got)
		}
	}
}

// -max-message bounds the body exactly, whatever the token and the
// trailing line break.
func TestMaxBodyIsExact(t *testing.T) {
	for _, c := range []struct {
		in       string
		rejected bool
	}{
		{"t=" + strings.Repeat("x", 100), false},
		{"t=" + strings.Repeat("x", 100) + "\r\n", false},
		{"t=" + strings.Repeat("x", 101), true},
		{"long-token#event=" + strings.Repeat("x", 100), false},
		{"long-token#event=" + strings.Repeat("x", 101), true},
		{"t=" + strings.Repeat("x", 50) + "\nmore\n" + strings.Repeat("x", 44), false},
		{"t=" + strings.Repeat("x", 50) + "\nmore\n" + strings.Repeat("x", 45), true},
	} {
		for cut := 1; cut < len(c.in); cut += 7 {
			if c.in[cut-1] == '\n' {
				continue
			}
			got := typed(&Framer{MaxBody: 100}, c.in[:cut], c.in[cut:])
			if len(got) != 1 || got[0].Oversized != c.rejected {
				t.Fatalf("%.20q... cut at %d: %+v", c.in, cut, got)
			}
		}
	}
}

func TestFramerKinds(t *testing.T) {
	got := typed(&Framer{}, "auth s\ntcpstatus\nsubscribedclients:a\nroom=x\n{\"a\":1;2}\nnot a command\n")
	want := []Kind{KindAuth, KindCommand, KindCommand, KindMessage, KindJSON, KindMessage}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].Kind != want[i] {
			t.Errorf("unit %d %q: %v, want %v", i, got[i].Data, got[i].Kind, want[i])
		}
	}
}

// Before authentication every unit is bounded by MaxAuth; clearing
// Restricted from the emit callback lifts it for the rest of the input.
func TestFramerRestricted(t *testing.T) {
	f := &Framer{MaxAuth: 64, Restricted: true}
	var got []Unit
	emit := func(u Unit) {
		if u.Kind == KindAuth {
			f.Restricted = false
		}
		u.Data = []byte(string(u.Data))
		got = append(got, u)
	}
	big := "t=" + strings.Repeat("x", 1000)
	f.Feed([]byte(big+";auth s\n"+big+"\n"), emit)
	if len(got) != 3 || !got[0].Oversized || got[1].Kind != KindAuth || got[2].Oversized || len(got[2].Data) != len(big) {
		t.Fatalf("got %+v", got)
	}
}

// The framer is incremental: pending input is never copied or rescanned
// per read. Fed one byte at a time, a 60 KB multi-line unit costs a few
// buffer growths, not an allocation per byte (the old framer converted the
// whole pending fragment to a string on every read), and the look-ahead
// after a newline stays bounded.
func TestFramerByteAtATimeIsLinear(t *testing.T) {
	in := "t=" + strings.Repeat("abc\nabcdefgh", 5000)
	f := &Framer{MaxBody: 1 << 20}
	n := 0
	for i := range len(in) {
		f.Feed([]byte{in[i]}, func(Unit) { n++ })
		if cap(f.line) > 4*f.lookMax() {
			t.Fatalf("look-ahead buffer grew to %d", cap(f.line))
		}
	}
	allocs := testing.AllocsPerRun(1, func() {
		f := &Framer{MaxBody: 1 << 20}
		b := []byte{0}
		for i := range len(in) {
			b[0] = in[i]
			f.Feed(b, func(Unit) {})
		}
	})
	if allocs > 200 {
		t.Errorf("%v allocations for %d bytes fed one at a time", allocs, len(in))
	}
}
