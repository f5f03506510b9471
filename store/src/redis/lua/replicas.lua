-- poolgate replica heartbeats. KEYS[1] hash id → "seenAtMs\tttlMs\tjson".
-- ARGV: op ('beat'|'list'), id, ttl ms, json (beat). 'list' returns the live entries'
-- values with seenAt first (stale ones are removed); the store's clock decides.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'beat' then
  redis.call('HSET', KEYS[1], ARGV[2], now .. '\t' .. ARGV[3] .. '\t' .. ARGV[4])
  return {}
end
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen, ttl, json = string.match(all[i + 1], '^(%d+)\t(%d+)\t(.*)$')
  if seen and now - tonumber(seen) <= tonumber(ttl) then
    out[#out + 1] = seen .. '\t' .. json
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
