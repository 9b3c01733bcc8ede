package itest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hasses-go/hasses/publish"
)

// disconnect asks d's publish API to end the streams q selects.
func disconnect(t *testing.T, d *daemon, q publish.Disconnect) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := (&publish.Client{URL: "http://" + d.pub + "/publish"}).Disconnect(ctx, q)
	if err != nil {
		t.Fatalf("disconnect %+v: %v", q, err)
	}
	return n
}

// expectDisconnected reads s up to its hasses-disconnect event, then the
// end of the stream.
func (s *stream) expectDisconnected() {
	s.t.Helper()
	ev, err := s.next(5 * time.Second)
	if err != nil || ev.Event != "hasses-disconnect" || ev.Data != `{"reason":"disconnect"}` {
		s.t.Fatalf("want the hasses-disconnect event: %+v %v", ev, err)
	}
	if ev, err := s.next(5 * time.Second); err != io.EOF {
		s.t.Fatalf("want the end of the stream after it: %+v %v", ev, err)
	}
}

// POST /disconnect ends the streams of an id, a user (the token's sub) or
// a token, each after a hasses-disconnect event; the others go on, and a
// stream may reconnect.
func TestDisconnect(t *testing.T) {
	keyFile, issue := jwtFixture(t)
	d := start(t, "-pub=127.0.0.1:0", "-jwt-key="+keyFile)
	tok := func(sub string) string { return issue(sub, time.Now()) }
	alice1 := d.subscribe("?subscribe=room1&id=tab1&access_token=" + tok("alice"))
	alice2 := d.subscribe("?subscribe=room2&id=tab2&access_token=" + tok("alice"))
	bob := d.subscribe("?subscribe=room1-room2&id=tab3&access_token=" + tok("bob"))
	carol := d.subscribe("?subscribe=room3&id=tab4&access_token=" + tok("carol"))
	waitFor(t, "4 streams", func() bool { return strings.Contains(d.command("tcpnumberofclients"), `"numberofclients": 4}`) })
	d.send("room1=before")
	before := alice1.expect("before")[0].ID
	bob.expect("before")

	if n := disconnect(t, d, publish.Disconnect{User: "alice"}); n != 2 {
		t.Fatalf("by user: %d streams, want 2", n)
	}
	alice1.expectDisconnected()
	alice2.expectDisconnected()
	d.send("room2=after")
	bob.expect("after")

	if n := disconnect(t, d, publish.Disconnect{ID: "tab3"}); n != 1 {
		t.Fatalf("by id: %d", n)
	}
	bob.expectDisconnected()
	if n := disconnect(t, d, publish.Disconnect{Token: "room3"}); n != 1 {
		t.Fatalf("by token: %d", n)
	}
	carol.expectDisconnected()

	// A kick, not a ban: alice reconnects from before the disconnection
	// and replays past it without being ended again.
	again := d.subscribe("?subscribe=room1&id=tab1&access_token="+tok("alice"), "Last-Event-ID: "+before)
	if again.Status != 200 || again.Header.Get("X-Hasses-Replay") != "complete" {
		t.Fatalf("reconnect: %d %v", again.Status, again.Header)
	}
	d.send("room1=welcome back")
	again.expect("welcome back")
	if n := disconnect(t, d, publish.Disconnect{User: "nobody"}); n != 0 {
		t.Fatalf("nobody: %d", n)
	}
	// The CLI.
	code, out, errOut := runHasses(t, nil, "disconnect", "-to", "http://"+d.pub+"/publish", "-id", "tab1")
	if code != 0 || out != "1 streams ended\n" {
		t.Fatalf("hasses disconnect: %d %q %q", code, out, errOut)
	}
	again.expectDisconnected()
}

// A disconnection sent to one node ends the matching streams on every
// node, in order with the events before it.
func TestClusterDisconnect(t *testing.T) {
	r := startRedis(t)
	nodes := []*daemon{startNode(t, r), startNode(t, r), startNode(t, r)}
	var tabs, others []*stream
	for _, d := range nodes {
		tabs = append(tabs, d.subscribe("?subscribe=room1&id=tab1"))
		others = append(others, d.subscribe("?subscribe=room1&id=tab2"))
	}
	if code, _, _ := nodes[0].publishHTTP(jsonMsg("room1", "before")); code != 200 {
		t.Fatal(code)
	}
	if n := disconnect(t, nodes[1], publish.Disconnect{ID: "tab1"}); n != 1 {
		t.Fatalf("node 2 ended %d of its streams, want 1", n)
	}
	nodes[2].publishHTTP(jsonMsg("room1", "after"))
	for i := range nodes {
		tabs[i].expect("before")
		tabs[i].expectDisconnected()
		others[i].expect("before", "after")
	}
}

