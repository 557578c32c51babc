--[[
  prune_for_response: drop the last hop of a thread's chain, for routing an answer.
  The shorter chain's id is returned (bound now if it had none) with its last hop,
  the caller the answer goes to. A one-hop chain has no caller: its mapping is
  removed. The pruned thread itself is left as it is, unless ARGV[6] asks to drop it.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] thread id
  ARGV[5] '1' for strict mode: an unknown or expired id is an UNKNOWNID error instead
          of {false, false} ('' or absent: not strict)
  ARGV[6] '1' to drop the answered thread (ARGV[4]) in the same run, as cleanup does
          ('' or absent: keep it)

  Reply: {target hop, thread id}, or {false, false} for an unknown id or a one-hop chain
  Errors: BADARG, BADID, UNKNOWNID (before any write), '2'
]]
-- @include _plain

-- The reads every call makes, before any helper: meta, and the thread answered.
local meta = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x')
local v = redis.call('HGET', KEYS[2], ARGV[4])
local chain
if v and #v > 6 and dec_dl(v) > NOW then chain = chain_of(string.sub(v, 7)) end
local parent = chain and string.match(chain, '^(.*)\31')  -- greedy: up to the last separator

-- Hot path (_plain.lua): a plain write whose shorter chain's thread is live and due within
-- the headroom of this touch's deadline or later: the route, nothing written.
local newdl, headroom = PLAIN_DL, PLAIN_HR
local d, fields
if newdl and parent and meta[1] and meta[2] == '2' and (ARGV[5] == nil or ARGV[5] == '' or ARGV[5] == '1')
    and (ARGV[6] == nil or ARGV[6] == '') then
  d = as_uuid(digest(meta[1] .. '\0' .. parent))
  fields = redis.call('HMGET', KEYS[2], d, '\0' .. d)
  if holds_until(fields[1], parent, newdl - headroom) then
    local grand = string.match(parent, '^(.*)\31')
    DONE = {string.sub(parent, grand and #grand + 2 or 1), d}
    if SWEEP == 0 then return DONE end
  end
end

-- The full way: _core's and _write's helpers, made only now (after a hot answer, only
-- the sweep the call asked for: sweep_after, _remove.lua).
-- @include _core
-- @include _write
if DONE then return sweep_after(DONE, SWEEP) end
F.from_hot(meta)
local err = F.begin_write()
for i, name in ipairs({'strict', 'drop'}) do
  local flag = ARGV[4 + i]
  if not err and flag and flag ~= '' and flag ~= '1' then
    err = 'BADARG ' .. name .. ' flag ' .. flag .. ' must be 1 or empty'
  end
end
if err then return redis.error_reply(err) end
if not v then  -- not an expiring thread: a permanent one?
  chain = F.find(ARGV[4])
  parent = chain and string.match(chain, '^(.*)\31')
end
if not chain and ARGV[5] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
local reply = {false, false}
if chain then
  if not parent then
    F.remove(ARGV[4])
  else
    -- Only the shorter chain and its parent are looked at (not a split of the chain;
    -- a walk further up completes the rest, F.complete).
    local grand = string.match(parent, '^(.*)\31')
    local target = string.sub(parent, grand and #grand + 2 or 1)
    local m = select(2, string.gsub(parent, '\31', '')) + 1
    local ends, ds, states = {n = m, [m] = #parent}, {}, {}
    if grand then ends[m - 1] = #grand end  -- (its derived id only if a write needs it)
    F.ensure_salt()
    F.take_hot(parent, ends, ds, states, m, d, fields)
    reply = {target, F.get_or_create(parent, ends, ds, false, nil, states)}
    -- Dropped after the shorter chain is touched: like cleanup(), it leaves no floor.
    if ARGV[6] == '1' then F.remove(ARGV[4]) end
  end
end
F.end_write()
return reply
