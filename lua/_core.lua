-- _core.lua: what every operation script needs; pasted by the Python loader where a
-- script says `-- @include _core`. Write scripts also include _write.lua after it.
-- Everything here is `local` (Redis forbids globals).
--
-- Every operation script receives the same three KEYS, all under the namespace's hash tag:
--   KEYS[1] meta       hash: salt, root, sweep cursor, T<table> -> table-root id,
--                      P<id> -> chain (permanent threads), Q<chain> -> id (their overrides)
--   KEYS[2] threads    hash: thread id -> 6-byte deadline (ms, big-endian) .. chain
--   KEYS[3] overrides  hash: chain -> thread id, only where the id is not the derived one
-- A chain is its hops joined by \31 (unit separator): hops never contain control
-- characters, so the separator keeps hop boundaries exact.
--
-- Error replies start with a code the client maps to an exception:
--   BADHOP, BADCHAIN, BADID, BADARG, ROOTCONFLICT, TABLECONFLICT

local K_META, K_THREADS, K_OVERRIDES = KEYS[1], KEYS[2], KEYS[3]
local SEP = '\31'
local MAX_HOPS, MAX_HOP_BYTES = 256, 256

local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function dec_dl(s)
  local a, b, c, d, e, f = string.byte(s, 1, 6)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end

local function render(chain)
  return (string.gsub(chain, SEP, '.'))
end

-- Byte offsets of the separators, so prefixes and the last hop come without copying.
local function separators(chain)
  local seps, from = {}, 1
  while true do
    local i = string.find(chain, SEP, from, true)
    if not i then return seps end
    seps[#seps + 1] = i
    from = i + 1
  end
end

-- Where a thread id lives. Returns chain, deadline, permanent; chain is nil when the
-- id is unknown or its deadline has passed (deadline is then the stale one, or nil).
local function find(id)
  local v = redis.call('HGET', K_THREADS, id)
  if v then
    local dl = dec_dl(v)
    if dl > NOW then return string.sub(v, 7), dl, false end
    return nil, dl, false
  end
  v = redis.call('HGET', K_META, 'P' .. id)
  if v then return v, nil, true end
  return nil, nil, false
end

-- Removes an expiring entry and the override that points at it.
local function drop_expiring(id, chain)
  redis.call('HDEL', K_THREADS, id)
  if redis.call('HGET', K_OVERRIDES, chain) == id then
    redis.call('HDEL', K_OVERRIDES, chain)
  end
end

-- Removes a mapping, both directions, wherever it lives; also the root or
-- table-root pointer that names it. Returns true when something was removed.
local function remove(id)
  local v = redis.call('HGET', K_THREADS, id)
  if v then
    drop_expiring(id, string.sub(v, 7))
    return true
  end
  local chain = redis.call('HGET', K_META, 'P' .. id)
  if not chain then return false end
  local seps = separators(chain)
  local table_pointer = #seps == 1 and ('T' .. string.sub(chain, 1, seps[1] - 1)) or 'T'
  local m = redis.call('HMGET', K_META, 'Q' .. chain, 'root', table_pointer)
  local doomed = {'P' .. id}
  if m[1] == id then doomed[#doomed + 1] = 'Q' .. chain end
  if m[2] == id then doomed[#doomed + 1] = 'root' end
  if m[3] == id then doomed[#doomed + 1] = table_pointer end
  redis.call('HDEL', K_META, unpack(doomed))
  return true
end

-- Incremental expiry: examines about `count` entries from a cursor kept in meta.
-- Returns how many were reclaimed, the next cursor, and the cursor it began at.
local function sweep(count)
  local began = redis.call('HGET', K_META, 'cur') or '0'
  local r = redis.call('HSCAN', K_THREADS, began, 'COUNT', count)
  local kv, reclaimed = r[2], 0
  for i = 1, #kv, 2 do
    if dec_dl(kv[i + 1]) <= NOW then
      drop_expiring(kv[i], string.sub(kv[i + 1], 7))
      reclaimed = reclaimed + 1
    end
  end
  if r[1] == '0' then
    redis.call('HDEL', K_META, 'cur')
  else
    redis.call('HSET', K_META, 'cur', r[1])
  end
  return reclaimed, r[1], began
end
