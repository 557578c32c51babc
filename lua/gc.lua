--[[
  gc: one bounded F.sweep step: examine about ARGV[1] thread entries from the cursor
  ARGV[2], and F.remove those whose deadline has passed (both directions). The client
  walks its own cursor, so one gc() call covers exactly one pass whatever the sweeps
  that writes do on the way.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] entries to examine (1 to 128: a step's work is bounded, docs/design.md)
  ARGV[2] cursor ('0' to start a pass)
  ARGV[3] most mappings to reclaim (1 to 128); the step stops there

  Reply: {mappings reclaimed, next cursor}; next cursor '0' means the pass ended
  Errors: BADARG (before any write), '2'
]]
-- @include _core
-- @include _remove

local m = redis.call('HMGET', KEYS[1], 'salt', 'v')
if m[1] and m[2] ~= '2' then return redis.error_reply(F.layout_error(m[1], m[2])) end
local count = F.whole(ARGV[1], 1, MAX_STEP)
if not count then
  return redis.error_reply('BADARG gc count ' .. ARGV[1] .. ' must be a whole number from 1 to ' .. MAX_STEP)
end
local most = F.whole(ARGV[3], 1, MAX_STEP)
if not most then
  return redis.error_reply('BADARG gc most ' .. ARGV[3] .. ' must be a whole number from 1 to ' .. MAX_STEP)
end
local reclaimed, cursor = F.sweep(ARGV[2], count, most)
if not reclaimed then return redis.error_reply(cursor) end
return {reclaimed, cursor}
