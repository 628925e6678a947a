-- Hold a webhook for an activation/rent id we do not know YET, atomically with the index check.
-- KEYS[1] index key (activation id -> order id, or rent id -> rent order id), KEYS[2] held list,
-- KEYS[3] the bytes held in the current window (a counter that expires with the window)
-- ARGV[1] payload JSON, ARGV[2] max entries kept, ARGV[3] TTL seconds, ARGV[4] max bytes held per window
-- Returns the indexed order id when the id became known meanwhile (the caller applies it at once), '' when held,
-- '!' (never an order id) when the window's byte budget is spent (not held: the unknown-webhook record and the
-- poll still have it).
-- Checking and holding in one step closes the race with the purchase flow, which writes the index first and
-- replays the held list after: a webhook is either held before the index exists (and replayed) or sees it.
local known = redis.call('GET', KEYS[1])
if known then return known end
local size = string.len(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if used + size > tonumber(ARGV[4]) then return '!' end
if redis.call('INCRBY', KEYS[3], size) == size then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3])) end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return ''
