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
  Errors: BADARG, BADID, BADHOP, BADCHAIN, IDCONFLICT (all before any write)
]]
-- @include _core
-- @include _remove
-- @include _write

local err = begin_write() or check_id(ARGV[4]) or check_hop(ARGV[5], 'initiator')
  or check_hop(ARGV[6], 'target')
if err then return redis.error_reply(err) end
local tid = ARGV[4]
local chain = ARGV[5] .. SEP .. ARGV[6]
local root = redis.call('HGET', K_META, 'root')
local root_chain = root and find(root)
if root_chain then
  chain = root_chain .. SEP .. chain
  if deeper_than(chain, MAX_HOPS) then
    return redis.error_reply('BADCHAIN root plus two hops would exceed 256 hops')
  end
end
local bound, dl, perm = find(tid)
if bound then
  -- Returning an id bound to another chain would route this chain's traffic there.
  if bound ~= chain then
    return redis.error_reply('IDCONFLICT thread id ' .. tid .. ' is bound to ' .. render(bound)
      .. ', not ' .. render(chain))
  end
  local permanent = NEWDL == nil
  if not fresh(dl, perm, permanent) then
    touch(tid, bound, permanent)
    touch_ancestors(bound, permanent)
  end
  end_write()
  return tid
end
ensure_salt()
local id = get_or_create(chain, false, tid)
if type(id) == 'table' then return id end
end_write()
return id
