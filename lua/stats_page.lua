--[[
  stats_page: counts over one bounded page of a namespace, for stats(). Never writes.
  The client walks the threads hash ('t'), then meta ('p'), each by cursor until it
  returns '0', and adds the pages up.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] 't' (threads hash) or 'p' (meta: permanent threads and their overrides)
  ARGV[2] cursor ('0' to start)
  ARGV[3] page size (HSCAN COUNT, 1 to 500: a page's work is bounded, docs/design.md)

  Reply 't': {next cursor, live mappings, expired mappings, expired floors,
              earliest live deadline or '', latest live deadline or '',
              override entries (HLEN of overrides, placeholder left out; on cursor '0' only, else '')}
  Reply 'p': {next cursor, permanent mappings, permanent overrides}
  Errors: BADARG, LAYOUT
]]
-- @include _core
-- @include _scan

local m = redis.call('HMGET', KEYS[1], 'salt', 'v')
local err = F.layout_error(m[1], m[2])
if err then return redis.error_reply(err) end
local count = F.whole(ARGV[3], 1, 500)
if not count then
  return redis.error_reply('BADARG page size ' .. ARGV[3] .. ' must be a whole number from 1 to 500')
end
if ARGV[1] == 't' then
  local kv, cursor = F.scan_page(KEYS[2], ARGV[2], count)
  if not kv then return redis.error_reply(cursor) end
  local live, expired, expired_floors = 0, 0, 0
  local earliest, latest
  for i = 2, #kv, 2 do
    local v = kv[i]
    if #v >= 6 then  -- '' is the placeholder
      local dl = F.dec_dl(v)
      if #v == 6 then
        if dl <= W.NOW then expired_floors = expired_floors + 1 end
      elseif dl > W.NOW then
        live = live + 1
        if not earliest or dl < earliest then earliest = dl end
        if not latest or dl > latest then latest = dl end
      else
        expired = expired + 1
      end
    end
  end
  local overrides = ''
  if ARGV[2] == '0' then
    overrides = redis.call('HLEN', KEYS[3])
    if overrides > 0 and redis.call('HEXISTS', KEYS[3], '') == 1 then overrides = overrides - 1 end
  end
  local function ms(x) return x and string.format('%d', x) or '' end
  return {cursor, live, expired, expired_floors, ms(earliest), ms(latest), overrides}
elseif ARGV[1] == 'p' then
  local kv, cursor = F.scan_page(KEYS[1], ARGV[2], count)
  if not kv then return redis.error_reply(cursor) end
  local permanent, overrides = 0, 0
  for i = 1, #kv, 2 do
    local head = string.sub(kv[i], 1, 1)
    if head == 'P' then
      permanent = permanent + 1
    elseif head == 'Q' and kv[i + 1] ~= '' then  -- Q<d> = '' is a permanent floor
      overrides = overrides + 1
    end
  end
  return {cursor, permanent, overrides}
end
return redis.error_reply('BADARG stats kind ' .. ARGV[1] .. " must be 't' or 'p'")
