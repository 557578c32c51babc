-- _scan.lua: one bounded page of HSCAN (the sweep, gc, dump).
-- @include _core

-- Helpers a call seldom needs: made on first use (F's __index, see _core.lua).
local SCAN_GROUP = lazy(function()
-- One bounded page of HSCAN: entries (a flat field, value list), the next cursor, and
-- the listpack offset the page began at (nil for a real HSCAN cursor). A hash small
-- enough for listpack encoding answers HSCAN with all its entries whatever COUNT says,
-- and an operator may raise hash-max-listpack-entries; so such a reply is cut to
-- `count` entries and the position kept in the cursor as 'L<offset>'.
function F.scan_page(key, cursor, count, match)
  local off
  if string.sub(cursor, 1, 1) == 'C' then cursor = string.sub(cursor, 2) end  -- see sweep()
  if string.sub(cursor, 1, 1) == 'L' then
    off = F.whole(string.sub(cursor, 2), 0, 4294967295)
    if not off then return nil, 'BADARG cursor ' .. cursor .. ' is not one this library gave' end
    cursor = '0'
  end
  local r
  if match then
    r = redis.call('HSCAN', key, cursor, 'MATCH', match, 'COUNT', count)
  else
    r = redis.call('HSCAN', key, cursor, 'COUNT', count)
  end
  local kv = r[2]
  if r[1] ~= '0' or cursor ~= '0' or (not off and #kv <= 2 * count) then
    return kv, r[1], nil
  end
  off = off or 0
  local page = {}
  for i = 2 * off + 1, math.min(#kv, 2 * (off + count)) do page[#page + 1] = kv[i] end
  if #kv > 2 * (off + count) then return page, 'L' .. string.format('%d', off + count), off end
  return page, '0', off
end
end)
