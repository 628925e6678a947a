-- Create an order record once (idempotent on the order id), arm its first deadline and list it by time.
-- KEYS[1] order hash, KEYS[2] deadlines zset, KEYS[3] the kind's listing zset (order id by creation time)
-- ARGV[1] order id, ARGV[2] deadline ("" = none), ARGV[3] history entry, ARGV[4] now, ARGV[5] listing horizon
-- (entries older than it are dropped: their records have expired), ARGV[6..] field, value pairs
-- Returns {created (1|0), state}
local state = redis.call('HGET', KEYS[1], 'state')
if state then return {0, state} end
local args = {}
for i = 6, #ARGV do table.insert(args, ARGV[i]) end
redis.call('HSET', KEYS[1], 'h', ARGV[3], unpack(args))
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])
return {1, redis.call('HGET', KEYS[1], 'state')}
