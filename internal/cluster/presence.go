package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Joins and leaves are decided in Redis, so that a client with streams on
// several nodes joins once and leaves once. Each node reports its own
// transitions (hub.Change: a client's first stream on the node, its last
// gone for the grace period) as idempotent set operations; presenceScript
// counts, per (token, client), the nodes that have it, and appends the join
// or leave event to the log, in the same atomic step, when the count
// leaves or reaches zero. A node that goes silent has its members removed
// by whichever node notices first (reap).

// presenceOp is one node's transition: field is "<node>\x00<token>\x00<id>"
// (id empty for a token's occupancy).
type presenceOp struct {
	field string
	c     hub.Change
}

// presenceQueue holds the transitions not yet sent, the latest per field:
// the operations are idempotent, so only the last state counts.
type presenceQueue struct {
	mu    sync.Mutex
	ops   map[string]presenceOp
	order []string
	sig   chan struct{}
}

const presenceBatch = 256 // operations per script call

func (q *presenceQueue) push(op presenceOp) {
	q.mu.Lock()
	if q.ops == nil {
		q.ops = make(map[string]presenceOp)
	}
	if _, ok := q.ops[op.field]; !ok {
		q.order = append(q.order, op.field)
	}
	q.ops[op.field] = op
	q.mu.Unlock()
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

// take removes up to n operations, oldest first.
func (q *presenceQueue) take(n int) []presenceOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []presenceOp
	k := 0
	for ; k < len(q.order) && len(out) < n; k++ {
		out = append(out, q.ops[q.order[k]])
		delete(q.ops, q.order[k])
	}
	clear(q.order[:k])
	q.order = q.order[k:]
	return out
}

// putBack returns operations that failed to be sent, unless a later one
// for the same field came meanwhile.
func (q *presenceQueue) putBack(ops []presenceOp) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var front []string
	for _, op := range ops {
		if _, ok := q.ops[op.field]; !ok {
			q.ops[op.field] = op
			front = append(front, op.field)
		}
	}
	q.order = append(front, q.order...)
}

// presenceChanged queues a transition of this node's presence (the hub
// calls it with its lock held).
func (e *Engine) presenceChanged(c hub.Change) {
	e.pq.push(presenceOp{field: e.node + "\x00" + c.Token + "\x00" + c.ID, c: c})
}

// presenceSendLoop sends the queued transitions to Redis until ctx is
// done.
func (e *Engine) presenceSendLoop(ctx context.Context) {
	select { // the node is in the cluster view first, so that no one reaps it
	case <-ctx.Done():
		return
	case <-e.joinedCh:
	}
	var args []string
	for {
		ops := e.pq.take(presenceBatch)
		if len(ops) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-e.pq.sig:
				continue
			}
		}
		e.mu.Lock()
		minSeq := strconv.FormatUint(e.pos, 10)
		e.mu.Unlock()
		args = append(args[:0], strconv.FormatInt(time.Now().UnixMilli(), 10), strconv.Itoa(e.cfg.LogLength), minSeq, e.node, e.node)
		for _, op := range ops {
			kind, body := "l", ""
			if op.c.Join {
				kind = "j"
			}
			if op.c.ID != "" {
				body = encodeBody("", hub.PresenceMessage(op.c))
			}
			args = append(args, kind, op.field, op.c.User, body)
		}
		cctx, cancel := context.WithTimeout(ctx, publishTimeout)
		v, err := e.client.Do(cctx, e.client.B().Eval().Script(presenceScript).Numkeys(5).
			Key(e.kMeta, e.kLog, e.kPresN, e.kPresC, e.kPresNodes).Arg(args...).Build()).AsStrSlice()
		cancel()
		clear(args)
		if err == nil && len(v) != len(ops) {
			err = fmt.Errorf("cluster presence: %d answers for %d operations", len(v), len(ops))
		}
		if err != nil {
			e.pq.putBack(ops)
			if ctx.Err() != nil {
				return
			}
			e.log.Debug("cluster: sending presence", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryDelay):
			}
			continue
		}
		if occ := e.hub.PresenceOccupancy(); occ != nil {
			for i, op := range ops {
				if op.c.ID == "" && v[i] == "1" {
					occ(op.c.Token, op.c.Join) // a cluster-wide transition, decided once
				}
			}
		}
	}
}

// reap removes the members of nodes that left the cluster view: those
// silent past the node TTL (stale), and those missing from it for two
// refreshes (a node that shut down removes its line). live are the nodes
// in the view.
func (e *Engine) reap(ctx context.Context, live map[string]bool, stale []string) {
	nodes, err := e.client.Do(ctx, e.client.B().Smembers().Key(e.kPresNodes).Build()).AsStrSlice()
	if err != nil {
		return
	}
	gone := make(map[string]bool)
	for _, n := range stale {
		gone[n] = true
	}
	for _, n := range nodes {
		if live[n] || n == e.node {
			delete(e.missing, n)
			continue
		}
		if e.missing[n]++; e.missing[n] >= 2 {
			gone[n] = true
		}
	}
	for n := range gone {
		if !slices.Contains(nodes, n) {
			continue
		}
		delete(e.missing, n)
		if e.reapNode(ctx, n) {
			e.client.Do(ctx, e.client.B().Srem().Key(e.kPresNodes).Member(n).Build())
		}
	}
}

// reapNode queues the leaves of node's members; it reports whether node
// has none left to reap.
func (e *Engine) reapNode(ctx context.Context, node string) bool {
	prefix := node + "\x00"
	var cursor uint64
	found := 0
	for {
		entry, err := e.client.Do(ctx, e.client.B().Hscan().Key(e.kPresN).Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return false
		}
		for i := 0; i+1 < len(entry.Elements); i += 2 {
			field, user := entry.Elements[i], entry.Elements[i+1]
			token, id, ok := strings.Cut(strings.TrimPrefix(field, prefix), "\x00")
			if !ok {
				continue
			}
			found++
			e.pq.push(presenceOp{field: field, c: hub.Change{Token: token, ID: id, User: user}})
		}
		if cursor = entry.Cursor; cursor == 0 {
			break
		}
	}
	if found > 0 {
		e.log.Info("cluster: removing the presence of a node that left", "node", node, "members", found)
	}
	return found == 0
}

// loadMembers gives the hub the members of the presence tokens as Redis
// has them now: at or after the log entries the node has read (see
// hub.SetMembers). A node that joins late learns who joined before the
// oldest entry it loaded.
func (e *Engine) loadMembers(ctx context.Context) error {
	all, err := e.client.Do(ctx, e.client.B().Hgetall().Key(e.kPresN).Build()).AsStrMap()
	if err != nil {
		return fmt.Errorf("cluster presence: loading the members: %w", err)
	}
	m := make(map[string]map[string]string)
	for field, user := range all {
		_, rest, _ := strings.Cut(field, "\x00")
		token, id, ok := strings.Cut(rest, "\x00")
		if !ok || id == "" || !e.hub.IsPresence(token) {
			continue // a token's occupancy, or a token that is no presence token here
		}
		if m[token] == nil {
			m[token] = make(map[string]string)
		}
		m[token][id] = user
	}
	e.hub.SetMembers(m)
	return nil
}
