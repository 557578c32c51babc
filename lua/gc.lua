--[[
  gc: one bounded sweep step: examine about ARGV[1] thread entries from the cursor
  kept in meta, and remove those whose deadline has passed (both directions).

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] entries to examine (HSCAN COUNT)

  Reply: {reclaimed, next cursor, cursor it started from}; next cursor '0' means a pass
  just ended
]]
-- @include _core
-- @include _remove

local reclaimed, cursor, began = sweep(tonumber(ARGV[1]))
return {reclaimed, cursor, began}
