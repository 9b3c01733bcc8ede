package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/hasses-go/hasses/internal/hub"
)

// Presence listings are asked of every node: a node publishes a query on
// the cluster's presence channel, every other node pushes its own streams'
// listing onto the query's answer list, and the asker merges what arrives
// from the nodes that were subscribed when it asked. A node that died is
// not subscribed, so it is not waited for and its streams are not listed.

const (
	presenceWait    = time.Second     // how long an asker waits for the other nodes
	presenceAnswers = 5 * time.Second // how long an answer list lives in Redis
	presenceBacklog = 64              // queries waiting for this node's answer
)

type presenceQuery struct {
	ID     string   `json:"id"`
	Node   string   `json:"node"`
	Tokens []string `json:"tokens"`
}

// Presence lists who is subscribed to tokens on every node of the cluster.
func (e *Engine) Presence(ctx context.Context, tokens []string) ([]hub.TokenPresence, error) {
	local := e.hub.Presence(tokens)
	if !e.joined.Load() {
		return local, nil // not connected yet: this node is all it knows
	}
	var id [8]byte
	rand.Read(id[:])
	q := presenceQuery{ID: hex.EncodeToString(id[:]), Node: e.node, Tokens: tokens}
	body, _ := json.Marshal(q)
	ctx, cancel := context.WithTimeout(ctx, presenceWait+busGrace)
	defer cancel()
	subscribed, err := e.client.Do(ctx, e.client.B().Publish().Channel(e.kPresQ).Message(string(body)).Build()).AsInt64()
	if err != nil {
		return nil, fmt.Errorf("cluster presence: %w", err)
	}
	deadline := time.Now().Add(presenceWait)
	for waiting := subscribed - 1; waiting > 0; waiting-- { // every subscriber but this node
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		v, err := e.client.Do(ctx, e.client.B().Blpop().Key(e.kPresR+q.ID).Timeout(left.Seconds()).Build()).AsStrSlice()
		if rueidis.IsRedisNil(err) {
			break // timed out: a node that did not answer in time is left out
		}
		if err != nil {
			return nil, fmt.Errorf("cluster presence: %w", err)
		}
		var theirs []hub.TokenPresence
		if len(v) != 2 || json.Unmarshal([]byte(v[1]), &theirs) != nil || len(theirs) != len(local) {
			continue
		}
		for i := range local {
			local[i] = hub.MergePresence(local[i], theirs[i], e.hub.PresenceMax())
		}
	}
	return local, nil
}

// presenceLoop answers the other nodes' presence queries until ctx is
// done.
func (e *Engine) presenceLoop(ctx context.Context) {
	queries := make(chan presenceQuery, presenceBacklog)
	done := make(chan struct{})
	go func() { // answers off the subscription's reader
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case q := <-queries:
				e.answerPresence(ctx, q)
			}
		}
	}()
	defer func() { <-done }()
	for ctx.Err() == nil {
		err := e.client.Receive(ctx, e.client.B().Subscribe().Channel(e.kPresQ).Build(), func(m rueidis.PubSubMessage) {
			var q presenceQuery
			if json.Unmarshal([]byte(m.Message), &q) != nil || q.Node == e.node || q.ID == "" {
				return
			}
			select {
			case queries <- q:
			default: // flooded: the asker times out on this node
			}
		})
		if ctx.Err() != nil {
			return
		}
		e.log.Debug("cluster: presence subscription", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(retryDelay):
		}
	}
}

func (e *Engine) answerPresence(ctx context.Context, q presenceQuery) {
	body, _ := json.Marshal(e.hub.Presence(q.Tokens))
	ctx, cancel := context.WithTimeout(ctx, busGrace)
	defer cancel()
	key := e.kPresR + q.ID
	for _, r := range e.client.DoMulti(ctx,
		e.client.B().Rpush().Key(key).Element(string(body)).Build(),
		e.client.B().Pexpire().Key(key).Milliseconds(presenceAnswers.Milliseconds()).Build()) {
		if err := r.Error(); err != nil {
			e.log.Debug("cluster: answering a presence query", "err", err)
			return
		}
	}
}
