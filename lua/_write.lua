-- _write.lua: helpers of the scripts that bind and touch threads; pasted after _core
-- and _remove.
--
-- Every write script passes ARGV[1] ttl in ms ('' = never expire), ARGV[2] a fresh
-- random UUID, ARGV[3] how many thread entries to sweep for expiry on the way ('0' = none).
--
-- Deadlines: a touched thread gets NOW + ttl; every ancestor whose deadline is earlier
-- gets NOW + ttl + HEADROOM (ttl/64, at most 1 s).
--
-- Invariant: every proper prefix of a live entry has a live entry of its own that is
-- permanent or expires no earlier. An entry is a mapping, or a FLOOR where the prefix
-- has no mapping: a floor holds only the deadline (or permanence) that a mapping of
-- that chain must start with, should one be created later. So an ancestor created
-- after its descendants (by another client with a shorter ttl, by prune_for_response,
-- above a permanent root) starts no earlier than they end. Expiring floors live in the
-- threads hash under \0<chain>, permanent ones in meta as Q<chain> = ''; both are found
-- by the same reads that look for a chain's mapping, and expired floors are swept like
-- mappings. Because of the invariant the walk up the chain stops at the first prefix
-- that is already late enough, and thanks to HEADROOM a busy subtree rewrites its
-- ancestors once per HEADROOM, not on every write.

local MAX_TTL_MS = 315360000000  -- ten years; deadlines stay far below 2^48 and 1e14
local MAX_SWEEP = MAX_COUNT
local SALT = redis.call('HGET', K_META, 'salt')
local NEWDL        -- deadline a write gives what it touches; nil = never expire
local HEADROOM = 0
local CANDIDATE    -- fresh random id from the client, used when the derived id is taken
local MAXDL = nil  -- latest deadline this call wrote, for the keys' native expiry
local OVERRIDDEN = false  -- whether this call wrote to the overrides hash
local PERMANENT_WRITTEN = false  -- whether this call made a permanent mapping

local function enc_dl(ms)
  local f = ms % 256
  ms = (ms - f) / 256
  local e = ms % 256
  ms = (ms - e) / 256
  local d = ms % 256
  ms = (ms - d) / 256
  local c = ms % 256
  ms = (ms - c) / 256
  local b = ms % 256
  return string.char((ms - b) / 256 % 256, b, c, d, e, f)
end

-- The chain without its last hop (nil for a one-hop chain); the greedy match finds
-- the last separator in C, without building a table of them.
local function parent_of(chain)
  return string.match(chain, '^(.*)\31')
end

-- Whether a chain has more than `limit` hops; counts only when it could.
local function deeper_than(chain, limit)
  if #chain < 2 * limit + 1 then return false end
  local _, seps = string.gsub(chain, SEP, SEP)
  return seps + 1 > limit
end

-- ---------------------------------------------------------------- input rules

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
  digest = redis.sha1hex
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

-- The live id of a chain: id, deadline, permanent. When the chain has none: nil and
-- what creating it needs to know: the derived id, what occupies its slot, a stale
-- override, and the chain's floor (deadline, or permanent) if it has one.
local function resolve(chain)
  local d = derived_id(chain)
  local t = redis.call('HMGET', K_THREADS, d, '\0' .. chain)
  local v = t[1]
  if v and string.sub(v, 7) == chain then
    local dl = dec_dl(v)
    if dl > NOW then return d, dl, false end
  end
  local m = redis.call('HMGET', K_META, 'P' .. d, 'Q' .. chain)
  if m[1] == chain then return d, nil, true end
  local q, o = m[2], nil  -- HMGET gives false, not nil, for a missing field
  if not q then
    o = redis.call('HGET', K_OVERRIDES, chain)
  elseif q ~= '' then
    o = q
  end
  if o then
    local c, dl, perm = find(o)
    if c == chain then
      return o, dl, perm
    end
  end
  local floor_dl = t[2] and dec_dl(t[2])
  if floor_dl and floor_dl <= NOW then floor_dl = nil end
  return nil, {derived = d, slot = v, perm_slot = m[1], override = o, q = q,
    floor_field = t[2] and true, floor_dl = floor_dl, floor_perm = q == ''}
