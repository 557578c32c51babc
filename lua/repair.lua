--[[
  repair: mend one problem check found, if it is still there: every step re-verifies
  the problem in the same script (so a repair racing live traffic acts on what is, not
  on what was) and never invents a mapping: it drops malformed and dangling entries,
  re-points or drops broken pointers, raises a floor or a short key expiry.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] where: 't' (threads field), 'm' (meta field), 'o' (overrides field), or
          'k' (the keys: expiry and placeholders)
  ARGV[2] the field ('' for 'k')
  ARGV[3] for 'k': the latest deadline check saw (ms), or ''

  Reply: {what was done, or '' when the problem is gone (nothing written)}
  Errors: BADARG, LAYOUT (before any write)
]]
-- @include _check

if ARGV[1] == 'k' then
  -- Keys: threads and overrides exist together, meta never expires, and the threads
  -- and overrides keys expire together, no earlier than any deadline and than meta's x.
  local done = {}
  if redis.call('PTTL', KEYS[1]) >= 0 then
    redis.call('PERSIST', KEYS[1])
    done[#done + 1] = 'meta made persistent'
  end
  local t, o = redis.call('EXISTS', KEYS[2]), redis.call('EXISTS', KEYS[3])
  if t == 1 and o == 0 then
    redis.call('HSETNX', KEYS[3], '', '')
    done[#done + 1] = 'overrides placeholder restored'
  elseif o == 1 and t == 0 then
    redis.call('HSETNX', KEYS[2], '', '')
    done[#done + 1] = 'threads placeholder restored'
  end
  if t == 1 or o == 1 then
    local pt = redis.call('PTTL', KEYS[2])
    local po = redis.call('PTTL', KEYS[3])
    if pt == -1 then
      if po >= 0 then
        redis.call('PERSIST', KEYS[3])
        done[#done + 1] = 'overrides expiry removed, as the threads key has none'
      end
    else
      local x = tonumber(redis.call('HGET', KEYS[1], 'x') or '0') or 0
      local at = W.NOW + pt
      local target = math.max(at, x, tonumber(ARGV[3]) or 0)
      if target > at or W.NOW + po ~= at or po < 0 then
        if target > at then target = target + 1000 end  -- a second beyond what is needed
        redis.call('PEXPIREAT', KEYS[2], target)
        redis.call('PEXPIREAT', KEYS[3], target)
        if target > x then redis.call('HSET', KEYS[1], 'x', string.format('%d', target)) end
        done[#done + 1] = 'threads and overrides expire at ' .. string.format('%d', target)
      end
    end
  end
  return {table.concat(done, '; ')}
end

local err = F.begin_check()
if err then return redis.error_reply(err) end
local field = ARGV[2]
if ARGV[1] == 't' then
  local v = redis.call('HGET', KEYS[2], field)
  if not v then return {''} end
  local kind = F.classify_thread(field, v)
  if kind and field == '' then
    redis.call('HSET', KEYS[2], '', '')
    return {'placeholder of the threads hash restored'}
  elseif kind == 'malformed' or kind == 'derived' or kind == 'duplicate' then
    redis.call('HDEL', KEYS[2], field)
    if #v > 43 and string.byte(v, 7) == 0 then
      local d = string.sub(v, 8, 43)
      if redis.call('HGET', KEYS[3], d) == field then redis.call('HDEL', KEYS[3], d) end
    end
    return {'dropped threads entry ' .. field}
  elseif kind == 'unreachable' then
    local d = string.sub(v, 8, 43)
    redis.call('HSET', KEYS[3], d, field)
    redis.call('HSETNX', KEYS[3], '', '')
    return {'override of its chain points at ' .. field .. ' again'}
  elseif kind == 'ancestor' then
    -- Raise every floor above it that is due earlier, nearest first, up to the first
    -- prefix with a mapping or a permanent floor (the invariant holds above that).
    local dl = F.dec_dl(v)
    local chain = F.chain_of(string.sub(v, 7))
    local ends = F.split(chain)
    local ds = {}
    F.fill_ds(chain, ends, ds, 1, #ends - 1)
    local raised = 0
    for k = #ends - 1, 1, -1 do
      local f = redis.call('HGET', KEYS[2], '\0' .. ds[k])
      if not f or #f ~= 6 or F.live_at(ds[k]) or redis.call('HGET', KEYS[3], ds[k])
          or redis.call('HGET', KEYS[1], 'Q' .. ds[k]) then
        break
      end
      if F.dec_dl(f) < dl then
        redis.call('HSET', KEYS[2], '\0' .. ds[k], string.sub(v, 1, 6))
        raised = raised + 1
      end
    end
    local pt = redis.call('PTTL', KEYS[2])
    if pt >= 0 and W.NOW + pt < dl then
      redis.call('PEXPIREAT', KEYS[2], dl + 1000)
      redis.call('PEXPIREAT', KEYS[3], dl + 1000)
      redis.call('HSET', KEYS[1], 'x', string.format('%d', dl + 1000))
    end
    return {raised .. ' floor(s) above it raised to ' .. string.format('%d', dl)}
  end
  return {''}
elseif ARGV[1] == 'm' then
  local v = redis.call('HGET', KEYS[1], field)
  if not v then return {''} end
  local kind = F.classify_meta(field, v)
  if kind == 'derived' or kind == 'duplicate' then
    -- A well-formed permanent mapping: removed as cleanup removes one, with the
    -- override and the root or table-root pointer that name it.
    F.remove(string.sub(field, 2))
    return {'dropped permanent mapping ' .. string.sub(field, 2) .. ' and what pointed at it'}
  elseif kind == 'malformed' then
    local doomed = {field}
    local id = string.sub(field, 2)
    if string.sub(field, 1, 1) == 'P' and #v > 37 and string.byte(v, 1) == 0 then
      local q = 'Q' .. string.sub(v, 2, 37)
      if redis.call('HGET', KEYS[1], q) == id then doomed[#doomed + 1] = q end
    end
    redis.call('HDEL', KEYS[1], unpack(doomed))
    return {'dropped meta field ' .. table.concat(doomed, ', ')}
  elseif kind == 'unreachable' then
    redis.call('HSET', KEYS[1], 'Q' .. string.sub(v, 2, 37), string.sub(field, 2))
    return {'permanent override of its chain points at ' .. string.sub(field, 2) .. ' again'}
  elseif kind == 'dangling' or kind == 'pointer' then
    redis.call('HDEL', KEYS[1], field)
    return {'dropped meta field ' .. field}
  end
  return {''}
elseif ARGV[1] == 'o' then
  local v = redis.call('HGET', KEYS[3], field)
  if not v then return {''} end
  local kind = F.classify_override(field, v)
  if kind == 'dangling' or kind == 'malformed' then
    if field == '' then
      redis.call('HSET', KEYS[3], '', '')
      return {'placeholder of the overrides hash restored'}
    end
    redis.call('HDEL', KEYS[3], field)
    return {'dropped override ' .. field}
  end
  return {''}
end
return redis.error_reply("BADARG repair kind " .. ARGV[1] .. " must be 't', 'm', 'o' or 'k'")
