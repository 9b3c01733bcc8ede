package itest

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const jwtSecret = "itest-secret-0123456789abcdef0123456789"

func token(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSubscriberJWT(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "jwt.key")
	os.WriteFile(keyFile, []byte(jwtSecret), 0o600)
	d := start(t, "-jwt-secret-file="+keyFile)
	good := token(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{
		"subscribe": []string{"room1", "user42*"}, "client_id": "c42", "exp": time.Now().Add(time.Hour).Unix()})

	for name, c := range map[string]struct {
		query, header string
		want          int
	}{
		"no token":        {"?subscribe=room1", "", 401},
		"bearer":          {"?subscribe=room1-user42x", "Authorization: Bearer " + good, 200},
		"query":           {"?subscribe=room1&access_token=" + good, "", 200},
		"cookie":          {"?subscribe=user42", "Cookie: theme=dark; hasses_token=" + good, 200},
		"not granted":     {"?subscribe=room2&access_token=" + good, "", 403},
		"star":            {"?subscribe=*&access_token=" + good, "", 403},
		"wrong client id": {"?subscribe=room1&id=other&access_token=" + good, "", 403},
		"forged": {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodHS256, []byte("not-the-secret-at-all"),
			jwt.MapClaims{"subscribe": []string{"*"}}), "", 401},
		"expired": {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodHS256, []byte(jwtSecret),
			jwt.MapClaims{"subscribe": []string{"*"}, "exp": time.Now().Add(-time.Minute).Unix()}), "", 401},
		"alg none": {"?subscribe=room1&access_token=" + token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"subscribe": []string{"*"}}), "", 401},
	} {
		var s *stream
		if c.header != "" {
			s = d.subscribe(c.query, c.header)
		} else {
			s = d.subscribe(c.query)
		}
		if s.Status != c.want {
			t.Errorf("%s: %d, want %d", name, s.Status, c.want)
		}
	}
	// The client id comes from the token: exclusion by it works.
	s := d.subscribe("?subscribe=room1&access_token=" + good)
	d.send("room1-c42=not for me;room1=for me")
	s.expect("for me")

	// A stream ends when its token expires.
	short := token(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{
		"subscribe": []string{"room1"}, "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	e := d.subscribe("?subscribe=room1&access_token=" + short)
	e.c.SetReadDeadline(time.Now().Add(6 * time.Second))
	for {
		if _, err := e.chunk(); err != nil {
			if err != io.EOF {
				t.Fatalf("expiring stream: %v, want a clean end", err)
			}
			break
		}
	}
}

func TestCORSOriginList(t *testing.T) {
	d := start(t, "-cors-origins=https://app.example,https://admin.example")
	ok := d.subscribe("?subscribe=t", "Origin: https://app.example")
	if ok.Status != 200 || ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		ok.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("listed origin: %d %v", ok.Status, ok.Header)
	}
	if s := d.subscribe("?subscribe=t", "Origin: https://evil.example"); s.Status != 403 {
		t.Errorf("unlisted origin: %d", s.Status)
	}
	pre := d.raw("OPTIONS /sse HTTP/1.1\r\nHost: x\r\nOrigin: https://admin.example\r\nAccess-Control-Request-Method: GET\r\n\r\n")
	if pre.Status != 200 || pre.Header.Get("Access-Control-Allow-Origin") != "https://admin.example" {
		t.Errorf("preflight: %d %v", pre.Status, pre.Header)
	}
}

func TestPerIPLimitAndRecovery(t *testing.T) {
	d := start(t, "-max-conns-per-ip=3", "-trusted-proxies=none") // the default, stated: loopback is capped like any address
	var streams []*stream
	for range 3 {
		streams = append(streams, d.subscribe("?subscribe=t"))
	}
	if s := d.raw("GET /sse?subscribe=t HTTP/1.1\r\nHost: x\r\n\r\n"); s.Status != 429 {
		t.Errorf("4th connection from one address: %d, want 429", s.Status)
	}
	// Another address is not affected.
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	c, err := dialer.Dial("tcp", d.sse)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /sse?subscribe=t HTTP/1.1\r\nHost: x\r\n\r\n")
	other := &stream{t: t, c: c, br: newReader(c)}
	other.readHead()
	if other.Status != 200 {
		t.Errorf("other address: %d", other.Status)
	}
	// Closing one frees a place.
	streams[0].c.Close()
	waitFor(t, "the place to be freed", func() bool {
		return strings.Contains(d.command("tcpnumberofclients"), `"numberofclients": 3}`)
	})
	if s := d.subscribe("?subscribe=t"); s.Status != 200 {
		t.Errorf("after a close: %d", s.Status)
	}
	d.send("t=everyone still served")
	streams[1].expect("everyone still served")
	other.expect("everyone still served")
}

func TestTooManyTokens(t *testing.T) {
	d := start(t, "-max-tokens=3")
	if s := d.subscribe("?subscribe=a-b-c-d"); s.Status != 400 {
		t.Errorf("4 tokens with -max-tokens=3: %d", s.Status)
	}
	if s := d.subscribe("?subscribe=a-b-c"); s.Status != 200 {
		t.Errorf("3 tokens: %d", s.Status)
	}
}
