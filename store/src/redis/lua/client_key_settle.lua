-- Adds answered requests' tokens and errors to their keys, many at once (the group commit):
-- the totals, the minute's token window (TPM) and the per-day, per-model statistics.
-- For entry i (from 0): KEYS[3i+1] the key's usage hash, KEYS[3i+2] the minute's tpm window key,
-- KEYS[3i+3] the day's stats hash; ARGV[5i+1..5i+5] key hash, model, input tokens, output
-- tokens, error (0|1).
for i = 0, #KEYS / 3 - 1 do
  local usage, tpm, stats = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local a = 5 * i
  local input, output, err = tonumber(ARGV[a + 3]) or 0, tonumber(ARGV[a + 4]) or 0, tonumber(ARGV[a + 5]) or 0
  redis.call('HINCRBY', usage, 'inputTokens', input)
  redis.call('HINCRBY', usage, 'outputTokens', output)
  if err > 0 then redis.call('HINCRBY', usage, 'errors', err) end
  if input + output > 0 then
    redis.call('INCRBY', tpm, input + output)
    redis.call('PEXPIRE', tpm, 120000)
  end
  local f = ARGV[a + 1] .. '\t' .. ARGV[a + 2] .. '\t'
  redis.call('HINCRBY', stats, f .. 'requests', 1)
  redis.call('HINCRBY', stats, f .. 'inputTokens', input)
  redis.call('HINCRBY', stats, f .. 'outputTokens', output)
  if err > 0 then redis.call('HINCRBY', stats, f .. 'errors', err) end
  redis.call('EXPIRE', stats, 8640000)
end
return #KEYS / 3
