package server

import (
	"log/slog"

	"github.com/hasses-go/hasses/internal/config"
	"github.com/hasses-go/hasses/internal/dashboard"
	"github.com/hasses-go/hasses/internal/stream"
	"github.com/hasses-go/hasses/internal/webhook"
)

// newWebhook builds the sender of -webhook; nil without the option.
func newWebhook(opts *config.Options, log *slog.Logger, node string) (*webhook.Sender, error) {
	if opts.Webhook == "" {
		return nil, nil
	}
	secret, err := webhook.ReadSecret(opts.WebhookSecretFile)
	if err != nil {
		return nil, err
	}
	types, err := webhook.ParseTypes(opts.WebhookEvents)
	if err != nil {
		return nil, err
	}
	return webhook.New(webhook.Config{URL: opts.Webhook, Secret: secret, Events: types, Node: node, Logger: log})
}

// streamObserver turns streams opening and ending into subscribe and
// unsubscribe webhook events; nil when none is sent.
func streamObserver(w *webhook.Sender) stream.Observer {
	if !w.Wants(webhook.Subscribe) && !w.Wants(webhook.Unsubscribe) {
		return nil
	}
	return webhookObserver{w}
}

// occupancyHook turns a token's first stream and its last one gone (on
// one node, or decided once for a cluster) into occupied and vacated
// webhook events; nil when neither is sent, and the hub then counts no
// occupancy.
func occupancyHook(w *webhook.Sender) func(token string, occupied bool) {
	if !w.Wants(webhook.Occupied) && !w.Wants(webhook.Vacated) {
		return nil
	}
	return func(token string, occupied bool) {
		typ := webhook.Vacated
		if occupied {
			typ = webhook.Occupied
		}
		w.Send(webhook.Event{Type: typ, Token: token})
	}
}

type webhookObserver struct{ w *webhook.Sender }

func (o webhookObserver) Opened(i stream.StreamInfo) {
	o.w.Send(webhook.Event{Type: webhook.Subscribe, ID: i.ID, User: i.User, Tokens: i.Tokens, Addr: i.Addr})
}

func (o webhookObserver) Ended(i stream.StreamInfo, why stream.Reason) {
	o.w.Send(webhook.Event{Type: webhook.Unsubscribe, ID: i.ID, User: i.User, Tokens: i.Tokens, Addr: i.Addr, Reason: why.String()})
}

// webhookLosses are the dashboard rows of webhook events that never
// reached the backend.
func webhookLosses(w *webhook.Sender) []dashboard.Count {
	if w == nil {
		return nil
	}
	st := w.Stats()
	return []dashboard.Count{
		{Name: "webhook: dropped, queue full", N: st.Dropped},
		{Name: "webhook: refused by the backend (4xx)", N: st.Rejected},
		{Name: "webhook: given up after retries", N: st.Expired},
	}
}
