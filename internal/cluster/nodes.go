package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// nodesLoop publishes this node's line of the cluster view every few
// seconds and reads everyone's, forgetting nodes that went silent (a node
// killed with -9 cannot say goodbye).
func (e *Engine) nodesLoop(ctx context.Context) {
	tick := time.NewTicker(nodeInterval)
	defer tick.Stop()
	for {
		e.refreshNodes(ctx)
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			e.client.Do(cctx, e.client.B().Hdel().Key(e.kNodes).Field(e.node).Build())
			cancel()
			return
		case <-tick.C:
		}
	}
}

func (e *Engine) refreshNodes(ctx context.Context) {
	e.mu.Lock()
	seq := e.pos
	e.mu.Unlock()
	now := time.Now()
	me, _ := json.Marshal(Node{ID: e.node, Addr: e.cfg.Addr, Streams: e.hub.Subscribers(), Seq: seq, Started: e.started, Seen: now})
	cctx, cancel := context.WithTimeout(ctx, busGrace)
	defer cancel()
	resps := e.client.DoMulti(cctx,
		e.client.B().Hset().Key(e.kNodes).FieldValue().FieldValue(e.node, string(me)).Build(),
		e.client.B().Hgetall().Key(e.kNodes).Build())
	all, err := resps[1].AsStrMap()
	if err != nil {
		return
	}
	view := make([]Node, 0, len(all))
	var stale []string
	live := make(map[string]bool, len(all))
	for id, v := range all {
		var n Node
		if json.Unmarshal([]byte(v), &n) != nil || now.Sub(n.Seen) > nodeTTL {
			stale = append(stale, id)
			continue
		}
		view = append(view, n)
		live[id] = true
	}
	slices.SortFunc(view, func(a, b Node) int { return a.Started.Compare(b.Started) })
	e.view.Store(&view)
	if len(stale) > 0 {
		e.client.Do(cctx, e.client.B().Hdel().Key(e.kNodes).Field(stale...).Build())
	}
	e.reap(cctx, live, stale) // after the view is stored: it may take a few calls
}
