-- Hold a webhook for an activation/rent id we do not know YET, atomically with the index check.
-- KEYS[1] index key (activation id -> order id, or rent id -> rent order id), KEYS[2] held list
-- ARGV[1] payload JSON, ARGV[2] max entries kept, ARGV[3] TTL seconds
-- Returns the indexed order id when the id became known meanwhile (the caller applies it at once), else ''.
-- Checking and holding in one step closes the race with the purchase flow, which writes the index first and
-- replays the held list after: a webhook is either held before the index exists (and replayed) or sees it.
local known = redis.call('GET', KEYS[1])
if known then return known end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return ''
