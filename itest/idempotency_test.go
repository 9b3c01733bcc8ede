package itest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// publishKeyed publishes data to token with an idempotency key through d's
// HTTP API.
func publishKeyed(t *testing.T, d *daemon, token, data, key string) *publish.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := (&publish.Client{URL: "http://" + d.pub + "/publish"}).Publish(ctx, publish.Message{Token: token, Data: data, IdempotencyKey: key})
	if err != nil {
		t.Fatalf("publish %s: %v", key, err)
	}
	return r
}

// A retried publication with the same idempotency key is delivered once
// and answered with the first ids and receivers: over HTTP (field and
// header) and as a JSON unit on the control port.
func TestIdempotentPublish(t *testing.T) {
	d := start(t, "-pub=127.0.0.1:0")
	s := d.subscribe("?subscribe=room1")
	first := publishKeyed(t, d, "room1", "paid", "order-1")
	again := publishKeyed(t, d, "room1", "paid", "order-1")
	if first.Duplicate || !again.Duplicate || again.IDs[0] != first.IDs[0] || again.Receivers != 1 || first.Receivers != 1 {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	// The header form, and a JSON unit on the control port, share the keys.
	req, _ := http.NewRequest("POST", "http://"+d.pub+"/publish", strings.NewReader(`{"token":"room1","data":"paid"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "order-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("header form: %v %v", err, resp.Header)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tcp, err := publish.PublishTCP(ctx, d.ctl, "", publish.Message{Token: "room1", Data: "paid", IdempotencyKey: "order-1"})
	if err != nil || !tcp.Duplicate || tcp.IDs[0] != first.IDs[0] {
		t.Fatalf("control port: %+v %v", tcp, err)
	}
	publishKeyed(t, d, "room1", "shipped", "order-2")
	s.expect("paid", "shipped")
	s.expectNone(200 * time.Millisecond)
}

// Across a cluster the key is decided where publications are numbered
// (Redis): a retry through another node publishes nothing.
func TestClusterIdempotentPublish(t *testing.T) {
	r := startRedis(t)
	nodes := []*daemon{startNode(t, r), startNode(t, r), startNode(t, r)}
	subs := []*stream{nodes[0].subscribe("?subscribe=room1"), nodes[1].subscribe("?subscribe=room1"), nodes[2].subscribe("?subscribe=room1")}
	first := publishKeyed(t, nodes[0], "room1", "paid", "order-9")
	for _, d := range nodes {
		again := publishKeyed(t, d, "room1", "paid", "order-9")
		if !again.Duplicate || again.IDs[0] != first.IDs[0] {
			t.Fatalf("retry through %s: %+v, first %+v", d.pub, again, first)
		}
	}
	publishKeyed(t, nodes[2], "room1", "shipped", "order-10")
	for _, s := range subs {
		s.expect("paid", "shipped")
		s.expectNone(200 * time.Millisecond)
	}
}
