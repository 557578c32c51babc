--[[
  prune_for_response: drop the last hop of a thread's chain, for routing an answer.
  The shorter chain's id is returned (bound now if it had none) with its last hop,
  the caller the answer goes to. A one-hop chain has no caller: its mapping is
  removed. The pruned thread itself is left as it is, unless ARGV[6] asks to drop it.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a F.fresh random UUID
  ARGV[3] entries to F.sweep for expiry on the way, '0' for none
  ARGV[4] thread id
  ARGV[5] '1' for strict mode: an unknown or expired id is an UNKNOWNID error instead
          of {false, false} ('' or absent: not strict)
  ARGV[6] '1' to drop the answered thread (ARGV[4]) in the same run, as cleanup does
          ('' or absent: keep it)

  Reply: {target hop, thread id}, or {false, false} for an unknown id or a one-hop chain
  Errors: BADARG, BADID, UNKNOWNID (before any write), '2'
]]
-- @include _core
-- @include _write

local err = F.begin_write()
for i, name in ipairs({'strict', 'drop'}) do
  local v = ARGV[4 + i]
  if not err and v and v ~= '' and v ~= '1' then
    err = 'BADARG ' .. name .. ' flag ' .. v .. ' must be 1 or empty'
  end
end
if err then return redis.error_reply(err) end
local chain = F.find(ARGV[4])
if not chain and ARGV[5] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
local reply = {false, false}
if chain then
  local parent = string.match(chain, '^(.*)\31')  -- greedy: up to the last separator
  if not parent then
    F.remove(ARGV[4])
  else
    -- Only the shorter chain and its parent are looked at (not a split of the chain;
    -- a walk further up completes the rest, F.complete).
    local grand = string.match(parent, '^(.*)\31')
    local target = string.sub(parent, grand and #grand + 2 or 1)
    local m = select(2, string.gsub(parent, '\31', '')) + 1
    local ends, ds = {n = m, [m] = #parent}, {}
    F.ensure_salt()
    F.fill_ds(parent, ends, ds, m, m)
    if grand then ends[m - 1] = #grand end  -- (its derived id only if a write needs it)
    reply = {target, F.get_or_create(parent, ends, ds, false)}
    -- Dropped after the shorter chain is touched: like cleanup(), it leaves no floor.
    if ARGV[6] == '1' then F.remove(ARGV[4]) end
  end
end
F.end_write()
return reply
