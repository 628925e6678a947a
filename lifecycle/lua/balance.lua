-- Record a provider's balance and detect a crossing of its threshold, in one step: with several beats and
-- workers reading balances at once, each crossing writes exactly one event.
-- KEYS[1] the provider's balance hash, KEYS[2] events stream
-- ARGV[1] when the balance was read (unix s), ARGV[2] the amount (decimal text),
-- ARGV[3] "1" below the threshold, "0" at or above it, "" no threshold (only recorded),
-- ARGV[4] the crossings counted when the caller read the hash (compare-and-set),
-- ARGV[5] balance.low event (type, JSON data), ARGV[6] balance.ok event (type, JSON data), each for the next
-- crossing, ARGV[7] events MAXLEN ~
-- Returns {status, stream id}: status is recorded | crossed | old (a newer reading is stored: ignored) |
-- retry (another reading crossed meanwhile: read the hash again).
local at = tonumber(ARGV[1])
local last_at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
if at < last_at then
  return {'old', ''}
end
local crossings = redis.call('HGET', KEYS[1], 'crossings') or '0'
if crossings ~= ARGV[4] then
  return {'retry', ''}
end
redis.call('HSET', KEYS[1], 'amount', ARGV[2], 'at', ARGV[1])
local below = ARGV[3]
if below == '' then
  return {'recorded', ''}
end
local was = redis.call('HGET', KEYS[1], 'low') or '0'
if was == below then
  return {'recorded', ''}
end
redis.call('HSET', KEYS[1], 'low', below)
redis.call('HINCRBY', KEYS[1], 'crossings', 1)
local event = cjson.decode(below == '1' and ARGV[5] or ARGV[6])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'type', event.type, 'data', event.data)
return {'crossed', id}
