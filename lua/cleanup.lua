--[[
  cleanup: remove one mapping, both directions (and the root or table-root pointer
  that names it). Descendants keep their own mappings.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] thread id

  Reply: 1 if a mapping was removed, 0 otherwise
]]
-- @include _core
-- @include _remove

if remove(ARGV[1]) then return 1 end
return 0
