--[[
  get_table_for_thread: the table a thread belongs to, that is the first hop of its
  chain when that hop names a registered table root. Never writes.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] thread id

  Reply: the table name, or false
]]
-- @include _core

local chain = F.find(ARGV[1])
if not chain then return false end
local first = string.sub(chain, 1, (string.find(chain, '\31', 1, true) or (#chain + 1)) - 1)
if redis.call('HEXISTS', KEYS[1], 'T' .. first) == 1 then return first end
return false
