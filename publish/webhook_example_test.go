package publish_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hasses-go/hasses/publish"
)

// A backend's webhook handler (-webhook=URL): it checks the signature
// before it believes the body.
func ExampleVerifyWebhook() {
	secret := []byte("the content of -webhook-secret-file")
	hook := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		err := publish.VerifyWebhook(secret, r.Header.Get(publish.WebhookHeader), body, time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var batch publish.WebhookBatch
		json.Unmarshal(body, &batch)
		for _, ev := range batch.Events {
			fmt.Println(ev.Type, ev.ID, ev.Reason)
		}
	}

	// What the server sends:
	body := `{"events":[{"type":"unsubscribe","id":"tab1","tokens":["room1"],"reason":"closed","time":"2026-12-05T10:17:02.480Z"}]}`
	req := httptest.NewRequest("POST", "/hasses-events", strings.NewReader(body))
	req.Header.Set(publish.WebhookHeader, publish.SignWebhook(secret, time.Now(), []byte(body)))
	hook(httptest.NewRecorder(), req)
	// Output: unsubscribe tab1 closed
}
