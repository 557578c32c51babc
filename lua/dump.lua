--[[
  dump: one bounded page of live mappings, for debug_dump and operators. Never writes.
  The client walks the threads hash, then the permanent threads in meta, each by
  cursor until it returns '0'.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] 't' for expiring threads, 'p' for permanent ones
  ARGV[2] cursor ('0' to start)
  ARGV[3] page size (HSCAN COUNT, 1 to 500: a page's work is bounded, docs/design.md)

  Reply: {next cursor, id, chain, deadline ms or '', id, chain, deadline, ...}
  Errors: BADARG, '2'
]]
-- @include _core
-- @include _scan

local m = redis.call('HMGET', KEYS[1], 'salt', 'v')
if m[1] and m[2] ~= '2' then return redis.error_reply(F.layout_error(m[1], m[2])) end
local count = F.whole(ARGV[3], 1, 500)
if not count then
  return redis.error_reply('BADARG page size ' .. ARGV[3] .. ' must be a whole number from 1 to 500')
end
local out = {}
if ARGV[1] == 't' then
  local kv, cursor = F.scan_page(KEYS[2], ARGV[2], count)
  if not kv then return redis.error_reply(cursor) end
  out[1] = cursor
  for i = 1, #kv, 2 do
    local v = kv[i + 1]
    if #v > 6 then  -- floors (bare deadlines) are not mappings
      local dl = F.dec_dl(v)
      if dl > W.NOW then
        out[#out + 1] = kv[i]
        out[#out + 1] = F.chain_of(string.sub(v, 7))
        out[#out + 1] = string.format('%d', dl)
      end
    end
  end
else
  local kv, cursor = F.scan_page(KEYS[1], ARGV[2], count, 'P*')
  if not kv then return redis.error_reply(cursor) end
  out[1] = cursor
  for i = 1, #kv, 2 do
    out[#out + 1] = string.sub(kv[i], 2)
    out[#out + 1] = F.chain_of(kv[i + 1])
    out[#out + 1] = ''
  end
end
return out
