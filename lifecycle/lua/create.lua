-- Create an order record once (idempotent on the order id) and arm its first deadline.
-- KEYS[1] order hash, KEYS[2] deadlines zset
-- ARGV[1] order id, ARGV[2] deadline ("" = none), ARGV[3] history entry, ARGV[4..] field, value pairs
-- Returns {created (1|0), state}
local state = redis.call('HGET', KEYS[1], 'state')
if state then return {0, state} end
local args = {}
for i = 4, #ARGV do table.insert(args, ARGV[i]) end
redis.call('HSET', KEYS[1], 'h', ARGV[3], unpack(args))
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return {1, redis.call('HGET', KEYS[1], 'state')}
