package itest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

func postJSON(t *testing.T, url, secret, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("answer is not JSON: %q", raw)
	}
	return resp.StatusCode, v
}

func TestHTTPPublishAPI(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0", "-max-message=1000", "-pub-rate=50")
	api := "http://" + d.pub + "/publish"
	s := d.subscribe("?subscribe=room1-room2&id=me")
	other := d.subscribe("?subscribe=room2&id=other")

	status, v := postJSON(t, api, "", `{"tokens":["room1","room2"],"data":"multi\nline; with = signs","event":"note"}`)
	if status != 200 || v["receivers"].(float64) < 2 || len(v["ids"].([]any)) != 1 {
		t.Fatalf("publish: %d %v", status, v)
	}
	ev := s.expect("multi\nline; with = signs")[0]
	if ev.Event != "note" || ev.ID != v["ids"].([]any)[0] {
		t.Errorf("event %+v, answer %v", ev, v)
	}
	other.expect("multi\nline; with = signs")

	// Form fields; exclusion.
	resp, err := http.PostForm(api, url.Values{"token": {"room2"}, "data": {"form data"}, "exclude": {"other"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("form publish: %v %v", resp, err)
	}
	s.expect("form data")
	other.expectNone(300 * time.Millisecond)

	for body, want := range map[string]int{
		`{"token":"room1","data":"` + strings.Repeat("x", 1001) + `"}`: 413,
		`{"token":"room1","data":"x","event":"a\r\nid: 1"}`:            400, // field injection
		`{"token":"room1\nevil","data":"x"}`:                           400,
		`{"token":"room1","data":"x","exclude":"a\u0000b"}`:            400,
		`{"data":"no token"}`:                                          400,
		`{"token":"room1","data":""}`:                                  400,
		`{"token":"room1","data":"x"} {"second":1}`:                    400,
		`not json`: 400,
	} {
		if status, v := postJSON(t, api, "", body); status != want || v["error"] == "" {
			t.Errorf("%.50s: %d %v, want %d with an error message", body, status, v, want)
		}
	}
	if resp, _ := http.Get(api); resp.StatusCode != 405 {
		t.Errorf("GET /publish: %d", resp.StatusCode)
	}
	// The rate limit (50/s, burst 50) answers 429, and the server still
	// serves everyone.
	limited := false
	for range 120 {
		if status, _ := postJSON(t, api, "", `{"token":"nobody","data":"x"}`); status == 429 {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("no 429 after 120 quick publications at -pub-rate=50")
	}
	d.send("room1=still served")
	s.expect("still served")
}

func TestPublisherSecret(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0", "-ctl-secret=test-secret-0123456789")
	api := "http://" + d.pub + "/publish"
	s := d.subscribe("?subscribe=t")
	if status, v := postJSON(t, api, "", `{"token":"t","data":"x"}`); status != 401 {
		t.Errorf("no secret: %d %v", status, v)
	}
	if status, _ := postJSON(t, api, "wrong", `{"token":"t","data":"x"}`); status != 401 {
		t.Errorf("wrong secret: %d", status)
	}
	if got := d.send("t=without auth\n"); !strings.Contains(got, "authentication required") {
		t.Errorf("control port without auth: %q", got)
	}
	if got := d.send("auth nope\nt=wrong auth\n"); !strings.Contains(got, "authentication required") {
		t.Errorf("control port with a wrong secret: %q", got)
	}
	if status, _ := postJSON(t, api, "test-secret-0123456789", `{"token":"t","data":"via api"}`); status != 200 {
		t.Errorf("right secret: %d", status)
	}
	d.send("auth test-secret-0123456789\nt=via control port\n")
	s.expect("via api", "via control port")

	// The Go client and the CLI.
	c := &publish.Client{URL: api, Secret: "test-secret-0123456789"}
	if _, err := c.Publish(context.Background(), publish.Message{Token: "t", Data: "via client"}); err != nil {
		t.Fatal(err)
	}
	var pe *publish.Error
	if _, err := (&publish.Client{URL: api}).Publish(context.Background(), publish.Message{Token: "t", Data: "x"}); !errors.As(err, &pe) || pe.Status != 401 {
		t.Errorf("client without secret: %v", err)
	}
	cli := exec.Command(binPath, "publish", "-to", api, "-secret", "test-secret-0123456789", "-event", "ev", "t")
	cli.Stdin = strings.NewReader("from stdin\nsecond line\n")
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "1 receivers") {
		t.Errorf("CLI over HTTP: %v %s", err, out)
	}
	cli = exec.Command(binPath, "publish", "-to", "tcp://"+d.ctl, "-secret", "test-secret-0123456789", "t", "cli over tcp")
	if out, err := cli.CombinedOutput(); err != nil {
		t.Errorf("CLI over TCP: %v %s", err, out)
	}
	evs := s.expect("via client", "from stdin\nsecond line", "cli over tcp")
	if evs[1].Event != "ev" {
		t.Errorf("CLI event name: %+v", evs[1])
	}
}

func TestControlAllowList(t *testing.T) {
	d := start(t, "-ctl-allow=127.0.0.2/32")
	s := d.subscribe("?subscribe=t")
	// From 127.0.0.1: refused (closed without reading).
	if got := d.send("t=from an address not allowed\n"); got != "" {
		t.Errorf("answer to a refused address: %q", got)
	}
	// From 127.0.0.2: allowed.
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := dialer.Dial("tcp", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "t=from an allowed address\n")
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	s.expect("from an allowed address")
	if !strings.Contains(d.log.String(), "address not allowed") {
		t.Error("no log line for the refused publisher")
	}
}

func TestJSONFramingOnControlPort(t *testing.T) {
	d := start(t)
	s := d.subscribe("?subscribe=a-b&id=me")
	got := d.send(`{"tokens":["a"],"data":"has ; and\nnewline","event":"e1"}` + "\n" + `b=classic;{"token":"b","data":"x","exclude":"me"}` + "\n" + `{"token":"a","data":"y"}` + "\n")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"ids"`) {
		t.Errorf("replies %q", got)
	}
	evs := s.expect("has ; and\nnewline", "classic", "y")
	if evs[0].Event != "e1" {
		t.Errorf("event name %q", evs[0].Event)
	}
}
