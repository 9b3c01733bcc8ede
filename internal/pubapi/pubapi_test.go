package pubapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hasses-go/hasses/internal/access"
	"github.com/hasses-go/hasses/internal/hub"
	"github.com/hasses-go/hasses/publish"
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

func newHandler(p Publisher) *Handler {
	return &Handler{Publisher: p, Policy: &access.Policy{Secret: "k"}, Limits: publish.Limits{MaxData: 100, MaxTokenLen: 16, MaxTargets: 4},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
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
	if h.Unauthorized.Load() != 2 || h.TooLarge.Load() != 2 || h.Published.Load() != 3 {
		t.Errorf("counters: unauthorized %d too large %d published %d", h.Unauthorized.Load(), h.TooLarge.Load(), h.Published.Load())
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
