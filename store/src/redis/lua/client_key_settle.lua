-- Adds an answered request's tokens and errors to its key: the totals, the minute's token window
-- (TPM) and the per-day, per-model statistics.
-- KEYS[1] the key's usage hash, KEYS[2] the minute's tpm window key, KEYS[3] the day's stats hash
-- ARGV[1] key hash, ARGV[2] model, ARGV[3] input tokens, ARGV[4] output tokens, ARGV[5] error (0|1)
local input, output, err = tonumber(ARGV[3]) or 0, tonumber(ARGV[4]) or 0, tonumber(ARGV[5]) or 0
redis.call('HINCRBY', KEYS[1], 'inputTokens', input)
redis.call('HINCRBY', KEYS[1], 'outputTokens', output)
if err > 0 then redis.call('HINCRBY', KEYS[1], 'errors', err) end
if input + output > 0 then
  redis.call('INCRBY', KEYS[2], input + output)
  redis.call('PEXPIRE', KEYS[2], 120000)
end
local f = ARGV[1] .. '\t' .. ARGV[2] .. '\t'
redis.call('HINCRBY', KEYS[3], f .. 'requests', 1)
redis.call('HINCRBY', KEYS[3], f .. 'inputTokens', input)
redis.call('HINCRBY', KEYS[3], f .. 'outputTokens', output)
if err > 0 then redis.call('HINCRBY', KEYS[3], f .. 'errors', err) end
redis.call('EXPIRE', KEYS[3], 8640000)
return 1
