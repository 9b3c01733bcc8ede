package cluster

// The scripts run inside Redis, so that numbering an event and appending it
// to the log are one atomic step: the single sequencer of the cluster.
// Sequence numbers are a hybrid clock, max(last+1, now_ms*1000, min+1), with
// now from Redis TIME: strictly increasing, unique across a Redis restart
// (the clock has moved on), and readable as a time (seq/1000 ms). Lua
// numbers are doubles; the values stay exact below 2^53 (year 2255).
//
// They are sent with EVAL, not EVALSHA: a publish batch is one call, so the
// body travels once per batch, Redis caches the compiled script by its
// hash, and no NOSCRIPT retry path is needed after a Redis restart.

// logAppend is the head of the scripts that append to the log: it reads
// the dataset's meta (KEYS[1]) and Redis's clock, and defines
// append(unit, body), which numbers one entry (see publishScript), adds it
// to the log (KEYS[2], trimmed to ARGV[2] entries) tagged "<node>:<unit>"
// (ARGV[4] is the node; without a unit, "p<seq>") and returns its id. The
// script stores last and prevtag in the meta when published is set. ARGV[1]
// is the epoch to start if the dataset has none, ARGV[3] the least sequence
// number.
const logAppend = `
local t = redis.call('TIME')
local now = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) * 1000
local m = redis.call('HMGET', KEYS[1], 'e', 's', 'lost', 'u')
local epoch, last, prevtag = m[1], tonumber(m[2] or '0'), m[4] or ''
local minseq = math.max(tonumber(ARGV[3]), tonumber(m[3] or '0'))
local published = false
local function append(unit, body)
  if not epoch then
    epoch = ARGV[1]
    last = math.max(now, minseq)
    redis.call('HSET', KEYS[1], 'e', epoch, 'since', string.format('%.0f', last))
  end
  local seq = math.max(last + 1, now, minseq + 1)
  local id = string.format('%.0f', seq)
  local tag = ARGV[4] .. ':' .. (unit or ('p' .. id))
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0',
    'h', epoch .. ' ' .. string.format('%.0f', last) .. ' ' .. tag .. ' ' .. prevtag, 'm', body)
  last, prevtag, published = seq, tag, true
  return id
end
`

// publishScript numbers a batch of publications and appends them to the
// log, in order, in one atomic step.
//
//	KEYS: meta, log, this node's publish record, idempotency keys (a
//	      sorted set by time), their results (a hash)
//	ARGV: new epoch, log length, min seq, node id, idempotency window
//	      (ms), most keys kept, then for each unit: its unit number, its
//	      entry body (the m field, see entry.go), "1" to only look it up,
//	      its idempotency key ("" for none)
//
// It returns epoch, seq, duplicate ("1" or "0") and receivers for each
// unit. The publish record makes a retried unit (its first attempt's reply
// was lost with the connection) a no-op that returns the first attempt's
// id: a node numbers its units 1, 2, 3, ... and sends them in order on one
// connection. A unit whose publisher was told it failed is only looked up:
// 0, 0 if it never ran, and then it never will.
//
// A unit with an idempotency key seen within the window is not published:
// it answers the first publication's id and receivers (recordScript
// stores them once its node knows them), flagged duplicate. This is the
// one place the cluster numbers publications, so the decision is
// cluster-wide. The keys are kept in time order: past the window or the
// cap, the oldest go first.
//
// Each entry carries a tag unique in the cluster (node id:unit number) and
// the tag of the entry before it (meta u): after a failover, two masters
// may for a moment number entries alike, and a node that read the old one
// must not take the new one's entries for its own (a silent hole). New
// numbers stay above the dataset's lost mark too (lostScript).
const publishScript = logAppend + `
local done = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, maxkeys = tonumber(ARGV[5]), tonumber(ARGV[6])
local out, rec, old = {}, {}, {}
local keyed = false
for i = 7, #ARGV, 4 do
  local n = tonumber(ARGV[i])
  local key = ARGV[i+3]
  local first = nil
  if key ~= '' and n > done and ARGV[i+2] ~= '1' then
    local at = redis.call('ZSCORE', KEYS[4], key)
    if at and nowms - tonumber(at) <= window then
      first = redis.call('HGET', KEYS[5], key)
    end
  end
  if n <= done then
    local prev = redis.call('HGET', KEYS[3], ARGV[i])
    local e, s, d, r = '0', '0', '0', '0'
    if prev then
      e, s = string.match(prev, '^(%d+) (%d+)')
      d, r = string.match(prev, '^%d+ %d+ (%d) (%d+)$')
      d, r = d or '0', r or '0'
    end
    out[#out+1] = e
    out[#out+1] = s
    out[#out+1] = d
    out[#out+1] = r
  elseif ARGV[i+2] == '1' then
    out[#out+1] = '0'
    out[#out+1] = '0'
    out[#out+1] = '0'
    out[#out+1] = '0'
  elseif first then
    local e, s, r = string.match(first, '^(%d+) (%d+) (%d+)$')
    done = n
    rec[#rec+1] = ARGV[i]
    rec[#rec+1] = e .. ' ' .. s .. ' 1 ' .. r
    if n > 1024 then old[#old+1] = tostring(n - 1024) end
    out[#out+1] = e
    out[#out+1] = s
    out[#out+1] = '1'
    out[#out+1] = r
  else
    local id = append(ARGV[i], ARGV[i+1])
    done = n
    rec[#rec+1] = ARGV[i]
    rec[#rec+1] = epoch .. ' ' .. id
    if n > 1024 then old[#old+1] = tostring(n - 1024) end
    if key ~= '' then
      redis.call('ZADD', KEYS[4], nowms, key)
      redis.call('HSET', KEYS[5], key, epoch .. ' ' .. id .. ' 0')
      keyed = true
    end
    out[#out+1] = epoch
    out[#out+1] = id
    out[#out+1] = '0'
    out[#out+1] = '0'
  end
end
if published then
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', last), 'u', prevtag)
end
if #rec > 0 then
  redis.call('HSET', KEYS[3], 'n', tostring(done), unpack(rec))
  if #old > 0 then redis.call('HDEL', KEYS[3], unpack(old)) end
  redis.call('PEXPIRE', KEYS[3], 86400000)
end
if keyed then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', nowms - window - 1, 'LIMIT', 0, 256)
  local over = redis.call('ZCARD', KEYS[4]) - #gone - maxkeys
  if over > 0 then
    for _, k in ipairs(redis.call('ZRANGE', KEYS[4], #gone, #gone + over - 1)) do gone[#gone+1] = k end
  end
  if #gone > 0 then
    redis.call('ZREM', KEYS[4], unpack(gone))
    redis.call('HDEL', KEYS[5], unpack(gone))
  end
end
return out
`

