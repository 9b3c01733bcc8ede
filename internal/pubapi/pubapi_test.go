package pubapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/internal/pipeline"
)

type recorder struct {
	mu   sync.Mutex
	msgs []hub.Message
}

func (r *recorder) Publish(m hub.Message) (hub.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return hub.Result{ID: "e-1", Receivers: 2}, nil
}

func newHandler(p pipeline.Sink) *Handler {
	pl := &pipeline.Pipeline{Hub: p, Limits: hub.Limits{MaxData: 100, MaxTokenLen: 16, MaxTargets: 4}}
	return &Handler{Pipeline: pl, Policy: &access.Policy{Secret: "k"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func do(h http.Handler, method, ctype, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/publish", strings.NewReader(body))
	req.RemoteAddr = "192.0.2.1:1234"
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestStatuses(t *testing.T) {
	rec := &recorder{}
	h := newHandler(rec)
	for _, c := range []struct {
		name, ctype, auth, body string
		want                    int
	}{
		{"json", "application/json", "Bearer k", `{"token":"a","data":"x"}`, 200},
		{"form", "application/x-www-form-urlencoded", "Bearer k", "token=a&token=b*&data=x%0Ay&event=e", 200},
		{"no secret", "application/json", "", `{"token":"a","data":"x"}`, 401},
		{"wrong secret", "application/json", "Bearer nope", `{"token":"a","data":"x"}`, 401},
		{"too large", "application/json", "Bearer k", `{"token":"a","data":"` + strings.Repeat("x", 101) + `"}`, 413},
		{"body far too large", "application/json", "Bearer k", `{"token":"a","data":"` + strings.Repeat("x", 200<<10) + `"}`, 413},
		{"too many tokens", "application/json", "Bearer k", `{"tokens":["a","b","c","d","e"],"data":"x"}`, 400},
		{"bad utf-8", "application/json", "Bearer k", "{\"token\":\"a\",\"data\":\"\xff\"}", 200}, // JSON decoding replaces it
		{"injection", "application/json", "Bearer k", `{"token":"a","data":"x","event":"x\nid: 9"}`, 400},
		{"star inside", "application/json", "Bearer k", `{"token":"a*b","data":"x"}`, 400},
		{"media type", "text/plain", "Bearer k", `a=b`, 415},
	} {
		w := do(h, "POST", c.ctype, c.auth, c.body)
		if w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.want)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Errorf("%s: answer is not JSON: %q", c.name, w.Body)
		}
	}
	if len(rec.msgs) != 3 || string(rec.msgs[1].Data) != "x\ny" || len(rec.msgs[1].Targets) != 2 || rec.msgs[1].Event != "e" {
		t.Errorf("published %+v", rec.msgs)
	}
	// Every refusal and publication is counted once, under its reason.
	want := map[pipeline.Reason]int64{pipeline.Unauthorized: 2, pipeline.TooLarge: 2, pipeline.BadRequest: 4}
	published, refused := h.Pipeline.Counts()
	for _, c := range refused {
		if c.Source != pipeline.HTTP && c.N != 0 || c.Source == pipeline.HTTP && c.N != want[c.Reason] {
			t.Errorf("refused %v %v: %d, want %d", c.Source, c.Reason, c.N, want[c.Reason])
		}
	}
	if p := h.Pipeline.Published(); p != 3 || published[pipeline.HTTP].N != 3 {
		t.Errorf("published %d (http %d), want 3", p, published[pipeline.HTTP].N)
	}
}

func TestForbiddenNetworkWithoutSecret(t *testing.T) {
	h := newHandler(&recorder{})
	h.Policy = &access.Policy{}
	if w := do(h, "POST", "application/json", "", `{"token":"a","data":"x"}`); w.Code != 403 {
		t.Errorf("public address without a secret: %d", w.Code)
	}
}

func FuzzPublishDecoding(f *testing.F) {
	f.Add("application/json", `{"token":"a","data":"x"}`)
	f.Add("application/json", `{"tokens":["a","b*"],"data":"x\ny","event":"e","exclude":"c"}`)
	f.Add("application/x-www-form-urlencoded", "token=a&data=%00&event=%0d")
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\na\r\n--x--\r\n")
	f.Add("", " {\"token\":\"a\",\"data\":\"x\"}")
	f.Add("application/x-www-form-urlencoded", "{\"token\":\"a\"}")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		rec := &recorder{}
		w := do(newHandler(rec), "POST", ctype, "Bearer k", body)
		switch w.Code {
		case 200, 400, 413, 415:
		default:
			t.Fatalf("status %d for %q %q", w.Code, ctype, body)
		}
		for _, m := range rec.msgs {
			if strings.ContainsAny(m.Event+m.Exclude+strings.Join(m.Targets, ""), "\r\n\x00") || len(m.Data) == 0 || len(m.Data) > 100 {
				t.Fatalf("published an invalid message %+v", m)
			}
		}
	})
}

