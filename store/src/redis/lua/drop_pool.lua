-- poolgate: forget an empty pool type. KEYS[1] pool key, KEYS[2] pool-types. ARGV: type, channel, writer.
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\np\t' .. ARGV[1] .. '\nt')
return 1
