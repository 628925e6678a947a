-- Append one provider webhook to the inbox in a single round trip.
--
-- KEYS[1] dedupe key for this fingerprint   KEYS[2] inbox stream   KEYS[3] drain flag
-- ARGV[1] dedupe TTL (s)  ARGV[2] drain flag TTL (s)  ARGV[3] kind  ARGV[4] payload JSON  ARGV[5] fingerprint
-- ARGV[6] the provider whose webhook it is ("" for an unnamed one)
--
-- Returns one status string (cheaper for the client to parse than an array, on the hot path of every webhook):
--   'd'           a duplicate, dropped
--   's' .. id     stored as entry <id>; the drain flag was free, so the caller must schedule a drain
--   'q' .. id     stored as entry <id>; a drain is already scheduled (flag set)
--
-- Order matters: the entry is written before the dedupe key, so if a write fails half-way (OOM under
-- noeviction aborts a script at the failing command, without rolling back earlier ones) we may keep a
-- repeat, never lose a webhook: a dedupe key without its entry would make the provider's retry a
-- "duplicate" of nothing.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'd'
end
local id = redis.call('XADD', KEYS[2], '*', 'kind', ARGV[3], 'payload', ARGV[4], 'fp', ARGV[5], 'prov', ARGV[6] or '')
redis.call('SET', KEYS[1], id, 'EX', tonumber(ARGV[1]))
if redis.call('SET', KEYS[3], id, 'NX', 'EX', tonumber(ARGV[2])) then
  return 's' .. id
end
return 'q' .. id
