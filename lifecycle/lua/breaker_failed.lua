-- Count one transient failure of a provider and open its breaker when due, in one step.
-- KEYS[1] breaker hash, KEYS[2] half-open probe key
-- ARGV[1] now, ARGV[2] threshold, ARGV[3] cool-down (s), ARGV[4] retry-after (s, 0 = none)
-- Returns the time the breaker is open until ('0' = closed).
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local now, cooldown, retry_after = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if retry_after > 0 then
  open_until = math.max(open_until, now + retry_after)
elseif fails >= tonumber(ARGV[2]) then
  open_until = math.max(open_until, now + cooldown)
end
if open_until > 0 then
  redis.call('HSET', KEYS[1], 'open_until', string.format('%.3f', open_until))
  redis.call('DEL', KEYS[2])
end
-- forgotten after a quiet while: a provider that failed once a day ago is healthy
redis.call('EXPIRE', KEYS[1], math.max(600, math.ceil(cooldown * 10 + retry_after)))
return string.format('%.3f', open_until)
