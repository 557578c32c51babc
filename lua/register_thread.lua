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
  Errors: BADARG, BADID, BADHOP, BADCHAIN, IDCONFLICT (all before any write), '2'
]]
-- @include _core
-- @include _write

local tid = ARGV[4]
local err, root, tid_permanent = F.begin_write('root', 'P' .. tid)
-- (The quick tests of _hot.lua first: the full checks only for what they do not accept.)
err = err or (not valid_id(tid) and F.check_id(tid))
  or (not plain_hop(ARGV[5]) and F.check_hop(ARGV[5], 'initiator'))
  or (not plain_hop(ARGV[6]) and F.check_hop(ARGV[6], 'target')) or nil
if err then return redis.error_reply(err) end
local chain = ARGV[5] .. '\31' .. ARGV[6]
if root then
  -- The root pointer holds the root's id and its body: no lookup of the root.
  chain = F.chain_of(string.sub(root, 37)) .. '\31' .. chain
  if #chain > 64 then  -- (64 bytes cannot hold more than 32 hops nor 2,048 bytes)
    err = F.over_limits(chain, 'the root plus two hops')
    if err then return redis.error_reply(err) end
  end
end
local bound, stale
local v = redis.call('HGET', KEYS[2], tid)
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
