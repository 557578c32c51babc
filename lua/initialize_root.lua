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
  Errors: BADARG, BADID, BADHOP, ROOTCONFLICT (all before any write)
]]
-- @include _core
-- @include _remove
-- @include _write

local err = begin_write() or check_hop(ARGV[4], 'organism name')
if err then return redis.error_reply(err) end
local chain = 'system' .. SEP .. ARGV[4]
local root = redis.call('HGET', K_META, 'root')
if root then
  local existing = find(root)
  if existing == chain then return root end
  if existing then
    return redis.error_reply('ROOTCONFLICT the namespace root is ' .. render(existing)
      .. '; it cannot also be ' .. render(chain))
  end
end
ensure_salt()
local id = get_or_create(chain, true)
redis.call('HSET', K_META, 'root', id)
end_write()
return id
