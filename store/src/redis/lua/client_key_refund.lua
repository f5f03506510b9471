-- Adjusts a key's request counters by ARGV[3]: -1 gives back one admitted request that got no
-- upstream answer; +n replays requests a replica admitted while Redis was unreachable.
-- KEYS[1] the key's usage hash, KEYS[2] the request's rpm window key
-- ARGV[1] day of the request(s), ARGV[2] bonus (0|1), ARGV[3] delta
local delta = tonumber(ARGV[3]) or -1
local u = redis.call('HMGET', KEYS[1], 'day', 'todayUsage', 'bonusUsed', 'totalUsage')
local function add(field, cur)
  local n = tonumber(cur) or 0
  local d = delta
  if n + d < 0 then d = -n end
  if d ~= 0 then redis.call('HINCRBY', KEYS[1], field, d) end
end
add('totalUsage', u[4])
if ARGV[2] == '1' then
  add('bonusUsed', u[3])
elseif u[1] == ARGV[1] then
  add('todayUsage', u[2])
elseif delta > 0 and (tonumber(u[1]) or -1) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'day', ARGV[1], 'todayUsage', delta)
end
if delta < 0 and (tonumber(redis.call('GET', KEYS[2])) or 0) > 0 then redis.call('DECR', KEYS[2]) end
return 1
