--[[
  get_table_root: the id of a table's root. Never writes.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] table name

  Reply: the thread id, or false when the table has no root
]]
-- @include _core

local id = redis.call('HGET', KEYS[1], 'T' .. ARGV[1])
if id and F.find(id) then return id end
return false
