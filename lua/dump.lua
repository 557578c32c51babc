--[[
  dump: one bounded page of live mappings, for debug_dump and operators. Never writes.
  The client walks the threads hash, then the permanent threads in meta, each by
  cursor until it returns '0'.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] 't' for expiring threads, 'p' for permanent ones
  ARGV[2] cursor ('0' to start)
  ARGV[3] page size hint (HSCAN COUNT)

  Reply: {next cursor, id, chain, deadline ms or '', id, chain, deadline, ...}
]]
-- @include _core

local out = {}
if ARGV[1] == 't' then
  local r = redis.call('HSCAN', K_THREADS, ARGV[2], 'COUNT', ARGV[3])
  out[1] = r[1]
  local kv = r[2]
  for i = 1, #kv, 2 do
    local dl = dec_dl(kv[i + 1])
    if dl > NOW then
      out[#out + 1] = kv[i]
      out[#out + 1] = string.sub(kv[i + 1], 7)
      out[#out + 1] = tostring(dl)
    end
  end
else
  local r = redis.call('HSCAN', K_META, ARGV[2], 'MATCH', 'P*', 'COUNT', ARGV[3])
  out[1] = r[1]
  local kv = r[2]
  for i = 1, #kv, 2 do
    out[#out + 1] = string.sub(kv[i], 2)
    out[#out + 1] = kv[i + 1]
    out[#out + 1] = ''
  end
end
return out
