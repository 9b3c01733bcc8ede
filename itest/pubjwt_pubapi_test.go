package itest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Against the real binary: the body limit follows -max-message in every
// encoding, JSON needs no Content-Type, and the Bearer scheme is read in
// any case.
func TestPubJWTPublishBodies(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0", "-max-message=1000", "-ctl-secret=test-secret-0123456789")
	api := "http://" + d.pub + "/publish"
	s := d.subscribe("?subscribe=room1")
	post := func(ctype, auth, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", api, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	big := strings.Repeat("x", 1000+65536)
	const over = `{"error":"request body over 66536 bytes"}` + "\n"
	for ctype, body := range map[string]string{
		"application/json":                  `{"token":"room1","data":"` + big + `"}`,
		"application/x-www-form-urlencoded": "token=room1&data=" + big,
		"multipart/form-data; boundary=b":   "--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nroom1\r\n--b\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n" + big + "\r\n--b--\r\n",
		"":                                  `{"token":"room1","data":"` + big + `"}`,
	} {
		if code, got := post(ctype, "Bearer test-secret-0123456789", body); code != 413 || got != over {
			t.Errorf("%q: %d %s", ctype, code, got)
		}
	}
	if code, got := post("", "bearer test-secret-0123456789", `{"token":"room1","data":"no type"}`); code != 200 || !strings.Contains(got, `"receivers":1`) {
		t.Errorf("JSON without Content-Type: %d %s", code, got)
	}
	s.expect("no type")
}
