-- Admits one request of a client key: checks every limit and counts the request, atomically,
-- on the Redis server's clock. The rules mirror client_key::decide (tested against it).
-- KEYS[1] client-keys hash, KEYS[2] the key's usage hash
-- ARGV[1] key hash, ARGV[2] model, ARGV[3] provider type, ARGV[4] window key prefix
-- Returns {"unknown"|"disabled"|"expired"|"forbidden"} or
-- {"admitted", day, minute, bonus(0|1), limit, remaining, reset} or
-- {"exhausted", which, retry_after, limit, remaining, reset} (-1 for "none").
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'unknown'} end
local ok, k = pcall(cjson.decode, raw)
if not ok or type(k) ~= 'table' then return {'unknown'} end
local function num(v) if type(v) == 'number' then return v end return nil end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if k.enabled ~= true then return {'disabled'} end
local exp = num(k.expiresAt)
if exp and exp <= now then return {'expired'} end
local function allowed(list, v)
  if type(list) ~= 'table' or #list == 0 then return true end
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end
if not allowed(k.models, ARGV[2]) or not allowed(k.providers, ARGV[3]) then return {'forbidden'} end

local off = (num(k.timezoneOffsetMinutes) or 0) * 60000
local day = math.floor((now + off) / 86400000)
local minute = math.floor(now / 60000)
local rpm_key = ARGV[4] .. 'rpm:' .. ARGV[1] .. ':' .. minute
local tpm_key = ARGV[4] .. 'tpm:' .. ARGV[1] .. ':' .. minute
local u = redis.call('HMGET', KEYS[2], 'day', 'todayUsage', 'totalUsage', 'bonusUsed')
local today = tonumber(u[2]) or 0
if (tonumber(u[1]) or -1) ~= day then today = 0 end
local total = tonumber(u[3]) or 0
local bonus_used = tonumber(u[4]) or 0
local daily, rpm, tpm, totl = num(k.dailyLimit), num(k.rpmLimit), num(k.tpmLimit), num(k.totalLimit)
-- The minute windows are read and kept only for keys with a per-minute limit.
local mreq, mtok = 0, 0
if rpm then mreq = tonumber(redis.call('GET', rpm_key)) or 0 end
if tpm then mtok = tonumber(redis.call('GET', tpm_key)) or 0 end
local to_midnight = math.max(1, math.floor((86400000 - (now + off) % 86400000) / 1000))
local to_minute = math.max(1, math.floor((60000 - now % 60000) / 1000))

local bonus = num(k.bonus) or 0
local bexp = num(k.bonusExpiresAt)
local bonus_live = bonus > bonus_used and (bexp == nil or bexp > now)
-- The tightest request limit, for the x-ratelimit headers.
local limit, remaining, reset = -1, -1, -1
if daily then limit, remaining, reset = daily, math.max(0, daily - today), to_midnight end
if rpm and (remaining < 0 or rpm - mreq < remaining) then
  limit, remaining, reset = rpm, math.max(0, rpm - mreq), to_minute
end
if totl and total >= totl then return {'exhausted', 'total', -1, limit, remaining, reset} end
if rpm and mreq >= rpm then return {'exhausted', 'rpm', to_minute, limit, remaining, reset} end
if tpm and mtok >= tpm then return {'exhausted', 'tpm', to_minute, limit, remaining, reset} end
local over = daily ~= nil and today >= daily
if over and not bonus_live then return {'exhausted', 'daily', to_midnight, limit, remaining, reset} end

if over then
  redis.call('HINCRBY', KEYS[2], 'bonusUsed', 1)
else
  today = today + 1
end
redis.call('HSET', KEYS[2], 'day', day, 'todayUsage', today)
redis.call('HINCRBY', KEYS[2], 'totalUsage', 1)
if rpm then
  redis.call('INCR', rpm_key)
  redis.call('PEXPIRE', rpm_key, 120000)
end
if remaining > 0 then remaining = remaining - 1 end
return {'admitted', day, minute, over and 1 or 0, limit, remaining, reset}
