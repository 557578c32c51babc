--[[
  initialize_table_root: get or F.create the root of a table, chain [table, organism],
  shared by every process. Table roots never expire. One organism per table: another
  while it lives is a TABLECONFLICT.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire (applies to live ancestors only)
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] table name (one hop)
  ARGV[5] organism name (one hop)

  Reply: the table root's thread id
  Errors: BADARG, BADID, BADHOP, TABLECONFLICT (all before any write), '2'
]]
-- @include _core
-- @include _write

local pointer = 'T' .. ARGV[4]
local err, existing_id = F.begin_write(pointer)
err = err or F.check_hop(ARGV[4], 'table name') or F.check_hop(ARGV[5], 'organism name')
if err then return redis.error_reply(err) end
local chain = ARGV[4] .. '\31' .. ARGV[5]
if existing_id then
  local existing = F.find(existing_id)
  if existing == chain then return existing_id end
  if existing then
    return redis.error_reply('TABLECONFLICT table ' .. ARGV[4] .. ' has root ' .. F.render(existing)
      .. '; it cannot also be ' .. F.render(chain))
  end
end
F.ensure_salt()
local ends = F.split(chain)
local ds = {}
F.fill_ds(chain, ends, ds, 1, 2)
local id = F.get_or_create(chain, ends, ds, true)
redis.call('HSET', KEYS[1], pointer, id)
F.end_write()
return id
