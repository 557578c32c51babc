-- _remove.lua: removing mappings and sweeping expired ones; pasted after _core.

local function render(chain)
  return (string.gsub(chain, SEP, '.'))
end

-- Byte offsets of the separators, so prefixes and the last hop come without copying.
local function separators(chain)
  local seps, from = {}, 1
  while true do
    local i = string.find(chain, SEP, from, true)
    if not i then return seps end
    seps[#seps + 1] = i
    from = i + 1
  end
end

-- Removes an expiring entry and the override that points at it.
local function drop_expiring(id, chain)
  redis.call('HDEL', K_THREADS, id)
  if redis.call('HGET', K_OVERRIDES, chain) == id then
    redis.call('HDEL', K_OVERRIDES, chain)
  end
end

-- Removes a mapping, both directions, wherever it lives; also the root or
-- table-root pointer that names it. Returns true when something was removed.
local function remove(id)
  local v = redis.call('HGET', K_THREADS, id)
  if v then
    drop_expiring(id, string.sub(v, 7))
    return true
  end
  local chain = redis.call('HGET', K_META, 'P' .. id)
  if not chain then return false end
  local seps = separators(chain)
  local table_pointer = #seps == 1 and ('T' .. string.sub(chain, 1, seps[1] - 1)) or 'T'
  local m = redis.call('HMGET', K_META, 'Q' .. chain, 'root', table_pointer)
  local doomed = {'P' .. id}
  if m[1] == id then doomed[#doomed + 1] = 'Q' .. chain end
  if m[2] == id then doomed[#doomed + 1] = 'root' end
  if m[3] == id then doomed[#doomed + 1] = table_pointer end
  redis.call('HDEL', K_META, unpack(doomed))
  return true
end

-- Incremental expiry: examines about `count` entries from a cursor kept in meta.
-- Returns how many were reclaimed, the next cursor, and the cursor it began at.
local function sweep(count)
  local began = redis.call('HGET', K_META, 'cur') or '0'
  local r = redis.call('HSCAN', K_THREADS, began, 'COUNT', count)
  local kv, reclaimed = r[2], 0
  for i = 1, #kv, 2 do
    if dec_dl(kv[i + 1]) <= NOW then
      drop_expiring(kv[i], string.sub(kv[i + 1], 7))
      reclaimed = reclaimed + 1
    end
  end
  if r[1] == '0' then
    redis.call('HDEL', K_META, 'cur')
  else
    redis.call('HSET', K_META, 'cur', r[1])
  end
  return reclaimed, r[1], began
end
