--[[
  register_thread: bind an externally assigned id to root + [initiator, target]
  ([initiator, target] when the namespace has no root).
  An id already bound to that chain is returned (and touched); an id bound to another
  chain is an IDCONFLICT; a chain that already has another id returns that id and
  binds nothing.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] the external thread id (lowercase UUID)
  ARGV[5] initiator hop
  ARGV[6] target hop

  Reply: the thread id now bound to the chain
  Errors: BADARG, BADID, BADHOP, BADCHAIN, IDCONFLICT (all before any write), '2'
]]
-- @include _hot

local tid = ARGV[4]
-- The reads every call makes, before any helper: meta (with the root pointer, which
-- holds the root's id and its body, and tid's permanent mapping), and tid's mapping.
local meta = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x', 'root', 'P' .. tid)
local v = redis.call('HGET', KEYS[2], tid)

-- Hot path (_plain.lua, _hot.lua): a plain write binding an unbound id to a new chain under the
-- root, whose parent is live and needs no push, and that nothing else claims: the
-- override (HSETNX) and the mapping (HSET).
if PLAIN_DL and not v and not meta[5] and meta[4] and meta[1] and meta[2] == '2'
    and valid_id(tid) and plain_hop(ARGV[5]) and plain_hop(ARGV[6]) then
  local parent = chain_of(string.sub(meta[4], 37)) .. '\31' .. ARGV[5]
  local chain = parent .. '\31' .. ARGV[6]
  if #chain <= 64 then  -- (64 bytes cannot hold more than 32 hops nor 2,048 bytes)
    local d = as_uuid(digest(meta[1] .. '\0' .. chain))
    local pd = as_uuid(digest(meta[1] .. '\0' .. parent))
    local f = redis.call('HMGET', KEYS[2], d, '\0' .. d, pd)
    local pv = f[3]
    if d ~= tid and not f[1] and not f[2] and pv and holds(pv, parent) and dec_dl(pv) > NOW then
      local dl = plain_deadline(dec_dl(pv), tonumber(meta[3]) or 0)
      -- (Unclaimed, as in _hot.lua, but the override is the call's own: HSETNX writes
      -- it only where none is, which is the overrides' check, in one call less.)
      local m = dl and redis.call('HMGET', KEYS[1], 'P' .. d, 'Q' .. d)
      if m and not m[1] and not m[2] and redis.call('HSETNX', KEYS[3], d, tid) == 1 then
        redis.call('HSET', KEYS[2], tid, enc_dl(dl) .. '\0' .. d .. chain)
        if SWEEP == 0 then return tid end
        DONE = tid
      end
    end
  end
end

-- The full way: _core's and _write's helpers, made only now (after a hot answer, only
-- the sweep the call asked for: sweep_after, _remove.lua).
-- @include _core
-- @include _write
if DONE then return sweep_after(DONE, SWEEP) end
F.from_hot(meta)
local err = F.begin_write()
local root, tid_permanent = meta[4] or nil, meta[5] or nil
-- (The quick tests of _hot.lua first: the full checks only for what they do not accept.)
err = err or (not valid_id(tid) and F.check_id(tid))
  or (not plain_hop(ARGV[5]) and F.check_hop(ARGV[5], 'initiator'))
  or (not plain_hop(ARGV[6]) and F.check_hop(ARGV[6], 'target')) or nil
if err then return redis.error_reply(err) end
local chain = ARGV[5] .. '\31' .. ARGV[6]
if root then
  chain = F.chain_of(string.sub(root, 37)) .. '\31' .. chain
  if #chain > 64 then
    err = F.over_limits(chain, 'the root plus two hops')
    if err then return redis.error_reply(err) end
  end
end
local bound, stale
if v and #v > 6 then
  if F.dec_dl(v) > W.NOW then bound = F.chain_of(string.sub(v, 7)) else stale = true end
elseif tid_permanent then
  bound = F.chain_of(tid_permanent)
end
-- Returning an id bound to another chain would route this chain's traffic there.
if bound and bound ~= chain then
  return redis.error_reply('IDCONFLICT thread id ' .. tid .. ' is bound to ' .. F.render(bound)
    .. ', not ' .. F.render(chain))
end
F.ensure_salt()
-- The chain's last two prefixes are all a bind needs (a walk further up completes them).
local n = select(2, string.gsub(chain, '\31', '')) + 1
local ends = {n = n, [n] = #chain, [n - 1] = #chain - #ARGV[6] - 1}
local ds = {}
F.fill_ds(chain, ends, ds, n - 1, n)
-- The chain is usually new: its parent is read in the same calls.
local states = F.read_states(chain, ends, ds, n - 1, n)
-- The chain's id if it has one (tid itself when bound to it), else tid, bound now.
local id = F.get_or_create(chain, ends, ds, false, tid, states, stale)
if type(id) == 'table' then return id end
F.end_write()
return id
