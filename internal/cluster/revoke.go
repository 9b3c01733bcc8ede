package cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hasses-go/hasses/internal/hub"
)

// Revocations live in Redis (a hash of user -> "<at> <until>"), so that
// they outlast a node's restart; the log carries each to the nodes
// running (applyLocked). A revocation that ended is dropped at the next
// store.

// SaveRevocation stores r for user in Redis, keeping the later of two.
func (e *Engine) SaveRevocation(ctx context.Context, user string, r hub.Revocation) error {
	cctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	err := e.pub.Do(cctx, e.pub.B().Eval().Script(revokeScript).Numkeys(1).Key(e.kRevoked).
		Arg(user, strconv.FormatInt(r.At, 10), strconv.FormatInt(r.Until, 10), strconv.FormatInt(time.Now().UnixMilli(), 10)).Build()).Error()
	if err != nil {
		return fmt.Errorf("%w: storing the revocation: %v", hub.ErrUnavailable, err)
	}
	return nil
}

// loadRevocations hands the revocations kept in Redis to OnRevoke.
func (e *Engine) loadRevocations(ctx context.Context) error {
	if e.cfg.OnRevoke == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, busGrace)
	defer cancel()
	m, err := e.client.Do(cctx, e.client.B().Hgetall().Key(e.kRevoked).Build()).AsStrMap()
	if err != nil {
		return fmt.Errorf("cluster join: revocations: %w", err)
	}
	now := time.Now().UnixMilli()
	for user, v := range m {
		at, until, _ := strings.Cut(v, " ")
		var r hub.Revocation
		var err1, err2 error
		r.At, err1 = strconv.ParseInt(at, 10, 64)
		r.Until, err2 = strconv.ParseInt(until, 10, 64)
		if err1 == nil && err2 == nil && r.Until > now {
			e.cfg.OnRevoke(user, r)
		}
	}
	return nil
}

// revokeScript stores a revocation, keeping the later times, and drops a
// few that ended.
//
//	KEYS: revocations
//	ARGV: user, at, until, now (Unix ms)
const revokeScript = `
local at, untl = tonumber(ARGV[2]), tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local a, u = string.match(old, '^(%d+) (%d+)$')
  if a then at, untl = math.max(at, tonumber(a)), math.max(untl, tonumber(u)) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f %.0f', at, untl))
local cursor = redis.call('HSCAN', KEYS[1], 0, 'COUNT', 16)
for i = 1, #cursor[2], 2 do
  local u = tonumber(string.match(cursor[2][i+1], ' (%d+)$') or '0')
  if u <= tonumber(ARGV[4]) then redis.call('HDEL', KEYS[1], cursor[2][i]) end
end
return 0
`
