-- _core.lua: what every operation script needs; pasted by the Python loader where a
-- script says `-- @include _core`. Scripts that remove or sweep also include
-- _remove.lua; those that bind or touch threads include _remove.lua and _write.lua.
-- Everything here is `local` (Redis forbids globals).
--
-- Every operation script receives the same three KEYS, all under the namespace's hash tag:
--   KEYS[1] meta       hash: salt, root, sweep cursor, T<table> -> table-root id,
--                      P<id> -> chain (permanent threads), Q<chain> -> id (their
--                      overrides), or Q<chain> -> '' (a permanent floor, see _write.lua)
--   KEYS[2] threads    hash: thread id -> 6-byte deadline (ms, big-endian) .. chain, and
--                      \0<chain> -> 6-byte deadline (an expiring floor, see _write.lua)
--   KEYS[3] overrides  hash: chain -> thread id, only where the id is not the derived one
-- A chain is its hops joined by \31 (unit separator): hops never contain control
-- characters, so the separator keeps hop boundaries exact, and a field that starts
-- with \0 can be neither an id nor a chain.
--
-- Error replies start with a code the client maps to an exception:
--   BADHOP, BADCHAIN, BADID, BADARG, ROOTCONFLICT, TABLECONFLICT, IDCONFLICT

local K_META, K_THREADS, K_OVERRIDES = KEYS[1], KEYS[2], KEYS[3]
local SEP = '\31'
local MAX_HOPS, MAX_HOP_BYTES = 256, 256
local MAX_COUNT = 10000  -- most entries one sweep step or dump page may ask HSCAN for

local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function dec_dl(s)
  local a, b, c, d, e, f = string.byte(s, 1, 6)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end

-- The whole number s names when it lies in [lo, hi], else nil ('1.5', 'inf', '1e300').
local function whole(s, lo, hi)
  local n = tonumber(s)
  if n and n == math.floor(n) and n >= lo and n <= hi then return n end
  return nil
end

-- Where a thread id lives. Returns chain, deadline, permanent; chain is nil when the
-- id is unknown or its deadline has passed (deadline is then the stale one, or nil).
-- A floor's value is the bare 6-byte deadline: never taken for a mapping.
local function find(id)
  local v = redis.call('HGET', K_THREADS, id)
  if v and #v > 6 then
    local dl = dec_dl(v)
    if dl > NOW then return string.sub(v, 7), dl, false end
    return nil, dl, false
  end
  v = redis.call('HGET', K_META, 'P' .. id)
  if v then return v, nil, true end
  return nil, nil, false
end

-- One bounded page of HSCAN: entries (a flat field, value list), the next cursor, and
-- the listpack offset the page began at (nil for a real HSCAN cursor). A hash small
-- enough for listpack encoding answers HSCAN with all its entries whatever COUNT says,
-- and an operator may raise hash-max-listpack-entries; so such a reply is cut to
-- `count` entries and the position kept in the cursor as 'L<offset>'.
local function scan_page(key, cursor, count, match)
  local off
  if string.sub(cursor, 1, 1) == 'C' then cursor = string.sub(cursor, 2) end  -- see sweep()
  if string.sub(cursor, 1, 1) == 'L' then
    off = whole(string.sub(cursor, 2), 0, 4294967295)
    if not off then return nil, 'BADARG cursor ' .. cursor .. ' is not one this library gave' end
    cursor = '0'
  end
  local r
  if match then
    r = redis.call('HSCAN', key, cursor, 'MATCH', match, 'COUNT', count)
  else
    r = redis.call('HSCAN', key, cursor, 'COUNT', count)
  end
  local kv = r[2]
  if r[1] ~= '0' or cursor ~= '0' or (not off and #kv <= 2 * count) then
    return kv, r[1], nil
  end
  off = off or 0
  local page = {}
  for i = 2 * off + 1, math.min(#kv, 2 * (off + count)) do page[#page + 1] = kv[i] end
  if #kv > 2 * (off + count) then return page, 'L' .. string.format('%d', off + count), off end
  return page, '0', off
end
