--[[
  initialize_root: get or create the namespace's root, chain [system, organism].
  The root never expires. A namespace has one root: asking for another organism
  while it lives is a ROOTCONFLICT.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire (applies to live ancestors only)
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way, '0' for none
  ARGV[4] organism name (one hop)

  Reply: the root's thread id
  Errors: BADARG, BADID, BADHOP, ROOTCONFLICT (all before any write), LAYOUT
]]
-- @include _core
-- @include _write

local err, root = begin_write('root')
err = err or check_hop(ARGV[4], 'organism name')
if err then return redis.error_reply(err) end
local chain = 'system' .. SEP .. ARGV[4]
if root then
  -- The root pointer holds the root's id and body (removed with the root).
  local existing = chain_of(sub(root, 37))
  if existing == chain then return sub(root, 1, 36) end
  return redis.error_reply('ROOTCONFLICT the namespace root is ' .. render(existing)
    .. '; it cannot also be ' .. render(chain))
end
ensure_salt()
local ends = split(chain)
local ds = {}
fill_ds(chain, ends, ds, 2)
local id = get_or_create(chain, ends, ds, true)
redis.call('HSET', K_META, 'root', id .. body_for(id, ds[2], chain))
end_write()
return id
