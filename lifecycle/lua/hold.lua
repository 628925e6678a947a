-- Hold a webhook for an activation/rent id we do not know YET, atomically with the index check.
-- KEYS[1] the index bucket hash and KEYS[2] the retired index key of the id (activation id -> order id, or rent id
-- -> rent order id; lifecycle/keys.py's IndexEntry), KEYS[3] held list, KEYS[4] the bytes held in the current
-- window (a counter that expires with the window)
-- ARGV[1] payload JSON, ARGV[2] max entries kept, ARGV[3] TTL seconds, ARGV[4] max bytes held per window,
-- ARGV[5] the id's field in KEYS[1]
-- Returns the indexed order id when the id became known meanwhile (the caller applies it at once), '' when held,
-- '!' (never an order id) when the window's byte budget is spent (not held: the unknown-webhook record and the
-- poll still have it).
-- Checking and holding in one step closes the race with the purchase flow, which writes the index first and
-- replays the held list after: a webhook is either held before the index exists (and replayed) or sees it.
local known = redis.call('HGET', KEYS[1], ARGV[5]) or redis.call('GET', KEYS[2])
if known then return known end
local size = string.len(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
if used + size > tonumber(ARGV[4]) then return '!' end
if redis.call('INCRBY', KEYS[4], size) == size then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3])) end
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
return ''
