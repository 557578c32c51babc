--[[
  F.get_or_create: the id of a chain, bound now if it has none.
  Also serves start_chain. Touches the chain and its live ancestors.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID (used only if the derived id is taken)
  ARGV[3] entries to F.sweep for expiry on the way, '0' for none
  ARGV[4] the chain: hops joined by \31

  Reply: the thread id
  Errors: BADARG, BADID, BADHOP, BADCHAIN (all before any write), '2'
]]
-- @include _core
-- @include _write

local err = F.begin_write()
if err then return redis.error_reply(err) end
local ends
err, ends = F.check_chain(ARGV[4], true)
if err then return redis.error_reply(err) end
F.ensure_salt()
local ds = {}
F.fill_ds(ARGV[4], ends, ds, #ends, #ends)
local id = F.get_or_create(ARGV[4], ends, ds, false)
F.end_write()
return id
