--[[
  prune_for_response: drop the last hop of a thread's chain, for routing an answer.
  The shorter chain's id is returned (bound now if it had none) with its last hop,
  the caller the answer goes to. A one-hop chain has no caller: its mapping is
  removed. The pruned thread itself is left as it is, unless ARGV[6] asks to drop it.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way, '0' for none
  ARGV[4] thread id
  ARGV[5] '1' for strict mode: an unknown or expired id is an UNKNOWNID error instead
          of {false, false} ('' or absent: not strict)
  ARGV[6] '1' to drop the answered thread (ARGV[4]) in the same run, as cleanup does
          ('' or absent: keep it)

  Reply: {target hop, thread id}, or {false, false} for an unknown id or a one-hop chain
  Errors: BADARG, BADID, UNKNOWNID (before any write)
]]
-- @include _core
-- @include _remove
-- @include _write

local err = begin_write()
for i, name in ipairs({'strict', 'drop'}) do
  local v = ARGV[4 + i]
  if not err and v and v ~= '' and v ~= '1' then
    err = 'BADARG ' .. name .. ' flag ' .. v .. ' must be 1 or empty'
  end
end
if err then return redis.error_reply(err) end
local chain = find(ARGV[4])
if not chain and ARGV[5] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
local reply = {false, false}
if chain then
  local parent = parent_of(chain)
  if not parent then
    remove(ARGV[4])
  else
    local target = string.match(parent, '[^\31]*$')
    ensure_salt()
    reply = {target, get_or_create(parent, false)}
    -- Dropped after the shorter chain is touched: like cleanup(), it leaves no floor.
    if ARGV[6] == '1' then remove(ARGV[4]) end
  end
end
end_write()
return reply
