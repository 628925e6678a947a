-- Claim due deadline entries with a lease: take members due by ARGV[1] and push their score to ARGV[2]
-- (now + lease), so another sweeper (or a second beat) does not take them while this one works; if this
-- sweeper dies, the lease simply expires and the entries come due again.
-- KEYS[1] deadlines zset; ARGV[1] now, ARGV[2] lease-until, ARGV[3] max count
-- Returns a flat list {member, original score, ...}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[i])
end
return due
