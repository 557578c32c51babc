--[[
  initialize_root: get or F.create the namespace's root, chain [system, organism].
  The root never expires. A namespace has one root: asking for another organism
  while it lives is a ROOTCONFLICT.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire (applies to live ancestors only)
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] organism name (one hop)

  Reply: the root's thread id
  Errors: BADARG, BADID, BADHOP, ROOTCONFLICT (all before any write), '2'
]]
-- @include _core
-- @include _write

local err, root = F.begin_write('root')
err = err or F.check_hop(ARGV[4], 'organism name')
if err then return redis.error_reply(err) end
local chain = 'system' .. '\31' .. ARGV[4]
if root then
  -- The root pointer holds the root's id and body (removed with the root).
  local existing = F.chain_of(string.sub(root, 37))
  if existing == chain then return string.sub(root, 1, 36) end
  return redis.error_reply('ROOTCONFLICT the namespace root is ' .. F.render(existing)
    .. '; it cannot also be ' .. F.render(chain))
end
F.ensure_salt()
local ends = F.split(chain)
local ds = {}
F.fill_ds(chain, ends, ds, 1, 2)
local id = F.get_or_create(chain, ends, ds, true)
redis.call('HSET', KEYS[1], 'root', id .. F.body_for(id, ds[2], chain))
F.end_write()
return id