end

-- ---------------------------------------------------------------- touching

local function note_deadline(dl)
  if MAXDL == nil or dl > MAXDL then MAXDL = dl end
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

-- Whether a live entry already satisfies this write: permanent, or (for an expiring
-- write) due no earlier than `need`. Its ancestors then do too (the invariant).
local function fresh(dl, perm, permanent, need)
  if perm then return true end
  if permanent or not dl then return false end
  return dl >= (need or NEWDL)
end

-- Gives a mapping the deadline `dl` (NEWDL if nil), or makes it permanent.
local function touch(id, chain, permanent, dl)
  if permanent then
    promote(id, chain)
  else
    dl = dl or NEWDL
    redis.call('HSET', K_THREADS, id, enc_dl(dl) .. chain)
    note_deadline(dl)
  end
end

-- Raises (or creates) the floor of a chain that has no mapping.
local function raise_floor(chain, permanent, dl)
  if permanent then
    redis.call('HDEL', K_THREADS, '\0' .. chain)
    redis.call('HSET', K_META, 'Q' .. chain, '')
  else
    redis.call('HSET', K_THREADS, '\0' .. chain, enc_dl(dl))
    note_deadline(dl)
  end
end

-- What a pushed ancestor gets: at least what its child now has, and HEADROOM beyond
-- this write's deadline, so a busy subtree does not rewrite it on every write.
local function pushed(need)
  local dl = NEWDL + HEADROOM
  if need > dl then return need end
  return dl
end

-- Keeps every proper prefix of the chain (its mapping, or its floor) due no earlier
-- than `need`, the deadline the chain has now (NEWDL if nil), nearest first. Each
-- prefix pushed raises what its own parent needs, so the walk compares against that;
-- it stops at the first prefix that is already late enough (the invariant holds above).
local function touch_ancestors(chain, permanent, need)
  need = need or NEWDL
  local prefix = parent_of(chain)
  while prefix do
    local id, dl, perm = resolve(prefix)
    local miss = not id and dl
    if miss then dl, perm = miss.floor_dl, miss.floor_perm end
    if fresh(dl, perm, permanent, need) then return end
    if not permanent then need = pushed(need) end
    if miss then
      raise_floor(prefix, permanent, need)
    else
      touch(id, prefix, permanent, need)
    end
    prefix = parent_of(prefix)
  end
end

-- The threads and overrides hashes carry a native expiry no earlier than their latest
-- deadline, so a namespace left idle is given back by Redis itself. The overrides hash
-- never expires before the threads hash (end_write sets it to the same instant
-- whenever it writes either), so an override cannot vanish under a live mapping. Both
-- are raised to ttl/8 beyond what is needed, so that happens about once per ttl/8.
local function key_expiry_target()
  return MAXDL + math.floor((NEWDL - NOW) / 8) + HEADROOM
end

-- Binds a chain that has no live id (`miss` from resolve). `forced` is an externally
-- assigned id whose slot is known to be free or stale. A mapping starts no earlier
-- than the chain's floor (permanent if the floor is), and takes the floor's place.
local function create(chain, miss, forced, permanent)
  permanent = permanent or miss.floor_perm
  local o = miss.override
  if o then
    local c, dl = find(o)
    if c == nil and dl then remove(o) end
    redis.call('HDEL', K_OVERRIDES, chain)
  end
  if miss.q then redis.call('HDEL', K_META, 'Q' .. chain) end
  if miss.floor_field then redis.call('HDEL', K_THREADS, '\0' .. chain) end
  local d = miss.derived
  local id = forced
  if not id then
    if miss.slot and #miss.slot > 6 and dec_dl(miss.slot) > NOW then
      id = CANDIDATE  -- the derived id is live for another chain
    elseif miss.slot then
      drop_expiring(d, string.sub(miss.slot, 7))
      id = d
    elseif miss.perm_slot then
      id = CANDIDATE  -- the derived id is permanent for another chain
    else
      id = d
    end
  end
  if id ~= d then
    local c, dl = find(id)
    if c then return redis.error_reply('BADID thread id ' .. id .. ' is already bound') end
    if dl then remove(id) end
  end
  local dl  -- the deadline the new mapping starts with (nil: permanent)
  if permanent then
    redis.call('HSET', K_META, 'P' .. id, chain)
    if id ~= d then redis.call('HSET', K_META, 'Q' .. chain, id) end
    PERMANENT_WRITTEN = true
  else
    dl = NEWDL
    if miss.floor_dl and miss.floor_dl > dl then dl = miss.floor_dl end
    redis.call('HSET', K_THREADS, id, enc_dl(dl) .. chain)
    note_deadline(dl)
    if id ~= d then
      redis.call('HSET', K_OVERRIDES, chain, id)
      OVERRIDDEN = true
    end
  end
  return id, permanent, dl
