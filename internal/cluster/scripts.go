package cluster

// The scripts run inside Redis, so that numbering an event and appending it
// to the log are one atomic step: the single sequencer of the cluster.
// Sequence numbers are a hybrid clock, max(last+1, now_ms*1000, min+1), with
// now from Redis TIME: strictly increasing, unique across a Redis restart
// (the clock has moved on), and readable as a time (seq/1000 ms). Lua
// numbers are doubles; the values stay exact below 2^53 (year 2255).
//
// They are sent with EVAL, not EVALSHA: a NOSCRIPT reply in the middle of
// a pipelined batch (after a Redis restart) could let a later unit run
// before an earlier one, and Redis caches the compiled script by its hash
// anyway.

// publishScript numbers one publication and appends it to the log.
//
//	KEYS: meta, log, this node's publish record
//	ARGV: new epoch, log length, unit number, min seq, targets, exclude,
//	      event, data, node id, "1" to only look the unit up
//
// A min seq above the dataset's head means Redis went back in time (restored
// from disk, or a failover to a replica that lagged) and this node applied
// entries it lost: the script marks them lost and links the new entry to
// min seq, so that a publication sent before the node's bus rejoins cannot
// hide the rollback.
//
// It returns {epoch, seq}. The publish record makes a retried unit (its
// first attempt's reply was lost with the connection) a no-op that returns
// the first attempt's id: a node numbers its units 1, 2, 3, ... and sends
// them in order on one connection. A unit whose publisher was told it
// failed is only looked up: {0, 0} if it never ran, and then it never will.
const publishScript = `
local n = tonumber(ARGV[3])
local done = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
if n <= done then
  local prev = redis.call('HGET', KEYS[3], ARGV[3])
  if prev then
    local e, s = string.match(prev, '^(%d+) (%d+)$')
    return {e, s}
  end
  return {'0', '0'}
end
if ARGV[10] == '1' then return {'0', '0'} end
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'lost')
local epoch, last = m[1], tonumber(m[2] or '0')
local minseq = tonumber(ARGV[4])
if not epoch then
  epoch = ARGV[1]
  last = math.max(now, minseq)
  redis.call('HSET', KEYS[1], 'e', epoch, 'since', string.format('%.0f', last), 's', string.format('%.0f', last))
elseif minseq > last then
  -- This node applied entries the dataset no longer holds (it went back in
  -- time): mark them lost and link past them, as lostScript does.
  if minseq > tonumber(m[3] or '0') then redis.call('HSET', KEYS[1], 'lost', ARGV[4]) end
  last = minseq
end
local seq = math.max(last + 1, now, minseq + 1)
local id = string.format('%.0f', seq)
redis.call('HSET', KEYS[1], 's', id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0',
  'e', epoch, 'p', string.format('%.0f', last), 'k', ARGV[5], 'x', ARGV[6],
  'n', ARGV[7], 'd', ARGV[8], 'o', ARGV[9])
redis.call('HSET', KEYS[3], 'n', ARGV[3], ARGV[3], epoch .. ' ' .. id)
if n > 1024 then redis.call('HDEL', KEYS[3], tostring(n - 1024)) end
redis.call('PEXPIRE', KEYS[3], 86400000)
return {epoch, id}
`

// joinScript returns the dataset's epoch, last sequence number, first
// predecessor (since: the p of its first entry) and lost mark, creating
// them when the meta hash is missing (first start, or Redis restarted
// without persistence).
//
//	KEYS: meta
//	ARGV: new epoch, min seq
const joinScript = `
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'since', 'lost')
if m[1] then return {m[1], m[2] or m[3], m[3], m[4] or '0'} end
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
local s = string.format('%.0f', math.max(now, tonumber(ARGV[2])))
redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', s, 'since', s)
return {ARGV[1], s, s, '0'}
`

// lostScript raises the dataset's lost mark: events up to ARGV[1] may be
// missing from it (Redis went back to an older state). Every node raises its
// floors to the mark, so that no replay from an older id claims complete.
// The head moves up to the mark too: the next entry then links to it, so a
// node that had read that far goes on seamlessly and one that had not sees
// a broken link (and resets its live streams).
//
//	KEYS: meta
//	ARGV: seq
const lostScript = `
local m = redis.call('HMGET', KEYS[1], 'lost', 's')
local seq = tonumber(ARGV[1])
if seq > tonumber(m[1] or '0') then redis.call('HSET', KEYS[1], 'lost', ARGV[1]) end
if seq > tonumber(m[2] or '0') then redis.call('HSET', KEYS[1], 's', ARGV[1]) end
return 1
`
