package publish

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong secret"})
			return
		}
		var m Message
		json.NewDecoder(r.Body).Decode(&m)
		json.NewEncoder(w).Encode(Result{IDs: []string{"x-" + m.Token}, Receivers: 3})
	}))
	defer srv.Close()
	res, err := (&Client{URL: srv.URL, Secret: "k"}).Publish(context.Background(), Message{Token: "t", Data: "d"})
	if err != nil || res.IDs[0] != "x-t" || res.Receivers != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = (&Client{URL: srv.URL}).Publish(context.Background(), Message{Token: "t", Data: "d"})
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || !strings.Contains(e.Message, "secret") {
		t.Fatalf("error %v", err)
	}
}