// revokeUser asks d's publish API to revoke user's tokens.
func revokeUser(t *testing.T, d *daemon, user string) int {
	t.Helper()
	resp, err := http.Post("http://"+d.pub+"/revoke", "application/json", strings.NewReader(`{"user":"`+user+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Streams int }
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("revoke %s: %d", user, resp.StatusCode)
	}
	return out.Streams
}

// jwtFixture starts the key of a test's subscriber tokens.
func jwtFixture(t *testing.T) (keyFile string, tok func(sub string, iat time.Time) string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyFile = filepath.Join(t.TempDir(), "jwt.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	return keyFile, func(sub string, iat time.Time) string {
		return token(t, jwt.SigningMethodES256, key, jwt.MapClaims{"subscribe": []string{"*"}, "sub": sub,
			"iat": iat.Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	}
}

// POST /revoke ends the user's streams and refuses the tokens issued
// before it; a token issued after is accepted; GET /revoke lists it.
func TestRevoke(t *testing.T) {
	keyFile, tok := jwtFixture(t)
	d := start(t, "-pub=127.0.0.1:0", "-jwt-key="+keyFile)
	old := tok("alice", time.Now().Add(-time.Minute))
	s := d.subscribe("?subscribe=room1&access_token=" + old)
	bob := d.subscribe("?subscribe=room1&access_token=" + tok("bob", time.Now()))
	waitFor(t, "2 streams", func() bool { return strings.Contains(d.command("tcpnumberofclients"), `"numberofclients": 2}`) })
	if n := revokeUser(t, d, "alice"); n != 1 {
		t.Fatalf("revoke ended %d streams, want 1", n)
	}
	ev, err := s.next(5 * time.Second)
	if err != nil || ev.Event != "hasses-disconnect" || ev.Data != `{"reason":"revoked"}` {
		t.Fatalf("last event: %+v %v", ev, err)
	}
	if again := d.subscribe("?subscribe=room1&access_token=" + old); again.Status != 401 {
		t.Fatalf("old token after the revocation: %d", again.Status)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(2 * time.Second))) // the next whole second
	if fresh := d.subscribe("?subscribe=room1&access_token=" + tok("alice", time.Now())); fresh.Status != 200 {
		t.Fatalf("a token issued after the revocation: %d", fresh.Status)
	}
	d.send("room1=still here")
	bob.expect("still here")
	code, out, errOut := runHasses(t, nil, "revoke", "-to", "http://"+d.pub+"/publish", "-list")
	if code != 0 || !strings.HasPrefix(out, "alice until ") {
		t.Fatalf("hasses revoke -list: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runHasses(t, nil, "revoke", "-to", "http://"+d.pub+"/publish", "bob")
	if code != 0 || out != "bob revoked, 1 streams ended\n" {
		t.Fatalf("hasses revoke bob: %d %q %q", code, out, errOut)
	}
}

// Across a cluster a revocation reaches every node, and a node started
// after it finds it in Redis.
func TestClusterRevoke(t *testing.T) {
	keyFile, tok := jwtFixture(t)
	r := startRedis(t)
	args := []string{"-jwt-key=" + keyFile}
	nodes := []*daemon{startNode(t, r, args...), startNode(t, r, args...)}
	old := tok("alice", time.Now().Add(-time.Minute))
	far := nodes[1].subscribe("?subscribe=room1&access_token=" + old)
	waitFor(t, "the stream", func() bool { return strings.Contains(nodes[1].command("tcpnumberofclients"), `"numberofclients": 1}`) })
	revokeUser(t, nodes[0], "alice")
	ev, err := far.next(5 * time.Second)
	if err != nil || ev.Event != "hasses-disconnect" {
		t.Fatalf("the other node's stream: %+v %v", ev, err)
	}
	if s := nodes[1].subscribe("?subscribe=room1&access_token=" + old); s.Status != 401 {
		t.Fatalf("the other node accepts the revoked token: %d", s.Status)
	}
	late := startNode(t, r, args...)
	if s := late.subscribe("?subscribe=room1&access_token=" + old); s.Status != 401 {
		t.Fatalf("a node started after the revocation accepts the token: %d", s.Status)
	}
}
