/**
 * The Lua scripts that change subscriptions kept in Redis. Each runs as one step however many
 * nodes call it, so two nodes never hand out the same event, and an ack that crosses a
 * redelivery acks nothing. Offsets and delivery counts travel as the strings Node wrote
 * (members, fields): nothing is formatted by Lua's number printing, which loses digits past 14.
 *
 * Per subscription (keys.ts): the state hash (`next`, `disabled`), `due` (offset -> deadline, ms),
 * `n` (offset -> deliveries) and `dead` (offset -> dead letter JSON). The index hash holds every
 * subscription's spec; a script finding its name gone answers -1 (the subscription was deleted).
 * The version counter moves whenever another node should look again (created, deleted,
 * disabled, sought, replayed).
 */

/**
 * KEYS: index, state, due, n, dead. ARGV: name, now, max, deadline (now + ackDeadline),
 * maxDeliveries, ordered ('1'). Leases up to `max` due events (deadline passed), oldest deadline
 * first, each one delivery more; one delivered maxDeliveries times goes to the dead letters
 * instead. Ordered: nothing while an event waits for its ack. Returns
 * { status (0, -1 gone, 1 busy), next, dead-lettered, offset, delivery, ... }.
 */
export const CLAIM_DUE = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return { -1 } end
local next = redis.call('hget', KEYS[2], 'next')
if ARGV[6] == '1' and #redis.call('zrangebyscore', KEYS[3], '(' .. ARGV[2], '+inf', 'LIMIT', 0, 1) > 0 then return { 1, next, 0 } end
local max = tonumber(ARGV[3])
local maxd = tonumber(ARGV[5])
local out = { 0, next, 0 }
local taken = 0
local due = redis.call('zrangebyscore', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, max + 100)
for _, offset in ipairs(due) do
  if taken >= max then break end
  local d = tonumber(redis.call('hget', KEYS[4], offset) or '0')
  if d >= maxd then
    redis.call('zrem', KEYS[3], offset)
    redis.call('hdel', KEYS[4], offset)
    redis.call('hset', KEYS[5], offset, '{"deliveries":' .. d .. ',"reason":"not acked after ' .. d .. ' deliveries (maxDeliveries)","at":' .. ARGV[2] .. '}')
    out[3] = out[3] + 1
  else
    redis.call('hset', KEYS[4], offset, d + 1)
    redis.call('zadd', KEYS[3], ARGV[4], offset)
    out[#out + 1] = offset
    out[#out + 1] = d + 1
    taken = taken + 1
  end
end
return out`

/**
 * KEYS: index, state, due, n. ARGV: name, the `next` the caller read from, the `next` to set,
 * deadline, ordered ('1'), then the offsets to lease (first delivery). Moves the cursor only if
 * no other pull moved it meanwhile (compare and set). Returns { status (0 done, 1 the cursor
 * moved or, ordered, an event is out: read again, -1 gone), next as it stands }.
 */
export const TAKE_NEW = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return { -1 } end
local next = redis.call('hget', KEYS[2], 'next')
if next ~= ARGV[2] then return { 1, next } end
if ARGV[5] == '1' and #ARGV > 5 and redis.call('zcard', KEYS[3]) > 0 then return { 1, next } end
redis.call('hset', KEYS[2], 'next', ARGV[3])
for i = 6, #ARGV do
  redis.call('zadd', KEYS[3], ARGV[4], ARGV[i])
  redis.call('hset', KEYS[4], ARGV[i], 1)
end
return { 0, ARGV[3] }`

/**
 * KEYS: index, due, n, dead. ARGV: name, what ('ack', 'drop', 'due', 'dead'), the deadline for
 * 'due', then triples: offset, delivery, the dead letter JSON (for 'dead'; '' otherwise). Only a
 * delivery that is still the current one is settled. Returns how many were, or -1 (gone).
 */
export const SETTLE = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return -1 end
local n = 0
for i = 4, #ARGV, 3 do
  local offset = ARGV[i]
  if redis.call('hget', KEYS[3], offset) == ARGV[i + 1] then
    if ARGV[2] == 'due' then
      redis.call('zadd', KEYS[2], ARGV[3], offset)
    else
      redis.call('zrem', KEYS[2], offset)
      redis.call('hdel', KEYS[3], offset)
      if ARGV[2] == 'dead' then redis.call('hset', KEYS[4], offset, ARGV[i + 2]) end
    end
    n = n + 1
  end
end
return n`

/** KEYS: index, state, due, n, version. ARGV: name, next. Forgets every lease and goes on from `next`. */
export const SEEK = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return -1 end
redis.call('del', KEYS[3], KEYS[4])
redis.call('hset', KEYS[2], 'next', ARGV[2])
redis.call('incr', KEYS[5])
return 0`

/** KEYS: index, due, n, dead, version. ARGV: name, now. Every dead letter back in the queue, due now, as never delivered. Returns how many. */
export const REPLAY_DEAD = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return -1 end
local offsets = redis.call('hkeys', KEYS[4])
for _, offset in ipairs(offsets) do
  redis.call('zadd', KEYS[2], ARGV[2], offset)
  redis.call('hset', KEYS[3], offset, 0)
end
redis.call('del', KEYS[4])
redis.call('incr', KEYS[5])
return #offsets`

/** KEYS: index, state, version. ARGV: name, disabled JSON ('' to enable). */
export const SET_DISABLED = `if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return -1 end
if ARGV[2] == '' then redis.call('hdel', KEYS[2], 'disabled') else redis.call('hset', KEYS[2], 'disabled', ARGV[2]) end
redis.call('incr', KEYS[3])
return 0`

/** KEYS: index, state, due, n, dead, version. ARGV: name, spec JSON, next. Returns 0 if the name is taken. */
export const CREATE = `if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('del', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('hset', KEYS[2], 'next', ARGV[3])
redis.call('incr', KEYS[6])
return 1`

/** KEYS: index, state, due, n, dead, version. ARGV: name. */
export const DELETE = `redis.call('hdel', KEYS[1], ARGV[1])
redis.call('del', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('incr', KEYS[6])
return 0`

/**
 * KEYS: the lock. ARGV: this node's id, ms to hold it. Takes a free lock or extends one this node
 * holds. Returns 1 if this node holds it now.
 */
export const HOLD_LOCK = `local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/** KEYS: the lock. ARGV: this node's id. Lets the lock go, if this node holds it. */
export const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return 0`
