--[[
  lookup: the chain of a thread id. Never writes.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] thread id

  Reply: the chain (hops joined by \31), or false for an unknown or expired id
]]
-- @include _core

return find(ARGV[1]) or false
