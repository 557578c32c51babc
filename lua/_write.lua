-- _write.lua: helpers of the scripts that bind and touch threads.
-- @include _core
-- @include _hot
-- @include _remove
--
-- Every write script passes ARGV[1] ttl in ms ('' = never expire), ARGV[2] a fresh
-- random UUID, ARGV[3] how many thread entries to sweep for expiry on the way ('0' = none;
-- at most 128).
--
-- Deadlines: a touched thread gets NOW + ttl, unless its deadline is already within
-- HEADROOM (ttl/64, at most 1 s) of that (then nothing is written: F.get_or_create, and
-- the scripts' hot paths); a new one too, unless its parent's deadline is within
-- HEADROOM of that (then it gets the parent's: F.give); every ancestor whose deadline is
-- earlier than its child's gets NOW + ttl + HEADROOM.
--
-- Invariant: every proper prefix of a live entry has a live entry of its own that is
-- permanent or expires no earlier. An entry is a mapping, or a FLOOR where the prefix
-- has no mapping: a floor holds only the deadline (or permanence) that a mapping of
-- that chain must start with, should one be created later. So an ancestor created
-- after its descendants (by another client with a shorter ttl, by prune_for_response,
-- above a permanent root) starts no earlier than they end. Expiring floors live in the
-- threads hash under \0<d>, permanent ones in meta as Q<d> = '' (d: the chain's derived
-- id); both are found by the same reads that look for a chain's mapping, and expired
-- floors are swept like mappings. Because of the invariant the walk up the chain stops
-- at the first prefix that is already late enough, and thanks to HEADROOM a busy
-- subtree rewrites its ancestors once per HEADROOM, not on every write.
--
-- A chain's state and its ancestors' are read with one HMGET per key whatever the
-- depth, and the walk writes in one HSET.
--
-- All of them are made on first use (two lazy groups, see _core.lua): a call that ends
-- on its hot path (_hot.lua) makes none.

-- The call's state in W, set by F.begin_write (none is set here: this group may be made
-- after a script has set some of them):
--   W.SALT       the namespace's secret salt (nil until the first write)
--   W.X_AT       the expiry the threads and overrides keys were last given
--   W.NEWDL      deadline a write gives what it touches; nil = never expire
--   W.HEADROOM   what a pushed ancestor gets beyond NEWDL (ttl/64, at most 1 s)
--   W.CANDIDATE  fresh random id from the client, used when the derived id is taken
--   W.MAXDL      latest deadline this call wrote, for the keys' native expiry
--   W.PERMANENT_WRITTEN  whether this call made a permanent mapping

-- Touching and binding: made when a write goes past its hot path.
lazy(function()

F.enc_dl = enc_dl  -- (_hot.lua)

-- Where each prefix of a chain ends: ends[k] is the byte index of the last byte of
-- its first k hops (so #ends is the number of hops).
function F.split(chain)
  local ends, from = {}, 1
  while true do
    local i = string.find(chain, '\31', from, true)
    if not i then
      ends[#ends + 1] = #chain
      return ends
    end
    ends[#ends + 1] = i - 1
    from = i + 1
  end
end

-- ---------------------------------------------------------------- ids

-- The id a chain gets unless it is taken: the digest of the namespace's salt and the
-- chain, as a UUID (_hot.lua), so the chain -> id direction needs no storage of its own.
F.digest, F.as_uuid = digest, as_uuid

-- The number of hops of a chain whose ends may be partial (ends.n: only the last two
-- are known, see extend_chain), and the full ends when a walk needs them.
function F.nhops(ends)
  return ends.n or #ends
end

-- The chain's prefix of k hops (ends[k] known), made once per call: a walk over a deep
-- chain would otherwise copy every prefix several times (hashing, comparing, writing),
-- and making strings is most of what such a walk costs.
function F.prefix(chain, ends, k)
  local pre = ends.pre
  if not pre then
    pre = {}
    ends.pre = pre
  end
  local p = pre[k]
  if not p then
    p = ends[k] == #chain and chain or string.sub(chain, 1, ends[k])
    pre[k] = p
  end
  return p
end

F.holds = holds  -- (_hot.lua)

-- Fills ds[lo..hi] (the derived ids of the chain's prefixes of lo..hi hops) where missing.
-- What is hashed is cut from the salted chain, made once: one string per prefix, not two.
function F.fill_ds(chain, ends, ds, lo, hi)
  local salted = ends.salted
  if not salted then
    salted = W.SALT .. '\0' .. chain
    ends.salted = salted
  end
  local extra = #salted - #chain
  for k = lo, hi do
    if not ds[k] then
      if not ends[k] then F.complete(chain, ends) end
      local e = ends[k]
      ds[k] = F.as_uuid(F.digest(e == #chain and salted or string.sub(salted, 1, extra + e)))
    end
  end
end

-- What a thread of a chain deriving d is stored as (after its deadline).
function F.body_for(id, d, chain)
  if id == d then return chain end
  return '\0' .. d .. chain
end

-- ---------------------------------------------------------------- reading state

-- The state of prefix k from its threads fields (v at d, floor f at \0d):
-- {id, dl, perm} when it has a live mapping there, else what creating it needs.
function F.threads_state(chain, ends, ds, k, v, f)
  local s = {d = ds[k], slot = v}
  if v and #v == ends[k] + 6 and F.holds(v, F.prefix(chain, ends, k)) then
    local dl = F.dec_dl(v)
    if dl > W.NOW then
      s.id, s.dl = ds[k], dl
      return s, true
    end
  end
  if f then
    s.floor_field = true
    local fdl = F.dec_dl(f)
    if fdl > W.NOW then s.floor_dl = fdl end
  end
  return s, false
end

-- Completes the states of prefixes `ks` that have no mapping at their derived id:
-- permanent mappings and floors (meta), overrides. One HMGET per key for all of them.
function F.resolve_misses(chain, ends, states, ks)
  local mf, of = {}, {}
  for j, k in ipairs(ks) do
    local d = states[k].d
    mf[2 * j - 1], mf[2 * j] = 'P' .. d, 'Q' .. d
    of[j] = d
  end
  local m = redis.call('HMGET', KEYS[1], unpack(mf))
  local o = redis.call('HMGET', KEYS[3], unpack(of))
  for j, k in ipairs(ks) do
    local s, p, q = states[k], m[2 * j - 1], m[2 * j]
    s.perm_slot, s.q, s.over_field = p, q, o[j]
    -- The prefix itself is only copied out of the chain where something may hold it.
    if p and #p == ends[k] and p == F.prefix(chain, ends, k) then
      s.id, s.perm = s.d, true
    else
      local oid = o[j]  -- HMGET gives false, not nil, for a missing field
      if q and q ~= '' then oid = q end
      s.floor_perm = q == ''
      if oid then
        s.override = oid
        local c, dl, perm = F.find(oid)
        if c and #c == ends[k] and c == F.prefix(chain, ends, k) then s.id, s.dl, s.perm = oid, dl, perm end
      end
    end
  end
end

-- The state of prefix k (its derived id d and its threads fields as a script's hot path
-- read them: d nil when it did not get that far, and then ds[k] is derived now and the
-- state read later).
function F.take_hot(chain, ends, ds, states, k, d, fields)
  if not d then return F.fill_ds(chain, ends, ds, k, k) end
  ds[k] = d
  local s, found = F.threads_state(chain, ends, ds, k, fields[1], fields[2])
  states[k] = s
  if not found then F.resolve_misses(chain, ends, states, {k}) end
end

-- The states of prefixes lo..hi (ds filled there): one HMGET of the threads hash, and
-- for those not found there one HMGET of meta and one of overrides.
function F.read_states(chain, ends, ds, lo, hi, states)
  states = states or {}
  local fields, misses
  for k = hi, lo, -1 do
    if not states[k] then
      fields = fields or {}
      fields[#fields + 1] = ds[k]
      fields[#fields + 1] = '\0' .. ds[k]
    end
  end
  if not fields then return states end
  local t = redis.call('HMGET', KEYS[2], unpack(fields))
  local j = 1
  for k = hi, lo, -1 do
    if not states[k] then
      local s, found = F.threads_state(chain, ends, ds, k, t[j], t[j + 1])
      j = j + 2
      states[k] = s
      if not found then
        misses = misses or {}
        misses[#misses + 1] = k
      end
    end
  end
  if misses then F.resolve_misses(chain, ends, states, misses) end
  return states
end

-- ---------------------------------------------------------------- touching

function F.note_deadline(dl)
  if W.MAXDL == nil or dl > W.MAXDL then W.MAXDL = dl end
end

-- Whether a live entry already satisfies this write: permanent, or (for an expiring
-- write) due no earlier than `need`. Its ancestors then do too (the invariant).
function F.fresh(dl, perm, permanent, need)
  if perm then return true end
  if permanent or not dl then return false end
  return dl >= (need or W.NEWDL)
end

-- Keeps every prefix of the chain from k hops up (its mapping, or its floor) due no
-- earlier than `need`, the deadline its child has now, nearest first. Each prefix
-- pushed raises what its own parent needs, so the walk compares against that; it
-- stops at the first prefix already late enough (the invariant holds above). What it
-- has not read yet it reads in one go (read_states), and it writes in one HSET.
function F.walk(chain, ends, ds, k, permanent, need, states)
  local writes
  while k >= 1 do
    local s = states[k]
    if not s then
      F.complete(chain, ends)
      F.fill_ds(chain, ends, ds, 1, k)
      F.read_states(chain, ends, ds, 1, k, states)
      s = states[k]
    end
    local dl, perm = s.dl, s.perm
    if not s.id then dl, perm = s.floor_dl, s.floor_perm end
    if F.fresh(dl, perm, permanent, need) then break end
    if permanent then
      if s.id then
        if not s.perm then F.promote(s.id, s.d, F.prefix(chain, ends, k)) end
      else
        if s.floor_field then redis.call('HDEL', KEYS[2], '\0' .. s.d) end
        redis.call('HSET', KEYS[1], 'Q' .. s.d, '')
      end
    else
      need = F.pushed(need)
      writes = writes or {}
      if s.id then
        writes[#writes + 1] = s.id
        writes[#writes + 1] = F.enc_dl(need) .. F.body_for(s.id, s.d, F.prefix(chain, ends, k))
      else
        writes[#writes + 1] = '\0' .. s.d
        writes[#writes + 1] = F.enc_dl(need)
      end
      F.note_deadline(need)
    end
    k = k - 1
  end
  if writes then redis.call('HSET', KEYS[2], unpack(writes)) end
end

-- Binds a chain (deriving d) that has no live id (its state s from read_states).
-- `forced` is an externally assigned id known to be unbound (`forced_stale`: its
-- mapping expired and is removed here). An expiring mapping starts at `give`
-- (F.give), and no earlier than the chain's floor (permanent if the floor is), and
-- takes the floor's place. Returns id, permanent, deadline (or an error reply).
function F.create(chain, s, forced, permanent, forced_stale, give)
  permanent = permanent or s.floor_perm
  local d = s.d
  local o = s.override
  if o then
    local c, dl = F.find(o)
    if c == nil and dl then F.remove(o) end
  end
  if s.over_field then redis.call('HDEL', KEYS[3], d) end
  if s.q then redis.call('HDEL', KEYS[1], 'Q' .. d) end
  if s.floor_field then redis.call('HDEL', KEYS[2], '\0' .. d) end
  local id = forced
  if not id then
    if s.slot and #s.slot > 6 and F.dec_dl(s.slot) > W.NOW then
      id = W.CANDIDATE  -- the derived id is live for another chain
    elseif s.slot then
      F.drop_expiring(d, string.sub(s.slot, 7))
      id = d
    elseif s.perm_slot then
      id = W.CANDIDATE  -- the derived id is permanent for another chain
    else
      id = d
    end
  end
  if id ~= d then
    if forced then
      if forced_stale then F.remove(id) end
    else
      local c, dl = F.find(id)
      if c then return redis.error_reply('BADID thread id ' .. id .. ' is already bound') end
      if dl then F.remove(id) end
    end
  end
  local body = F.body_for(id, d, chain)
  local dl  -- the deadline the new mapping starts with (nil: permanent)
  if permanent then
    redis.call('HSET', KEYS[1], 'P' .. id, body)
    if id ~= d then redis.call('HSET', KEYS[1], 'Q' .. d, id) end
    W.PERMANENT_WRITTEN = true
  else
    dl = give
    if s.floor_dl and s.floor_dl > dl then dl = s.floor_dl end
    redis.call('HSET', KEYS[2], id, F.enc_dl(dl) .. body)
    F.note_deadline(dl)
    if id ~= d then redis.call('HSET', KEYS[3], d, id) end
  end
  return id, permanent, dl
end

-- The deadline a write gives the new thread of a chain whose parent (prefix n - 1) has
-- state p: NOW + ttl, or the parent's deadline when that lies within HEADROOM below it.
-- Then the parent needs no push, and neither does the rest of the chain: the threads one
-- message makes as it is forwarded from hop to hop share their first one's deadline,
-- and no write walks up the chain. (The thread still lives ttl - HEADROOM at least: the
-- same bound as a touch within the headroom.) A thread rewritten past its headroom gets
-- NOW + ttl: given its parent's deadline, which may lie anywhere in the headroom, a busy
-- thread would be rewritten again soon after, instead of once per headroom.
function F.give(p)
  local pdl
  if p.id then pdl = not p.perm and p.dl or nil else pdl = not p.floor_perm and p.floor_dl or nil end
  if pdl and pdl < W.NEWDL and pdl >= W.NEWDL - W.HEADROOM then return pdl end
  return W.NEWDL
end

-- The id of a chain (with its ends and derived ids ds, ends[n - 1..n] and ds[n] known),
-- bound now (to `forced` if given) if it had none; touches it and its ancestors.
-- `permanent` makes it (and its ancestors) never expire; so does ttl=None. `states`
-- may hold what the caller already read. Returns the id (or an error reply).
function F.get_or_create(chain, ends, ds, permanent, forced, states, forced_stale)
  local n = F.nhops(ends)
  permanent = permanent or W.NEWDL == nil
  states = F.read_states(chain, ends, ds, n, n, states)
  local s = states[n]
  local id = s.id
  -- A live thread whose deadline is within HEADROOM of what this touch would give it
  -- keeps it: the call writes nothing (the usual touch of a busy thread). Its ancestors
  -- already satisfy the invariant for that deadline.
  if id and (F.fresh(s.dl, s.perm, permanent) or not permanent and s.dl >= W.NEWDL - W.HEADROOM) then
    return id
  end
  if n > 1 and not states[n - 1] then
    -- The parent is read only now (callers that expect a write read it beforehand, in
    -- the same calls as the chain), and the walk reads further up only if it must.
    F.fill_ds(chain, ends, ds, n - 1, n - 1)
    F.read_states(chain, ends, ds, n - 1, n - 1, states)
  end
  local give = W.NEWDL
  if not id and not permanent and n > 1 then give = F.give(states[n - 1]) end
  local has = give  -- the deadline the chain has after this call
  if id then
    if permanent then
      F.promote(id, s.d, chain)
    else
      redis.call('HSET', KEYS[2], id, F.enc_dl(give) .. F.body_for(id, s.d, chain))
      F.note_deadline(give)
    end
  else
    id, permanent, has = F.create(chain, s, forced, permanent, forced_stale, give)
    if type(id) == 'table' then return id end
  end
  if n > 1 then F.walk(chain, ends, ds, n - 1, permanent, has, states) end
  return id
end

-- ---------------------------------------------------------------- write protocol

function F.check_id(id)
  if not valid_id(id) then return 'BADID thread id ' .. id .. ' is not a lowercase UUID string' end
  return nil
end


-- Checks the write arguments and reads meta (salt, layout, key expiry, and `extra`
-- fields, returned in order; without extras, W.META when the hot path read
-- it). Returns an error string, or nil and extras.
-- What a script's hot path read and accepted (_hot.lua), for the full path: meta (the
-- salt, layout and key expiry), and a plain write's deadline and headroom.
function F.from_hot(meta)
  W.META = meta
  if PLAIN_DL then W.PLAIN, W.NEWDL, W.HEADROOM = true, PLAIN_DL, PLAIN_HR end
end

function F.begin_write(...)
  if not W.PLAIN then  -- (else _plain.lua accepted them and set the deadlines)
    local ttl = ARGV[1]
    if ttl ~= '' then
      local n = F.whole(ttl, 1, 315360000000)
      if not n then
        return 'BADARG ttl ' .. ttl .. ' must be a whole number of milliseconds from 1 to '
          .. string.format('%d', 315360000000)
      end
      W.NEWDL = W.NOW + n
      W.HEADROOM = math.min(math.floor(n / 64), 1000)
    end
    local err = F.check_id(ARGV[2])
    if err then return err end
    if not F.whole(ARGV[3], 0, MAX_STEP) then
      return 'BADARG sweep count ' .. ARGV[3] .. ' must be a whole number from 0 to ' .. MAX_STEP
    end
  end
  W.CANDIDATE = ARGV[2]
  local m = W.META  -- (read by the script's hot path already)
  if not m or select('#', ...) > 0 then m = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x', ...) end
  if m[1] and m[2] ~= '2' then return F.layout_error(m[1], m[2]) end
  W.SALT, W.X_AT = m[1] or nil, tonumber(m[3]) or 0
  return nil, m[4], m[5]
end

function F.ensure_salt()
  if not W.SALT then
    W.SALT = W.CANDIDATE
    redis.call('HSET', KEYS[1], 'salt', W.SALT, 'v', '2')
  end
end

function F.end_write()
  if W.MAXDL and W.MAXDL > W.X_AT then
    local target = F.key_expiry_target()
    F.ensure_keys()
    redis.call('PEXPIREAT', KEYS[2], target)
    redis.call('PEXPIREAT', KEYS[3], target)
    redis.call('HSET', KEYS[1], 'x', string.format('%d', target))
  elseif W.PERMANENT_WRITTEN then
    F.ensure_keys()  -- a namespace of permanent mappings only: kept without an expiry
  end
  local n = tonumber(ARGV[3])
  -- (The sweep cursor is read only by a call that sweeps.)
  if n > 0 then F.sweep_on_the_way(n) end
end

-- What a pushed ancestor gets: at least what its child now has, and HEADROOM beyond
-- this write's deadline, so a busy subtree does not rewrite it on every write.
function F.pushed(need)
  local dl = W.NEWDL + W.HEADROOM
  if need > dl then return need end
  return dl
end
-- Input rules and what a call seldom needs: a group of their own, made only when asked
-- for (a write whose arguments the hot path's quick tests accepted needs none of it).
lazy(function()

function F.hop_of(chain, ends, k)
  return string.sub(chain, (ends[k - 1] or -1) + 2, ends[k])
end

-- The limits of a chain (registry/validation.py has the same): at most MAX_HOPS hops and
-- MAX_CHAIN_BYTES bytes, separators included. A write touches the chain's ancestors,
-- and each costs work that grows with its length: these keep one call short while
-- every other namespace of the shard waits for it.
F.MAX_HOPS, F.MAX_CHAIN_BYTES = 32, 2048

-- Whether a chain has more than `limit` hops; counts only when it could.
function F.deeper_than(chain, limit)
  if #chain < 2 * limit + 1 then return false end
  local _, seps = string.gsub(chain, '\31', '\31')
  return seps + 1 > limit
end

-- An error when a chain that `what` would make breaks a chain limit, else nil.
function F.over_limits(chain, what)
  if #chain > F.MAX_CHAIN_BYTES then
    return 'BADCHAIN ' .. what .. ' would make a chain of ' .. #chain .. ' bytes; at most '
      .. F.MAX_CHAIN_BYTES .. ' are allowed'
  end
  if F.deeper_than(chain, F.MAX_HOPS) then
    return 'BADCHAIN ' .. what .. ' would make more than ' .. F.MAX_HOPS .. ' hops'
  end
  return nil
end

-- ---------------------------------------------------------------- input rules

function F.check_hop(hop, where)
  local n = #hop
  if n < 1 or n > 256 then
    return 'BADHOP ' .. where .. ' is ' .. n .. ' bytes; a hop is 1 to 256 bytes of UTF-8'
  end
  if not string.find(hop, '[^\32-\126]') then return nil end  -- printable ASCII: one scan
  if string.find(hop, '[\128-\255]') and not F.valid_utf8(hop) then
    return 'BADHOP ' .. where .. ' is not valid UTF-8'
  end
  if string.find(hop, '[%z\1-\31\127]') or string.find(hop, '\194[\128-\159]') then
    return 'BADHOP ' .. where .. ' contains a control character; hops may not'
  end
  return nil
end

-- Validates a whole encoded chain; returns an error string or nil, and its ends. The
-- usual (valid) chain is checked with a few scans of the whole string; only a chain
-- that fails one is checked hop by hop, for a message that names the hop. With
-- `limits`, the chain limits too (a chain stored before they were tightened is checked
-- without them: check() must not call it malformed).
function F.check_chain(chain, limits)
  if limits and #chain > F.MAX_CHAIN_BYTES then
    return 'BADCHAIN chain is ' .. #chain .. ' bytes; at most ' .. F.MAX_CHAIN_BYTES .. ' are allowed'
  end
  local ends = F.split(chain)
  local n = #ends
  if limits and n > F.MAX_HOPS then
    return 'BADCHAIN chain has ' .. n .. ' hops; at most ' .. F.MAX_HOPS .. ' are allowed'
  end
  local longest, from = 0, 0
  for k = 1, n do
    if ends[k] - from > longest then longest = ends[k] - from end
    from = ends[k] + 1
  end
  -- (Printable ASCII and separators, the usual chain, is known after one scan.)
  local ok = #chain > 0 and longest <= 256 and not string.find(chain, '\31\31', 1, true)
    and string.byte(chain, 1) ~= 31 and string.byte(chain, -1) ~= 31
    and (not string.find(chain, '[^\31-\126]') or not string.find(chain, '[%z\1-\30\127]')
      and not string.find(chain, '\194[\128-\159]') and F.valid_utf8(chain))
  if ok then return nil, ends end
  for k = 1, n do
    local err = F.check_hop(F.hop_of(chain, ends, k), 'hop ' .. k)
    if err then return err end
  end
  return nil, ends
end


-- The derived id of a chain, as a UUIDv8: one digest of salt and chain (one C call,
-- however long the chain; prefix ids are computed only for the prefixes a walk reads).
function F.derive(chain)
  return F.as_uuid(F.digest(W.SALT .. '\0' .. chain))
end

function F.complete(chain, ends)
  if ends.n then
    local full = F.split(chain)
    for k = 1, #full do ends[k] = full[k] end
    ends.n = nil
  end
end


function F.is_cont(b)
  return b ~= nil and b >= 128 and b <= 191
end

-- Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
function F.valid_utf8(s)
  if not string.find(s, '[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c, c2, c3, c4 = string.byte(s, i, i + 3)
    if c < 128 then
      i = i + 1
    elseif c >= 194 and c <= 223 and F.is_cont(c2) then
      i = i + 2
    elseif c >= 224 and c <= 239 and F.is_cont(c2) and F.is_cont(c3)
        and not (c == 224 and c2 < 160) and not (c == 237 and c2 > 159) then
      i = i + 3
    elseif c >= 240 and c <= 244 and F.is_cont(c2) and F.is_cont(c3) and F.is_cont(c4)
        and not (c == 240 and c2 < 144) and not (c == 244 and c2 > 143) then
      i = i + 4
    else
      return false
    end
  end
  return true
end

-- Moves a mapping to the permanent store (roots, table roots, ttl=None writes).
function F.promote(id, d, chain)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HSET', KEYS[1], 'P' .. id, F.body_for(id, d, chain))
  if id ~= d and redis.call('HGET', KEYS[3], d) == id then
    redis.call('HDEL', KEYS[3], d)
    redis.call('HSET', KEYS[1], 'Q' .. d, id)
  end
end

-- The threads and overrides hashes carry a native expiry no earlier than their latest
-- deadline, so a namespace left idle is given back by Redis itself. Both always get
-- the same instant (meta's x records it), so an override cannot vanish under a live
-- mapping. Both are raised to ttl/8 beyond what is needed, about once per ttl/8.
function F.key_expiry_target()
  return W.MAXDL + math.floor((W.NEWDL - W.NOW) / 8) + W.HEADROOM
end

-- A hash tag's keys migrate one by one, and while a slot migrates Redis refuses a
-- script that declares a key absent on the node it runs on (TRYAGAIN, or ASK then
-- TRYAGAIN) until the migration ends. So the threads and overrides hashes always hold
-- a placeholder field '' (never an id, a chain or a floor): each exists whenever the
-- other does, made together and expiring together, and a namespace in use is served
-- all through a migration.
--
-- Both are also kept in Redis's hashtable encoding. Below hash-max-listpack-entries
-- (512 by default) a hash is a listpack, where finding a field reads the entries before
-- it and a field that is not there reads them all: in a namespace of 500 threads a new
-- chain's three misses cost about 100,000 instructions more than in one of 5,000. A
-- field longer than hash-max-listpack-value (64 by default) converts a hash for good, so
-- one is written and deleted at once (each time the keys' expiry is raised, so a hash
-- loaded back as a listpack, after a restart or a migration, is converted again).
local WIDE = string.rep('w', 256)
function F.ensure_keys()
  redis.call('HSET', KEYS[2], '', '', WIDE, '')
  redis.call('HSET', KEYS[3], '', '', WIDE, '')
  redis.call('HDEL', KEYS[2], WIDE)
  redis.call('HDEL', KEYS[3], WIDE)
end
end)
end)
