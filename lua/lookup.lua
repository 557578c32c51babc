--[[
  lookup: the chain of a thread id. Never writes.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] thread id

  Reply: the chain (hops joined by \31), or false for an unknown or expired id
  Errors: LAYOUT (only when the id is not found in the threads hash)
]]
-- Kept to one TIME and one HGET for a live expiring thread: not even _core's helpers.
local t = redis.call('TIME')
local v = redis.call('HGET', KEYS[2], ARGV[1])
if v and #v > 6 then
  local a, b, c, d, e, f = string.byte(v, 1, 6)
  if ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f > t[1] * 1000 + math.floor(t[2] / 1000) then
    if string.byte(v, 7) == 0 then return string.sub(v, 44) end
    return string.sub(v, 7)
  end
  return false
end
-- Not there: a permanent thread, or a namespace of another layout (which is refused).
local m = redis.call('HMGET', KEYS[1], 'P' .. ARGV[1], 'salt', 'v')
if m[2] and m[3] ~= '2' then
  return redis.error_reply('LAYOUT namespace ' .. KEYS[1] .. ' was written by layout ' .. (m[3] or '1')
    .. ' of redis-thread-registry; this version reads layout 2 only: use the version that wrote it,'
    .. ' or clear() the namespace (its threads are lost)')
end
if not m[1] then return false end
if string.byte(m[1], 1) == 0 then return string.sub(m[1], 38) end
return m[1]
