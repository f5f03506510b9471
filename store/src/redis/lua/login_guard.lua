-- poolgate login brute-force guard for one client (mirrors admin::LoginRecord).
-- KEYS[1] hash {failures, lockedUntil, lastAttempt}.
-- ARGV: op ('attempt'|'fail'|'ok'), max attempts, lockout ms, min interval ms.
-- Returns {code, value}: attempt → {0,0} open | {1,ms} locked out | {2,ms} too soon;
-- fail → {0,remaining} | {1,ms} locked out now; ok → {0,0}. The store's clock decides.
local op = ARGV[1]
if op == 'ok' then
  redis.call('DEL', KEYS[1])
  return {0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = math.max(tonumber(ARGV[2]), 1)
local lockout = tonumber(ARGV[3])
local gap = tonumber(ARGV[4])
local r = redis.call('HMGET', KEYS[1], 'failures', 'lockedUntil', 'lastAttempt')
local failures = tonumber(r[1]) or 0
local locked = tonumber(r[2]) or 0
local last = tonumber(r[3]) or 0
-- Forgotten after a lockout's length without attempts.
local keep = math.max(lockout, gap, 1000)
if op == 'attempt' then
  if locked > now then return {1, locked - now} end
  if locked > 0 then
    failures = 0
    locked = 0
  end
  if last > 0 and now - last < gap then return {2, gap - (now - last)} end
  redis.call('HSET', KEYS[1], 'failures', failures, 'lockedUntil', locked, 'lastAttempt', now)
  redis.call('PEXPIRE', KEYS[1], keep)
  return {0, 0}
end
failures = failures + 1
if failures >= max then
  redis.call('HSET', KEYS[1], 'failures', failures, 'lockedUntil', now + lockout)
  redis.call('PEXPIRE', KEYS[1], keep)
  return {1, lockout}
end
redis.call('HSET', KEYS[1], 'failures', failures)
redis.call('PEXPIRE', KEYS[1], keep)
return {0, max - failures}
