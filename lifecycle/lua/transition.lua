-- Compare-and-set on an order's state, with its outbox event, history and deadline, in ONE atomic step.
-- KEYS[1] order hash, KEYS[2] deadlines zset, KEYS[3] events stream, KEYS[4] the index bucket hash holding the
-- change's external id while its record is live, KEYS[5] that id's retired index key (both "" = no id); the
-- layout is lifecycle/keys.py's IndexEntry
-- ARGV[1] JSON spec:
--   expect   list of states the order must be in (empty = any existing state)
--   to       new state, or absent to keep the state (a "touch": re-arm a deadline, record a command)
--   set      {field: string value}   del: [field]   incr: {field: n}
--   match    {field: value} that must also hold ("" = absent), else status "stale" (a field-level CAS)
--   code     dedupe key: if already in the record's `codes`, nothing happens (status "dup"); else it is appended
--   codes_max how many dedupe keys the record keeps (default 8; rents keep more: a poll re-reads the last SMS)
--   deadline unix time (string) to (re)arm; undeadline=true removes the entry; both absent: left as is
--   events   [{type, data (JSON string), fill: {data_field: record_field}}], written in order   maxlen: MAXLEN ~
--   ref_field the external id's field in KEYS[4]
--   ref_ttl  seconds: retire the index entry only (a replaced number's entry outlives it a while)
--   side     [{op: hincrby|hset|hdel|zrem, k: index of a KEYS[6..] key, f, n|v, ttl}]: applied only when the
--            change is (exactly once per change: money and accounting ride on the state change)
--   index    value to index the external id to (activation id -> order id): a live entry in KEYS[4]
--   ttl      seconds: expire the record now that it is terminal, and retire its index entry for as long
--   persist  true: remove the record's earlier expiry (a finished rent re-ordered by a prolongation is live
--            again; its new id is indexed live with `index`)
--   hist     label to append to the short history (default: the new state); now: unix time
--   base     the record field holding its creation time (history steps count seconds from it)
-- Retiring moves a live entry to KEYS[5] with an expiry (a hash field cannot expire before Redis 7.4); an entry
-- already there (retired, or written before the buckets existed) just gets the expiry.
-- ARGV[2] (optional) field renames, see below
-- Returns {status, state, event_stream_id}; status is ok | stale | missing | dup.
local spec = cjson.decode(ARGV[1])
local order, member = KEYS[1], spec.order_id
local state = redis.call('HGET', order, 'state')
if not state then
  return {'missing', '', ''}
end
-- ARGV[2] (optional) "old=new,...": fields renamed since the record kind's first layout. A record holding the
-- first old name (written, or last written, in that layout) has them renamed first (a value under an old name
-- is the later one), so the rest of this step reads and writes the new names.
if ARGV[2] and ARGV[2] ~= '' then
  local probe = string.match(ARGV[2], '^([^=,]+)=')
  if probe and redis.call('HEXISTS', order, probe) == 1 then
    for old, new in string.gmatch(ARGV[2], '([^=,]+)=([^=,]+)') do
      local v = redis.call('HGET', order, old)
      if v then
        redis.call('HSET', order, new, v)
        redis.call('HDEL', order, old)
      end
    end
  end
end
if spec.expect and #spec.expect > 0 then
  local allowed = false
  for _, s in ipairs(spec.expect) do
    if s == state then allowed = true break end
  end
  if not allowed then return {'stale', state, ''} end
end
if spec.match then
  for f, want in pairs(spec.match) do
    local have = redis.call('HGET', order, f) or ''
    if have ~= want then return {'stale', state, ''} end
  end
end
if spec.code then
  local codes = redis.call('HGET', order, 'codes') or ''
  for c in string.gmatch(codes, '[^\n]+') do
    if c == spec.code then return {'dup', state, ''} end
  end
  local list = {}
  for c in string.gmatch(codes, '[^\n]+') do table.insert(list, c) end
  table.insert(list, spec.code)
  local cap = tonumber(spec.codes_max) or 8
  while #list > cap do table.remove(list, 1) end
  redis.call('HSET', order, 'codes', table.concat(list, '\n'))
end
local new_state = spec.to or state
local setargs = {}
if spec.set then
  for k, v in pairs(spec.set) do
    table.insert(setargs, k)
    table.insert(setargs, tostring(v))
  end