end

-- The id of a chain, bound now (to `forced` if given) if it had none; touches it and
-- its ancestors. `permanent` makes it (and its ancestors) never expire; so does ttl=None.
-- `parent`, when the caller already found it: {id, deadline, permanent} of chain minus
-- its last hop, which saves looking it up again.
local function get_or_create(chain, permanent, forced, parent)
  permanent = permanent or NEWDL == nil
  local id, dl, perm = resolve(chain)
  local has = NEWDL  -- the deadline the chain has after this call
  if id then
    if fresh(dl, perm, permanent) then return id end
    touch(id, chain, permanent)
  else
    id, permanent, has = create(chain, dl, forced, permanent)
    if type(id) == 'table' then return id end
  end
  if parent then
    if fresh(parent[2], parent[3], permanent, has) then return id end
    local prefix = parent_of(chain)
    local need = not permanent and pushed(has) or nil
    touch(parent[1], prefix, permanent, need)
    touch_ancestors(prefix, permanent, need)
  else
    touch_ancestors(chain, permanent, has)
  end
  return id
end

-- ---------------------------------------------------------------- write protocol

local function begin_write()
  local ttl = ARGV[1]
  if ttl ~= '' then
    local n = whole(ttl, 1, MAX_TTL_MS)
    if not n then
      return 'BADARG ttl ' .. ttl .. ' must be a whole number of milliseconds from 1 to '
        .. string.format('%d', MAX_TTL_MS)
    end
    NEWDL = NOW + n
    HEADROOM = math.min(math.floor(n / 64), 1000)
  end
  local err = check_id(ARGV[2])
  if err then return err end
  CANDIDATE = ARGV[2]
  if not whole(ARGV[3], 0, MAX_SWEEP) then
    return 'BADARG sweep count ' .. ARGV[3] .. ' must be a whole number from 0 to ' .. MAX_SWEEP
  end
  return nil
end

local function ensure_salt()
  if not SALT then
    SALT = CANDIDATE
    redis.call('HSET', K_META, 'salt', SALT)
  end
end

-- A hash tag's keys migrate one by one, and while a slot migrates Redis refuses a
-- script that declares a key absent on the node it runs on (TRYAGAIN, or ASK then
-- TRYAGAIN) until the migration ends. So the threads and overrides hashes always hold
-- a placeholder field '' (never an id, a chain or a floor): each exists whenever the
-- other does, made together and expiring together, and a namespace in use is served
-- all through a migration.
local function ensure_keys()
  redis.call('HSETNX', K_THREADS, '', '')
  redis.call('HSETNX', K_OVERRIDES, '', '')
end

local function end_write()
  if MAXDL then
    local at = redis.call('PEXPIRETIME', K_THREADS)
    if at < 0 or at < MAXDL then
      local target = key_expiry_target()
      ensure_keys()
      redis.call('PEXPIREAT', K_THREADS, target)
      redis.call('PEXPIREAT', K_OVERRIDES, target)
    elseif OVERRIDDEN then
      redis.call('PEXPIREAT', K_OVERRIDES, at)
    end
  elseif PERMANENT_WRITTEN then
    ensure_keys()  -- a namespace of permanent mappings only: kept without an expiry
  end
  local n = tonumber(ARGV[3])
  if n > 0 then sweep_on_the_way(n) end
end
