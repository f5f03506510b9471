-- poolgate batch writer: applies one batch of queued writes atomically and at most once.
-- KEYS[1] writer-seq key, KEYS[2] pool-types key, then each entry's keys in order.
-- ARGV[1] seq, ARGV[2] events channel, ARGV[3] writer id, ARGV[4] entry count, then entries.
-- Results: one string per entry: J<json> account, A<json> created, N not found, E exists,
-- O ok (for deletes optionally followed by a stale Kiro refresh token), C<msg> corrupt JSON.
local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if last >= tonumber(ARGV[1]) then return {'DUP'} end

local a, k = 5, 3
local function arg() local v = ARGV[a]; a = a + 1; return v end
local function key() local v = KEYS[k]; k = k + 1; return v end
local events, results = {}, {}

local function read_ops()
  local ops = { unset = {}, set = {}, incr = {}, threshold = nil }
  for _ = 1, tonumber(arg()) do ops.unset[#ops.unset + 1] = arg() end
  for _ = 1, tonumber(arg()) do local f = arg(); ops.set[#ops.set + 1] = { f, arg() } end
  for _ = 1, tonumber(arg()) do local f = arg(); ops.incr[#ops.incr + 1] = { f, tonumber(arg()) } end
  local t = arg()
  if t ~= '' then ops.threshold = tonumber(t) end
  return ops
end

local function update(pool, ptype, uuid, ops, create)
  local cur = redis.call('HGET', pool, uuid)
  if not cur then
    if not create then return 'N' end
    redis.call('HSET', pool, uuid, create)
    redis.call('SADD', KEYS[2], ptype)
    events[#events + 1] = 't'
    return 'A' .. create
  end
  local ok, res = pcall(apply_ops, cur, ops)
  if not ok then return 'C' .. tostring(res) end
  redis.call('HSET', pool, uuid, res)
  return 'J' .. res
end

local handlers = {}
handlers.acct = function()
  local pool, ptype, uuid = key(), arg(), arg()
  local r = update(pool, ptype, uuid, read_ops(), nil)
  events[#events + 1] = 'a\t' .. ptype .. '\t' .. uuid
  return r
end
handlers.spec = function()
  local pool, ptype, uuid = key(), arg(), arg()
  local ops = read_ops()
  local r = update(pool, ptype, uuid, ops, arg())
  events[#events + 1] = 'a\t' .. ptype .. '\t' .. uuid
  return r
end
handlers.add = function()
  local pool, ptype, uuid, json = key(), arg(), arg(), arg()
  if redis.call('HSETNX', pool, uuid, json) == 0 then return 'E' end
  redis.call('SADD', KEYS[2], ptype)
  events[#events + 1] = 'a\t' .. ptype .. '\t' .. uuid
  events[#events + 1] = 't'
  return 'A' .. json
end
handlers.del = function()
  local pool, tok, idx = key(), key(), key()
  local ptype, uuid, kiro, guess = arg(), arg(), arg(), arg()
  local r = 'O'
  if redis.call('HDEL', pool, uuid) == 0 then r = 'N' end
  local stale = ''
  if kiro == '1' then
    if redis.call('GET', idx) == uuid then redis.call('DEL', idx) end
    local rt = refresh_of(redis.call('GET', tok))
    if rt and rt ~= guess then stale = rt end
  end
  redis.call('DEL', tok)
  events[#events + 1] = 'a\t' .. ptype .. '\t' .. uuid
  events[#events + 1] = 'k\t' .. tok
  return r .. stale
end
handlers.set = function()
  local kk, v = key(), arg()
  redis.call('SET', kk, v)
  events[#events + 1] = 'k\t' .. kk
  return 'O'
end
handlers.setpx = function()
  local kk, v, ms = key(), arg(), arg()
  redis.call('SET', kk, v, 'PX', ms)
  events[#events + 1] = 'k\t' .. kk
  return 'O'
end
handlers.delk = function()
  local kk = key()
  redis.call('DEL', kk)
  events[#events + 1] = 'k\t' .. kk
  return 'O'
end
handlers.hset = function()
  local kk = key()
  for _ = 1, tonumber(arg()) do local f = arg(); redis.call('HSET', kk, f, arg()) end
  events[#events + 1] = 'k\t' .. kk
  return 'O'
end

for i = 1, tonumber(ARGV[4]) do
  local op = arg()
  local h = handlers[op]
  if not h then return redis.error_reply('poolgate: unknown batch op ' .. tostring(op)) end
  results[i] = h()
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', 86400)
if #events > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\n' .. table.concat(events, '\n')) end
return results
