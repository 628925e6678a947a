-- Claim a purchase slot at a provider that allows at most ARGV[3] numbers open at once, in one step.
-- KEYS[1] the provider's open numbers (hash: order id -> 'open', or the expiry of a claimed slot)
-- ARGV[1] now, ARGV[2] order id, ARGV[3] the most open at once, ARGV[4] expiry of this claim
-- Returns 1 when the order holds a slot (claimed now or already), 0 when the provider is full.
local entries = redis.call('HGETALL', KEYS[1])
local held = 0
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  if value ~= 'open' and tonumber(value) and tonumber(value) <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], entries[i])   -- a claim whose worker died: its slot comes back
  else
    held = held + 1
  end
end
local mine = redis.call('HGET', KEYS[1], ARGV[2])
if mine then
  if mine ~= 'open' then redis.call('HSET', KEYS[1], ARGV[2], ARGV[4]) end
  return 1
end
if held >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
return 1
