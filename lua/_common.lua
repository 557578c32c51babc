-- _common.lua: helpers shared by every operation script.
--
-- Not a script of its own: the Python loader pastes it where an operation script says
-- `-- @include _common`. Everything here is `local` (Redis forbids globals).
--
-- Every operation script receives the same three KEYS, all under the namespace's hash tag:
--   KEYS[1] meta       hash: salt, root, gc cursor, table-root pointers, permanent threads
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

-- Set by write scripts through begin_write(); reads leave them nil.
local SALT = redis.call('HGET', K_META, 'salt')
local NEWDL        -- deadline a write gives what it touches; nil = never expire
local CANDIDATE    -- fresh random id from the client, used when the derived id is taken
local EXPIRING_WRITTEN = false

-- ---------------------------------------------------------------- encoding

local function enc_dl(ms)
  local b = {}
  for i = 6, 1, -1 do
    b[i] = ms % 256
    ms = (ms - b[i]) / 256
  end
  return string.char(b[1], b[2], b[3], b[4], b[5], b[6])
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

local function is_cont(b)
  return b ~= nil and b >= 128 and b <= 191
end

-- Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
local function valid_utf8(s)
  if not string.find(s, '[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c, c2, c3, c4 = string.byte(s, i, i + 3)
    if c < 128 then
      i = i + 1
    elseif c >= 194 and c <= 223 and is_cont(c2) then
      i = i + 2
    elseif c >= 224 and c <= 239 and is_cont(c2) and is_cont(c3)
        and not (c == 224 and c2 < 160) and not (c == 237 and c2 > 159) then
      i = i + 3
    elseif c >= 240 and c <= 244 and is_cont(c2) and is_cont(c3) and is_cont(c4)
        and not (c == 240 and c2 < 144) and not (c == 244 and c2 > 143) then
      i = i + 4
    else
      return false
    end
  end
  return true
end

local function check_hop(hop, where)
  local n = #hop
  if n < 1 or n > MAX_HOP_BYTES then
    return 'BADHOP ' .. where .. ' is ' .. n .. ' bytes; a hop is 1 to 256 bytes of UTF-8'
  end
  if not valid_utf8(hop) then
    return 'BADHOP ' .. where .. ' is not valid UTF-8'
  end
  if string.find(hop, '[%z\1-\31\127]') or string.find(hop, '\194[\128-\159]') then
    return 'BADHOP ' .. where .. ' contains a control character; hops may not'
  end
  return nil
end

-- Validates a whole encoded chain; returns an error string or nil.
local function check_chain(chain)
  local seps = separators(chain)
  if #seps + 1 > MAX_HOPS then
    return 'BADCHAIN chain has ' .. (#seps + 1) .. ' hops; at most 256 are allowed'
  end
  local from = 1
  for i = 1, #seps + 1 do
    local to = (seps[i] or (#chain + 1)) - 1
    local err = check_hop(string.sub(chain, from, to), 'hop ' .. i)
    if err then return err end
    from = to + 2
  end
  return nil
end

local function check_id(id)
  if not string.find(id, '^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$')
      or string.find(id, '%u') then
    return 'BADID thread id ' .. id .. ' is not a lowercase UUID string'
  end
  return nil
end

-- ---------------------------------------------------------------- ids

-- The id a chain gets unless it is taken: a keyed digest of the chain, so the
-- chain -> id direction needs no storage of its own. Real servers have sha1hex;
-- fakeredis does not, and gets a keyed polynomial hash (collisions are handled
-- by the override path either way, so only opacity depends on the digest).
local digest
if redis.sha1hex then
  digest = function(s) return redis.sha1hex(s) end
else
  local P = {67108859, 67108837, 67108819, 67108777, 67108763}
  local M = {16777619, 22222223, 19999999, 23456789, 17171717}
  digest = function(s)
    local h = {1, 7, 13, 29, 31}
    for from = 1, #s, 128 do
      local bytes = {string.byte(s, from, math.min(from + 127, #s))}
      for j = 1, #bytes do
        local x = bytes[j]
        for k = 1, 5 do h[k] = (h[k] * M[k] + x + 1) % P[k] end
      end
    end
    local out = {}
    for k = 1, 5 do out[k] = string.format('%07x', h[k]) end
    return table.concat(out)
  end
end

local function derived_id(chain)
  local hex = digest(SALT .. '\0' .. chain)
  local variant = string.format('%x', tonumber(string.sub(hex, 17, 17), 16) % 4 + 8)
  return string.sub(hex, 1, 8) .. '-' .. string.sub(hex, 9, 12) .. '-8' .. string.sub(hex, 14, 16)
    .. '-' .. variant .. string.sub(hex, 18, 20) .. '-' .. string.sub(hex, 21, 32)
end

-- ---------------------------------------------------------------- storage

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

local function override_of(chain)
  return redis.call('HGET', K_OVERRIDES, chain) or redis.call('HGET', K_META, 'Q' .. chain)
end

-- The live id of a chain, or nil plus the derived id and any stale override.
local function resolve(chain)
  if not SALT then return nil end
  local d = derived_id(chain)
  local c, dl, perm = find(d)
  if c == chain then return d, dl, perm end
  local o = override_of(chain)
  if o then
    c, dl, perm = find(o)
    if c == chain then return o, dl, perm end
  end
  return nil, d, o
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
  redis.call('HDEL', K_META, 'P' .. id)
  if redis.call('HGET', K_META, 'Q' .. chain) == id then redis.call('HDEL', K_META, 'Q' .. chain) end
  if redis.call('HGET', K_META, 'root') == id then redis.call('HDEL', K_META, 'root') end
  local seps = separators(chain)
  if #seps == 1 then
    local tkey = 'T' .. string.sub(chain, 1, seps[1] - 1)
    if redis.call('HGET', K_META, tkey) == id then redis.call('HDEL', K_META, tkey) end
  end
  return true
end

-- Moves a mapping to the permanent store (roots, table roots, ttl=None writes).
local function promote(id, chain)
  redis.call('HDEL', K_THREADS, id)
  redis.call('HSET', K_META, 'P' .. id, chain)
  if redis.call('HGET', K_OVERRIDES, chain) == id then
    redis.call('HDEL', K_OVERRIDES, chain)
    redis.call('HSET', K_META, 'Q' .. chain, id)
  end
end

-- Pushes a live mapping's deadline to NEWDL (never shortens it).
local function touch(id, chain, dl, perm, permanent)
  if perm then return end
  if permanent or NEWDL == nil then
    promote(id, chain)
  elseif dl < NEWDL then
    redis.call('HSET', K_THREADS, id, enc_dl(NEWDL) .. chain)
    EXPIRING_WRITTEN = true
  end
end

-- Keeps every live ancestor (proper prefix) of a chain at least as long-lived.
local function touch_ancestors(chain)
  local seps = separators(chain)
  for i = 1, #seps do
    local prefix = string.sub(chain, 1, seps[i] - 1)
    local id, dl, perm = resolve(prefix)
    if id then touch(id, prefix, dl, perm, false) end
  end
end

-- Binds a chain that has no live id. `forced` is an externally assigned id whose
-- slot is known to be free or stale.
local function create(chain, derived, stale_override, forced, permanent)
  if stale_override then
    local c = find(stale_override)
    if c == nil and redis.call('HEXISTS', K_THREADS, stale_override) == 1 then
      remove(stale_override)
    end
    redis.call('HDEL', K_OVERRIDES, chain)
    redis.call('HDEL', K_META, 'Q' .. chain)
  end
  local id = forced
  if not id then
    local c, dl = find(derived)
    if c then
      id = CANDIDATE
    else
      if dl then remove(derived) end
      id = derived
    end
  end
  if id ~= derived then
    local c, dl = find(id)
    if c then return redis.error_reply('BADID thread id ' .. id .. ' is already bound') end
    if dl then remove(id) end
  end
  if permanent or NEWDL == nil then
    redis.call('HSET', K_META, 'P' .. id, chain)
    if id ~= derived then redis.call('HSET', K_META, 'Q' .. chain, id) end
  else
    redis.call('HSET', K_THREADS, id, enc_dl(NEWDL) .. chain)
    if id ~= derived then redis.call('HSET', K_OVERRIDES, chain, id) end
    EXPIRING_WRITTEN = true
  end
  return id
end

-- The id of a chain, bound now if it had none; touches it and its ancestors.
local function get_or_create(chain, permanent)
  local id, dl_or_derived, perm_or_stale = resolve(chain)
  if id then
    touch(id, chain, dl_or_derived, perm_or_stale, permanent)
  else
    id = create(chain, dl_or_derived, perm_or_stale, nil, permanent)
    if type(id) == 'table' then return id end
  end
  touch_ancestors(chain)
  return id
end

-- ---------------------------------------------------------------- write protocol

-- Every write script passes ARGV[1] ttl in ms ('' = never), ARGV[2] a fresh random
-- UUID, ARGV[3] how many thread entries to sweep for expiry on the way ('0' = none).
local function begin_write()
  local ttl = ARGV[1]
  if ttl ~= '' then
    local n = tonumber(ttl)
    if not n or n < 1 or n ~= math.floor(n) then
      return 'BADARG ttl ' .. ttl .. ' must be a positive whole number of milliseconds'
    end
    NEWDL = NOW + n
  end
  local err = check_id(ARGV[2])
  if err then return err end
  CANDIDATE = ARGV[2]
  return nil
end

local function ensure_salt()
  if not SALT then
    SALT = CANDIDATE
    redis.call('HSET', K_META, 'salt', SALT)
  end
end

-- Incremental expiry: examines about `count` entries from a cursor kept in meta.
local function sweep(count)
  local r = redis.call('HSCAN', K_THREADS, redis.call('HGET', K_META, 'cur') or '0', 'COUNT', count)
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
  return reclaimed, r[1]
end

-- The threads and overrides hashes carry a native expiry at their latest deadline,
-- so a namespace left idle is given back by Redis itself.
local function extend_key_expiry(key)
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then return end
  if pttl == -1 or NOW + pttl < NEWDL then
    redis.call('PEXPIREAT', key, NEWDL)
  end
end

local function end_write()
  if EXPIRING_WRITTEN then
    extend_key_expiry(K_THREADS)
    extend_key_expiry(K_OVERRIDES)
  end
  local n = tonumber(ARGV[3])
  if n and n > 0 then sweep(n) end
end
