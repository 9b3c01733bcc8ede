package subauth

import (
	"fmt"
	"testing"
	"time"
)

func TestRevocations(t *testing.T) {
	now := time.Unix(1000, 0)
	var l Revocations
	if l.Revoked("alice", now, now) {
		t.Fatal("empty list revokes")
	}
	l.Add(Revocation{User: "alice", At: now, Until: now.Add(time.Hour)}, now)
	for _, c := range []struct {
		iat, at time.Time
		want    bool
	}{
		{now.Add(-time.Second), now, true},                 // issued before
		{time.Time{}, now, true},                           // no iat
		{now, now, false},                                  // issued at the revocation
		{now.Add(-time.Second), now.Add(time.Hour), false}, // the revocation ended
	} {
		if got := l.Revoked("alice", c.iat, c.at); got != c.want {
			t.Errorf("iat %v at %v: %v, want %v", c.iat, c.at, got, c.want)
		}
	}
	if l.Revoked("bob", time.Time{}, now) {
		t.Error("another user revoked")
	}
	// A second revocation keeps the later times, whatever its order.
	l.Add(Revocation{User: "alice", At: now.Add(-time.Minute), Until: now.Add(2 * time.Hour)}, now)
	if a := l.Active(now); len(a) != 1 || !a[0].At.Equal(now) || !a[0].Until.Equal(now.Add(2*time.Hour)) {
		t.Errorf("merged: %+v", a)
	}
	if a := l.Active(now.Add(3 * time.Hour)); len(a) != 0 {
		t.Errorf("ended ones listed: %+v", a)
	}
}

func TestRevocationsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	var l Revocations
	for i := range maxRevocations + 10 {
		l.Add(Revocation{User: fmt.Sprint(i), At: now, Until: now.Add(time.Hour + time.Duration(i)*time.Second)}, now)
	}
	if n := len(l.Active(now)); n != maxRevocations {
		t.Fatalf("%d kept, want %d", n, maxRevocations)
	}
	if l.Revoked("0", time.Time{}, now) || !l.Revoked(fmt.Sprint(maxRevocations+9), time.Time{}, now) {
		t.Fatal("the revocations that end first must go first")
	}
}
