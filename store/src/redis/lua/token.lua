-- poolgate token write. KEYS[1] token key, KEYS[2] old Kiro index key, KEYS[3] new Kiro index key.
-- ARGV: uuid, new JSON, mode ('set'|'cas'|'del'), expected/guessed refresh token, kiro '1'|'0',
-- new refresh token (kiro), events channel, writer id.
-- Returns {'O'} done, {'N'} no token (cas), {'X', current} cas conflict,
-- {'R', current refresh} the caller's guess of the old refresh token was stale: retry.
local uuid, json, mode, expected, kiro, newrt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local existing = redis.call('GET', KEYS[1])
local cur = refresh_of(existing)
if mode == 'cas' then
  if not existing then return {'N'} end
  if cur ~= expected then return {'X', existing} end
elseif kiro == '1' and existing and cur and cur ~= expected then
  return {'R', cur}
end
if kiro == '1' and cur and redis.call('GET', KEYS[2]) == uuid then redis.call('DEL', KEYS[2]) end
if mode == 'del' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], json)
  if kiro == '1' and newrt ~= '' then redis.call('SET', KEYS[3], uuid) end
end
redis.call('PUBLISH', ARGV[7], ARGV[8] .. '\nk\t' .. KEYS[1])
return {'O'}