// Every encoding answers 413 for a body over the limit, with the same body,
// whether the length is declared or the body is streamed (chunked).
func TestOversizedEveryEncoding(t *testing.T) {
	h := newHandler(&recorder{})
	big := strings.Repeat("x", 70<<10) // over MaxData (100) + 64 KiB
	bodies := map[string]string{
		"application/json":                  `{"token":"a","data":"` + big + `"}`,
		"application/x-www-form-urlencoded": "token=a&data=" + big,
		"multipart/form-data; boundary=x": "--x\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\na\r\n" +
			"--x\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n" + big + "\r\n--x--\r\n",
		"":                                   `{"token":"a","data":"` + big + `"}`,
		"application/json; charset=utf-8 ":   `{"token":"a","data":"x"}` + strings.Repeat(" ", 70<<10),
		"application/x-www-form-urlencoded;": strings.Repeat(" ", 70<<10) + "token=a&data=x",
	}
	const want = `{"error":"request body over 65636 bytes"}` + "\n"
	for ctype, body := range bodies {
		for _, chunked := range []bool{false, true} {
			req := httptest.NewRequest("POST", "/publish", strings.NewReader(body))
			if chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(strings.NewReader(body))
			}
			req.RemoteAddr = "192.0.2.1:1234"
			req.Header.Set("Authorization", "Bearer k")
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 413 || w.Body.String() != want {
				t.Errorf("%q chunked=%v: %d %s", ctype, chunked, w.Code, w.Body)
			}
		}
	}
	// Data over -max-message but within the body limit names the data limit.
	for ctype, body := range map[string]string{
		"application/json":                  `{"token":"a","data":"` + strings.Repeat("x", 101) + `"}`,
		"application/x-www-form-urlencoded": "token=a&data=" + strings.Repeat("x", 101),
	} {
		w := do(h, "POST", ctype, "Bearer k", body)
		if w.Code != 413 || w.Body.String() != `{"error":"data larger than the limit: 101 bytes, limit 100"}`+"\n" {
			t.Errorf("%s, data over the limit: %d %s", ctype, w.Code, w.Body)
		}
	}
}

// A body without Content-Type is JSON when it starts with '{'; anything
// else without a type, or another type, is 415.
func TestJSONWithoutContentType(t *testing.T) {
	rec := &recorder{}
	h := newHandler(rec)
	if w := do(h, "POST", "", "Bearer k", " \n{\"token\":\"a\",\"data\":\"x\"}"); w.Code != 200 || w.Body.String() != `{"ids":["e-1"],"receivers":2}`+"\n" {
		t.Errorf("JSON without a type: %d %s", w.Code, w.Body)
	}
	if len(rec.msgs) != 1 || string(rec.msgs[0].Data) != "x" {
		t.Errorf("published %+v", rec.msgs)
	}
	for _, c := range []struct{ ctype, body string }{{"", "token=a&data=x"}, {"", ""}, {"text/plain", `{"token":"a","data":"x"}`}} {
		if w := do(h, "POST", c.ctype, "Bearer k", c.body); w.Code != 415 || w.Body.String() != `{"error":"send application/json or form fields"}`+"\n" {
			t.Errorf("%q %q: %d %s", c.ctype, c.body, w.Code, w.Body)
		}
	}
	// JSON sent as a form (curl -d without -H) gets a hint.
	w := do(h, "POST", "application/x-www-form-urlencoded", "Bearer k", `{"token":"a","data":"x"}`)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "send Content-Type: application/json") {
		t.Errorf("JSON as a form: %d %s", w.Code, w.Body)
	}
}

