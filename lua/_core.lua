-- _core.lua: what every operation script needs; pasted by the Python loader where a
-- script says `-- @include _core`. Scripts that remove or sweep also include
-- _remove.lua; those that bind or touch threads include _remove.lua and _write.lua.
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
