-- Reserve a purchase's price against a provider's spend limits, in one step.
-- KEYS[1] this UTC hour's spend hash, KEYS[2] this UTC day's, KEYS[3] live reservations (zset: id by expiry),
-- KEYS[4] their amounts (hash: id -> millionths)
-- ARGV[1] now, ARGV[2] reservation id, ARGV[3] amount (millionths), ARGV[4] hourly limit ('' = none),
-- ARGV[5] daily limit ('' = none), ARGV[6] expiry of the reservation
-- Returns '' when reserved (or already held), else the window it would exceed: 'hourly' or 'daily'.
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
if redis.call('HEXISTS', KEYS[4], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
  return ''
end
local held = 0
for _, v in ipairs(redis.call('HVALS', KEYS[4])) do held = held + tonumber(v) end
local amount = tonumber(ARGV[3])
local hour = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local day = tonumber(redis.call('HGET', KEYS[2], 'spent') or '0')
if ARGV[4] ~= '' and hour + held + amount > tonumber(ARGV[4]) then return 'hourly' end
if ARGV[5] ~= '' and day + held + amount > tonumber(ARGV[5]) then return 'daily' end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
return ''
