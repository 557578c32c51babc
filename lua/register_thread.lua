--[[
  register_thread: bind an externally assigned id to root + [initiator, target]
  ([initiator, target] when the namespace has no root).
  An id already bound to that chain is returned (and touched); an id bound to another
  chain is an IDCONFLICT; a chain that already has another id returns that id and
  binds nothing.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way, '0' for none
  ARGV[4] the external thread id (lowercase UUID)
  ARGV[5] initiator hop
  ARGV[6] target hop

  Reply: the thread id now bound to the chain
  Errors: BADARG, BADID, BADHOP, BADCHAIN, IDCONFLICT (all before any write), LAYOUT
]]
-- @include _core
-- @include _write

local tid = ARGV[4]
local err, root, tid_permanent = begin_write('root', 'P' .. tid)
err = err or check_id(tid) or check_hop(ARGV[5], 'initiator') or check_hop(ARGV[6], 'target')
if err then return redis.error_reply(err) end
local chain = ARGV[5] .. SEP .. ARGV[6]
local root_id, root_d
if root then
  -- The root pointer holds the root's id and its body: no lookup of the root.
  root_id = sub(root, 1, 36)
  local body = sub(root, 37)
  root_d = derived_of(root_id, body)
  chain = chain_of(body) .. SEP .. chain
  if deeper_than(chain, MAX_HOPS) then
    return redis.error_reply('BADCHAIN root plus two hops would exceed 256 hops')
  end
end
local bound, stale
local v = redis.call('HGET', K_THREADS, tid)
if v and #v > 6 then
  if dec_dl(v) > NOW then bound = chain_of(sub(v, 7)) else stale = true end
elseif tid_permanent then
  bound = chain_of(tid_permanent)
end
-- Returning an id bound to another chain would route this chain's traffic there.
if bound and bound ~= chain then
  return redis.error_reply('IDCONFLICT thread id ' .. tid .. ' is bound to ' .. render(bound)
    .. ', not ' .. render(chain))
end
ensure_salt()
local ends = split(chain)
local n = #ends
local ds = {}
if root then
  ds[n - 2] = root_d
  ds[n - 1] = derive(root_d, ARGV[5])
  ds[n] = derive(ds[n - 1], ARGV[6])
else
  fill_ds(chain, ends, ds, n)
end
-- The chain's id if it has one (tid itself when bound to it), else tid, bound now.
local id = get_or_create(chain, ends, ds, false, tid, nil, stale)
if type(id) == 'table' then return id end
end_write()
return id
