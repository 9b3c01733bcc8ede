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

func TestValidate(t *testing.T) {
	l := Limits{MaxData: 10, MaxTokenLen: 8, MaxTargets: 2}
	for _, c := range []struct {
		m    Message
		want error
	}{
		{Message{Token: "a", Data: "x"}, nil},
		{Message{Tokens: []string{"a", "b*"}, Data: "x\ny"}, nil},
		{Message{Data: "x"}, ErrNoTarget},
		{Message{Tokens: []string{"a", "b", "c"}, Data: "x"}, ErrTooManyTok},
		{Message{Token: "a", Data: ""}, ErrEmptyData},
		{Message{Token: "a", Data: "0123456789a"}, ErrTooLarge},
		{Message{Token: "a", Data: "\xff"}, ErrBadUTF8},
		{Message{Token: "a\r\n", Data: "x"}, ErrInjection},
		{Message{Token: "a", Data: "x", Event: "e\n"}, ErrInjection},
		{Message{Token: "a", Data: "x", Exclude: "c\x00"}, ErrInjection},
		{Message{Token: "a-b", Data: "x"}, ErrBadToken},
		{Message{Token: "a*b", Data: "x"}, ErrBadToken},
		{Message{Token: "toolongtoken", Data: "x"}, ErrBadToken},
	} {
		if err := c.m.Validate(l); !errors.Is(err, c.want) {
			t.Errorf("%+v: %v, want %v", c.m, err, c.want)
		}
	}
}

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
