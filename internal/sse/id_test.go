package sse

import "testing"

func TestIDRoundTrip(t *testing.T) {
	if id, ok := ParseID("a-0"); !ok || id != (ID{Epoch: 10}) {
		t.Errorf("ParseID(a-0) = %v, %v: want the position before epoch a's first event", id, ok)
	}
	id := ID{Epoch: 1795331136123, Seq: 42}
	s := id.String()
	got, ok := ParseID(s)
	if !ok || got != id {
		t.Fatalf("ParseID(%q) = %v, %v", s, got, ok)
	}
	for _, bad := range []string{"", "1795331136", "-1", "a-", "a-00", "A-1", "a-01", "a-1-2", "a-1 ", "a-x"} {
		if _, ok := ParseID(bad); ok {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("mhq0x2kb-17")
	f.Add("0-1")
	f.Add("zzzzzzzzzzzzz-18446744073709551615")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseID(s)
		if ok && id.String() != s {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
	})
}
