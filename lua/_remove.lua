-- _remove.lua: removing mappings and sweeping expired entries; pasted after _core.

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
  if v and #v > 6 then
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

-- Incremental expiry: examines about `count` entries of the threads hash from `cursor`
-- and removes those whose deadline has passed (mappings both directions, and floors),
-- stopping once `most` mappings were reclaimed. Returns how many mappings were
-- reclaimed and the next cursor ('0': a pass ended; a step that stopped early gives a
-- cursor that examines the rest of its page again), or nil and an error for a cursor
-- this library did not give.
local function sweep(cursor, count, most)
  local kv, next_cursor, off = scan_page(K_THREADS, cursor, count)
  if not kv then return nil, next_cursor end
  local reclaimed, dropped, seen = 0, 0, 0
  for i = 1, #kv, 2 do
    if most and reclaimed >= most then
      -- Stopped inside the page: the next step examines it again from where it began
      -- ('C' keeps a page that began at cursor 0 from reading as the end of a pass).
      next_cursor = off and ('L' .. string.format('%d', off + seen - dropped)) or ('C' .. cursor)
      return reclaimed, next_cursor
    end
    seen = seen + 1
    local v = kv[i + 1]
    if #v >= 6 and dec_dl(v) <= NOW then  -- '' is the placeholder (see ensure_keys)
      if #v > 6 then
        drop_expiring(kv[i], string.sub(v, 7))
        reclaimed = reclaimed + 1
      else
        redis.call('HDEL', K_THREADS, kv[i])
      end
      dropped = dropped + 1
    end
  end
  if off and next_cursor ~= '0' then
    -- What was dropped from this page moved the rest of the listpack up.
    next_cursor = 'L' .. string.format('%d', off + seen - dropped)
  end
  return reclaimed, next_cursor
end

-- The sweep that writes do on the way, from the cursor kept in meta.
local function sweep_on_the_way(count)
  local cursor = redis.call('HGET', K_META, 'cur') or '0'
  local _, next_cursor = sweep(cursor, count)
  if next_cursor == '0' or not next_cursor then
    redis.call('HDEL', K_META, 'cur')
  else
    redis.call('HSET', K_META, 'cur', next_cursor)
  end
end