func TestContentEncodingRefused(t *testing.T) {
	h := newHandler(&recorder{})
	req := httptest.NewRequest("POST", "/publish", strings.NewReader(`{"token":"a","data":"x"}`))
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Authorization", "Bearer k")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 415 || w.Body.String() != `{"error":"unsupported Content-Encoding \"gzip\": send the body uncompressed"}`+"\n" {
		t.Errorf("gzip: %d %s", w.Code, w.Body)
	}
}

func TestBearerAnyCase(t *testing.T) {
	h := newHandler(&recorder{})
	for _, auth := range []string{"Bearer k", "bearer k", "BEARER  k", " Bearer k "} {
		if w := do(h, "POST", "application/json", auth, `{"token":"a","data":"x"}`); w.Code != 200 {
			t.Errorf("%q: %d %s", auth, w.Code, w.Body)
		}
	}
	for _, auth := range []string{"Basic k", "Bearerk", "k", "Bearer"} {
		if w := do(h, "POST", "application/json", auth, `{"token":"a","data":"x"}`); w.Code != 401 {
			t.Errorf("%q: %d %s", auth, w.Code, w.Body)
		}
	}
}

// The bodies docs/api.md quotes are the ones the handler sends.
func TestDocumentedBodies(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(&recorder{})
	for _, c := range []struct{ method, path, ctype, auth, body string }{
		{"POST", "/other", "application/json", "Bearer k", `{}`},
		{"GET", "/publish", "", "Bearer k", ""},
		{"POST", "/publish", "application/json", "", `{}`},
		{"POST", "/publish", "text/plain", "Bearer k", `{}`},
		{"POST", "/publish", "application/json", "Bearer k", `{"token":"a","data":"x"} {}`},
		{"POST", "/publish", "application/json", "Bearer k", `{"data":"x"}`},
		{"POST", "/publish", "application/x-www-form-urlencoded", "Bearer k", `{"token":"a","data":"x"}`},
		{"POST", "/publish", "application/json", "Bearer k", `{"token":"a","event":"\n","data":"x"}`},
		{"POST", "/publish", "application/json", "Bearer k", `{"token":"a"}`},
		{"POST", "/publish", "application/x-www-form-urlencoded", "Bearer k", "token=a&data=%ff"},
	} {
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Authorization", c.auth)
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		body := strings.TrimSuffix(w.Body.String(), "\n")
		if !strings.Contains(string(doc), "| "+strconv.Itoa(w.Code)+" |") || !strings.Contains(string(doc), "`"+body+"`") {
			t.Errorf("%d %s is not in docs/api.md", w.Code, body)
		}
	}
}

func TestHistoryEndpoint(t *testing.T) {
	hb := hub.New(hub.Config{Epoch: 5})
	h := newHandler(hb)
	h.History = hb
	for _, body := range []string{`{"token":"a","data":"one"}`, `{"tokens":["a","b"],"event":"upd","data":"two\nlines"}`, `{"token":"b","data":"three"}`} {
		if w := do(h, "POST", "application/json", "Bearer k", body); w.Code != 200 {
			t.Fatalf("publish: %d %s", w.Code, w.Body)
		}
	}
	get := func(query, auth string) (int, string) {
		req := httptest.NewRequest("GET", "/history?"+query, nil)
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	for _, c := range []struct {
		query, auth string
		code        int
		body        string
	}{
		{"token=a&after=5-1", "Bearer k", 200, `{"events":[{"id":"5-2","event":"upd","tokens":["a"],"data":"two\nlines"}],"last_id":"5-3","replay":"complete","more":false}`},
		{"token=a&token=b&after=5-1&limit=1", "Bearer k", 200, `{"events":[{"id":"5-2","event":"upd","tokens":["a","b"],"data":"two\nlines"}],"last_id":"5-2","replay":"complete","more":true}`},
		{"token=b&limit=0", "Bearer k", 200, `{"events":[],"last_id":"5-3","more":false}`},
		{"token=b&limit=1", "Bearer k", 200, `{"events":[{"id":"5-3","tokens":["b"],"data":"three"}],"last_id":"5-3","more":false}`},
		{"token=a&after=9-1", "Bearer k", 200, `{"events":[],"last_id":"5-3","replay":"unknown","more":false}`},
		{"token=a", "", 401, `{"error":"missing or wrong secret: send Authorization: Bearer <secret>"}`},
		{"after=5-1", "Bearer k", 400, `{"error":"no token given: GET /history?token=T"}`},
		{"token=a&limit=1001", "Bearer k", 400, `{"error":"limit must be a number from 0 to 1000"}`},
	} {
		code, body := get(c.query, c.auth)
		if code != c.code || body != c.body {
			t.Errorf("%s: %d %s\nwant %d %s", c.query, code, body, c.code, c.body)
		}
	}
	req := httptest.NewRequest("POST", "/history", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 405 || w.Header().Get("Allow") != "GET" {
		t.Errorf("POST /history: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

// Issue 16, item 7: wrong secrets are throttled per address, the right one
// included, with a Retry-After.
func TestWrongSecretsThrottled(t *testing.T) {
	h := newHandler(&recorder{})
	h.Throttle = &access.Throttle{}
	for i := range access.SecretFailures {
		if w := do(h, "POST", "application/json", "Bearer wrong", `{"token":"a","data":"x"}`); w.Code != 401 {
			t.Fatalf("wrong secret %d: %d", i, w.Code)
		}
	}
	w := do(h, "POST", "application/json", "Bearer k", `{"token":"a","data":"x"}`)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d wrong secrets: %d %q", access.SecretFailures, w.Code, w.Body)
	}
}