end
table.insert(setargs, 'state') table.insert(setargs, new_state)
redis.call('HSET', order, unpack(setargs))
if spec.del and #spec.del > 0 then redis.call('HDEL', order, unpack(spec.del)) end
if spec.incr then
  for k, v in pairs(spec.incr) do redis.call('HINCRBY', order, k, v) end
end
if spec.to or spec.hist then
  -- the short history (lifecycle/history.py): the last 16 `label@seconds since creation` steps, split over
  -- fields h, h1, h2, ... of at most 64 bytes, so the record stays a listpack; steps of unix times (a record
  -- written before this layout) are rewritten from its creation time (the field named `base`)
  local created = spec.base and tonumber(redis.call('HGET', order, spec.base))
  local base = created and math.floor(created)
  local names = {'h'}
  for i = 1, 15 do names[i + 1] = 'h' .. i end
  local parts = redis.call('HMGET', order, unpack(names))
  local list = {}
  for i = 1, #names do
    local part = parts[i]
    if not part then break end
    for e in string.gmatch(part, '[^,]+') do
      local label, at = string.match(e, '^(.*)@(-?[%d.]+)$')
      local t = at and tonumber(at)
      if t and base and t >= 1e9 then e = label .. '@' .. string.format('%d', t - base) end
      table.insert(list, e)
    end
  end
  local now = math.floor(spec.now)
  table.insert(list, (spec.hist or new_state) .. '@' .. string.format('%d', base and now - base or now))
  while #list > 16 do table.remove(list, 1) end
  local chunks, cur = {}, ''
  for _, e in ipairs(list) do
    if cur == '' then cur = e
    elseif #cur + 1 + #e > 64 then table.insert(chunks, cur) cur = e
    else cur = cur .. ',' .. e end
  end
  table.insert(chunks, cur)
  local hset, hdel = {}, {}
  for i = 1, #names do
    if chunks[i] then
      table.insert(hset, names[i]) table.insert(hset, chunks[i])
    elseif parts[i] then
      table.insert(hdel, names[i])
    end
  end
  redis.call('HSET', order, unpack(hset))
  if #hdel > 0 then redis.call('HDEL', order, unpack(hdel)) end
end
if spec.undeadline then
  redis.call('ZREM', KEYS[2], member)
elseif spec.deadline then
  redis.call('ZADD', KEYS[2], spec.deadline, member)
end
local ref = KEYS[4] ~= '' and spec.ref_field
if spec.index and ref then
  redis.call('HSET', KEYS[4], ref, spec.index)
  redis.call('DEL', KEYS[5])
end
local function retire(ttl)
  local live = redis.call('HGET', KEYS[4], ref)
  if live then
    redis.call('SET', KEYS[5], live, 'EX', ttl)
    redis.call('HDEL', KEYS[4], ref)
  else
    redis.call('EXPIRE', KEYS[5], ttl)
  end
end
local sid = ''
for _, event in ipairs(spec.events or {}) do
  local data = cjson.decode(event.data)
  if event.fill then
    for dk, rk in pairs(event.fill) do
      if data[dk] == nil then
        local v = redis.call('HGET', order, rk)
        if v then
          if dk == 'country' and tonumber(v) and string.match(v, '^%d+$') then v = tonumber(v) end
          data[dk] = v
        end
      end
    end
  end
  local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', spec.maxlen, '*', 'type', event.type, 'data', cjson.encode(data))
  if sid == '' then sid = id end
end
if spec.ref_ttl and ref then
  retire(spec.ref_ttl)
end
if spec.persist then
  redis.call('PERSIST', order)
end
if spec.ttl then
  redis.call('EXPIRE', order, spec.ttl)
  if ref then retire(spec.ttl) end
end
-- bookkeeping that must happen exactly once with this change (money: spend windows, reservations, accounting);
-- each names one of KEYS[6..] by its index
for _, op in ipairs(spec.side or {}) do
  local key = KEYS[op.k]
  if op.op == 'hincrby' then
    redis.call('HINCRBY', key, op.f, op.n)
    if op.ttl then redis.call('EXPIRE', key, op.ttl) end
  elseif op.op == 'hset' then
    redis.call('HSET', key, op.f, op.v)
  elseif op.op == 'hdel' then
    redis.call('HDEL', key, op.f)
  elseif op.op == 'zrem' then
    redis.call('ZREM', key, op.f)
  end
end
return {'ok', new_state, sid}
