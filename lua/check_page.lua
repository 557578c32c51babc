--[[
  check_page: verify one bounded page of a namespace, for check(). Never writes.
  The client walks meta ('m'), the threads hash ('t') and the overrides hash ('o'),
  each by cursor until it returns '0', then asks for the keys' facts ('k').

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] 'm', 't', 'o' or 'k'
  ARGV[2] cursor ('0' to start; ignored for 'k')
  ARGV[3] page size (HSCAN COUNT, 1 to 100: each live mapping costs a digest or two, and a
          page's work is bounded, docs/design.md)

  Reply 'm', 't', 'o': {next cursor, latest deadline of the page's live entries or '',
                        entries examined, kind, field, detail, other or '', kind, ...}
                        (kinds: see _check.lua)
  Reply 'k': {now ms, exists meta, threads, overrides (0/1), PTTL meta, threads,
              overrides, meta x or '', salt present (0/1), layout v or ''}
  Errors: BADARG ('k' answers even for a layout this version does not read)
]]
-- @include _check

local m = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x')
if ARGV[1] == 'k' then
  return {
    string.format('%d', W.NOW),
    redis.call('EXISTS', KEYS[1]), redis.call('EXISTS', KEYS[2]), redis.call('EXISTS', KEYS[3]),
    redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]),
    m[3] or '', m[1] and 1 or 0, m[2] or '',
  }
end
local err = F.layout_error(m[1], m[2])
if err then return redis.error_reply(err) end
W.SALT = m[1] or nil
local count = F.whole(ARGV[3], 1, 100)
if not count then
  return redis.error_reply('BADARG page size ' .. ARGV[3] .. ' must be a whole number from 1 to 100')
end
local key = ({m = KEYS[1], t = KEYS[2], o = KEYS[3]})[ARGV[1]]
if not key then return redis.error_reply("BADARG check kind " .. ARGV[1] .. " must be 'm', 't', 'o' or 'k'") end
local kv, cursor = F.scan_page(key, ARGV[2], count)
if not kv then return redis.error_reply(cursor) end
local out = {cursor, '', #kv / 2}
local latest
for i = 1, #kv, 2 do
  local field, v = kv[i], kv[i + 1]
  local kind, detail, other
  if ARGV[1] == 't' then
    kind, detail, other = F.classify_thread(field, v)
    if #v >= 6 and field ~= '' then
      local dl = F.dec_dl(v)
      if dl > W.NOW and (not latest or dl > latest) then latest = dl end
    end
  elseif ARGV[1] == 'm' then
    kind, detail, other = F.classify_meta(field, v)
  else
    kind, detail, other = F.classify_override(field, v)
  end
  if kind then
    out[#out + 1] = kind
    out[#out + 1] = field
    out[#out + 1] = detail
    out[#out + 1] = other or ''
  end
end
if latest then out[2] = string.format('%d', latest) end
return out
