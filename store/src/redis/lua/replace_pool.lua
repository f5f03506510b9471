-- poolgate: replace one pool wholesale (import only). KEYS[1] pool key, KEYS[2] pool-types.
-- ARGV: provider type, events channel, writer id, then uuid/json pairs.
redis.call('DEL', KEYS[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\np\t' .. ARGV[1] .. '\nt')
return 1