// recordScript stores the receivers of a keyed publication, once its
// node has applied it, for the duplicates to answer; a key already
// forgotten stays forgotten.
//
//	KEYS: idempotency results
//	ARGV: key, "epoch seq receivers"
const recordScript = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
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
// floors to the mark, so that no replay from an older id claims complete,
// and new numbers stay above it. The head (and so the next entry's link)
// stays where the dataset is: after a failover, nodes that switched first
// may have published on the new master entries that a node still reading
// the old one never read, so only a node exactly at the head (same seq,
// same tag) can go on without a reset.
//
//	KEYS: meta
//	ARGV: seq
const lostScript = `
local lost = redis.call('HGET', KEYS[1], 'lost')
if tonumber(ARGV[1]) > tonumber(lost or '0') then redis.call('HSET', KEYS[1], 'lost', ARGV[1]) end
return 1
`

// presenceScript applies nodes' presence transitions and appends the join
// and leave events they make, in one atomic step: this is where a
// transition becomes cluster-wide, once.
//
//	KEYS: meta, log, members (a hash "<node>\0<token>\0<id>" -> user),
//	      counts (a hash "<token>\0<id>" -> nodes that have it), the nodes
//	      with members (a set)
//	ARGV: new epoch, log length, min seq, node id (for the tags), the node
//	      to record as having members ("" for none), then for each
//	      operation: "j" (join) or "l" (leave), its members field, the
//	      user, the event's entry body ("" for a token's occupancy: no
//	      event)
//
// It returns "1" for each operation that was a cluster-wide transition
// (the count left or reached zero), else "0". The events are numbered as
// publishScript numbers publications (see there), tagged "<node>:p<seq>".
const presenceScript = logAppend + `
local out = {}
if ARGV[5] ~= '' then redis.call('SADD', KEYS[5], ARGV[5]) end
for i = 6, #ARGV, 4 do
  local field, body = ARGV[i+1], ARGV[i+3]
  local sep = string.find(field, '\0', 1, true)
  local ckey = string.sub(field, sep + 1)
  local changed = false
  if ARGV[i] == 'j' then
    if redis.call('HSETNX', KEYS[3], field, ARGV[i+2]) == 1 then
      changed = redis.call('HINCRBY', KEYS[4], ckey, 1) == 1
    end
  elseif redis.call('HDEL', KEYS[3], field) == 1 then
    local n = redis.call('HINCRBY', KEYS[4], ckey, -1)
    if n <= 0 then
      redis.call('HDEL', KEYS[4], ckey)
      changed = true
    end
  end
  if changed and body ~= '' then
    append(nil, body)
  end
  out[#out+1] = changed and '1' or '0'
end
if published then
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', last), 'u', prevtag)
end
return out
`
