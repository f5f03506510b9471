-- poolgate per-account concurrency slots with a FIFO wait queue, shared by every replica.
-- KEYS[1] active zset (holder -> lease expiry ms), KEYS[2] wait zset (holder -> enqueue order),
-- KEYS[3] wait expiry hash (holder -> expiry ms).
-- ARGV: mode ('acquire'|'release'), holder, limit, queue_limit, lease_ms.
-- Returns 1 granted, 0 queued, -1 full (release returns 1).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[2]
if ARGV[1] == 'release' then
  redis.call('ZREM', KEYS[1], holder)
  redis.call('ZREM', KEYS[2], holder)
  redis.call('HDEL', KEYS[3], holder)
  return 1
end
local limit = tonumber(ARGV[3])
local queue_limit = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local exp = tonumber(redis.call('HGET', KEYS[3], w) or '0')
  if exp <= now then
    redis.call('ZREM', KEYS[2], w)
    redis.call('HDEL', KEYS[3], w)
  end
end
local function keep()
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], lease * 2) end
end
if redis.call('ZSCORE', KEYS[1], holder) then
  redis.call('ZADD', KEYS[1], now + lease, holder)
  keep()
  return 1
end
local free = limit - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], holder)
local may_take
if rank then may_take = rank < free else may_take = free > 0 and redis.call('ZCARD', KEYS[2]) == 0 end
if may_take then
  redis.call('ZREM', KEYS[2], holder)
  redis.call('HDEL', KEYS[3], holder)
  redis.call('ZADD', KEYS[1], now + lease, holder)
  keep()
  return 1
end
if rank then
  redis.call('HSET', KEYS[3], holder, now + lease)
  keep()
  return 0
end
if redis.call('ZCARD', KEYS[2]) < queue_limit then
  local seq = redis.call('HINCRBY', KEYS[3], '#seq', 1)
  redis.call('ZADD', KEYS[2], seq, holder)
  redis.call('HSET', KEYS[3], holder, now + lease)
  keep()
  return 0
end
return -1
