-- poolgate refresh lock, compare-and-act on the owner id. KEYS[1] lock key.
-- ARGV: mode ('renew'|'release'), owner, ttl ms. Returns 1 when the owner held the lock.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == 'renew' then return redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('DEL', KEYS[1])
