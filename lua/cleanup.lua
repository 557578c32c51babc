--[[
  cleanup: F.remove one mapping, both directions (and the root or table-root pointer
  that names it). Descendants keep their own mappings.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] thread id

  Reply: 1 if a mapping was removed, 0 otherwise
  Errors: '2'
]]
-- @include _core
-- @include _remove

local m = redis.call('HMGET', KEYS[1], 'salt', 'v')
if m[1] and m[2] ~= '2' then return redis.error_reply(F.layout_error(m[1], m[2])) end
if F.remove(ARGV[1]) then return 1 end
return 0
