-- _remove.lua: removing mappings and sweeping expired entries.
-- @include _core
-- @include _scan

-- Helpers a call seldom needs: made on first use (F's __index, see _core.lua).
local REMOVE_GROUP = lazy(function()
function F.render(chain)
  return (string.gsub(chain, '\31', '.'))
end

-- Removes an expiring entry and the override that points at it (only a thread whose
-- id is not its chain's derived id can have one).
function F.drop_expiring(id, body)
  redis.call('HDEL', KEYS[2], id)
  if string.byte(body, 1) == 0 then
    local d = string.sub(body, 2, 37)
    if redis.call('HGET', KEYS[3], d) == id then redis.call('HDEL', KEYS[3], d) end
  end
end

-- Removes a mapping, both directions, wherever it lives; also the root or
-- table-root pointer that names it. Returns true when something was removed.
function F.remove(id)
  local v = redis.call('HGET', KEYS[2], id)
  if v and #v > 6 then
    F.drop_expiring(id, string.sub(v, 7))
    return true
  end
  local body = redis.call('HGET', KEYS[1], 'P' .. id)
  if not body then return false end
  local chain = F.chain_of(body)
  local d = F.derived_of(id, body)
  local first_end = string.find(chain, '\31', 1, true)
  local table_pointer = 'T'
  if first_end and not string.find(chain, '\31', first_end + 1, true) then
    table_pointer = 'T' .. string.sub(chain, 1, first_end - 1)
  end
  local m = redis.call('HMGET', KEYS[1], 'Q' .. d, 'root', table_pointer)
  local doomed = {'P' .. id}
  if m[1] == id then doomed[#doomed + 1] = 'Q' .. d end
  if m[2] and string.sub(m[2], 1, 36) == id then doomed[#doomed + 1] = 'root' end
  if m[3] == id then doomed[#doomed + 1] = table_pointer end
  redis.call('HDEL', KEYS[1], unpack(doomed))
  return true
end

-- Incremental expiry: examines about `count` entries of the threads hash from `cursor`
-- and removes those whose deadline has passed (mappings both directions, and floors),
-- stopping once `most` mappings were reclaimed. Returns how many mappings were
-- reclaimed, the next cursor ('0': a pass ended; a step that stopped early gives a
-- cursor that examines the rest of its page again) and how many entries it removed
-- (mappings and floors), or nil and an error for a cursor this library did not give.
function F.sweep(cursor, count, most)
  local kv, next_cursor, off = F.scan_page(KEYS[2], cursor, count)
  if not kv then return nil, next_cursor end
  -- (A step that resumes a page began at the cursor without its 'C' mark: stopping
  -- again must give that page's cursor one mark, not two.)
  if string.byte(cursor, 1) == 67 then cursor = string.sub(cursor, 2) end
  local reclaimed, dropped, seen = 0, 0, 0
  local doomed = {}
  local now = W.NOW
  for i = 1, #kv, 2 do
    if most and reclaimed >= most then
      -- Stopped inside the page: the next step examines it again from where it began
      -- ('C' keeps a page that began at cursor 0 from reading as the end of a pass).
      next_cursor = off and ('L' .. string.format('%d', off + seen - dropped)) or ('C' .. cursor)
      if #doomed > 0 then redis.call('HDEL', KEYS[2], unpack(doomed)) end
      return reclaimed, next_cursor, dropped
    end
    seen = seen + 1
    local v = kv[i + 1]
    -- ('' is the placeholder, see ensure_keys. The deadline is decoded in place, as in
    -- F.dec_dl: a call per entry costs more than the decoding.)
    local a, b, c, d, e, f, g = string.byte(v, 1, 7)
    if f and ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f <= now then
      if g then  -- a mapping (a floor is the deadline alone)
        if g == 0 then
          F.drop_expiring(kv[i], string.sub(v, 7))
        else
          doomed[#doomed + 1] = kv[i]
        end
        reclaimed = reclaimed + 1
      else
        doomed[#doomed + 1] = kv[i]
      end
      dropped = dropped + 1
    end
  end
  if #doomed > 0 then redis.call('HDEL', KEYS[2], unpack(doomed)) end
  if off and next_cursor ~= '0' then
    -- What was dropped from this page moved the rest of the listpack up.
    next_cursor = 'L' .. string.format('%d', off + seen - dropped)
  end
  return reclaimed, next_cursor, dropped
end

-- The sweep that writes do on the way: a step from the cursor kept in meta ('cur').
-- A step that removes nothing makes the namespace's next 1, then 3, then 7 sweep turns
-- pass without scanning ('sk' in meta: '<level>:<turns left>'); a step that removes
-- anything gives every turn its step again. A namespace with nothing expired so pays
-- an eighth of the sweeps; one where entries start to expire takes a step within 8
-- turns, and the full rate from the first step that meets one (docs/design.md,
-- "Sweeping on the way").
local SKIPS = {1, 3, 7}
function F.sweep_on_the_way(count)
  local m = redis.call('HMGET', KEYS[1], 'cur', 'sk')
  local cursor, backoff, level = m[1], m[2], 0
  if backoff then
    local l, left = string.match(backoff, '^([123]):(%d)$')
    if left and left ~= '0' then
      redis.call('HSET', KEYS[1], 'sk', l .. ':' .. string.format('%d', left - 1))
      return
    end
    level = l and tonumber(l) or 0
  end
  -- (A cursor this library did not write starts a new pass: HSCAN would fail the
  -- write after its changes.)
  if cursor and not string.find(cursor, '^[CL]?%d+$') then cursor = false end
  local done, next_cursor, dropped = F.sweep(cursor or '0', count)
  if not done then next_cursor, dropped = '0', 0 end
  local set, del = {}, {}
  if next_cursor ~= '0' then
    set[1], set[2] = 'cur', next_cursor
  elseif m[1] then
    del[1] = 'cur'
  end
  if dropped == 0 then
    level = math.min(level + 1, 3)
    local k = #set
    set[k + 1], set[k + 2] = 'sk', level .. ':' .. SKIPS[level]
  elseif backoff then
    del[#del + 1] = 'sk'
  end
  if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
  if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
end
end)

-- A plain write answered on its hot path (_hot.lua) that was asked to sweep `count`
-- entries (every 32nd write of a client): the sweep, with only the groups it needs (F's
-- lookup would first make every group a write script registers after these: all of
-- _write.lua's helpers, which the full path of the write would have made and used).
-- Returns the hot path's answer.
local function sweep_after(answer, count)
  make_now(SCAN_GROUP)
  make_now(REMOVE_GROUP)
  F.sweep_on_the_way(count)
  return answer
end
