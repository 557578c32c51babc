--[[
  extend_chain: the id of (chain of ARGV[4]) + one hop, bound now if it has none.
  An unknown or expired current id gives the one-hop chain [hop].

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a F.fresh random UUID
  ARGV[3] entries to F.sweep for expiry on the way, '0' for none
  ARGV[4] current thread id ('' when the client already knows it is malformed)
  ARGV[5] the next hop
  ARGV[6] '1' for strict mode: an unknown or expired current id is an UNKNOWNID error
          instead of the one-hop chain ('' or absent: not strict)

  Reply: the thread id of the extended chain
  Errors: BADARG, BADID, BADHOP, BADCHAIN (over 32 hops or 2,048 bytes), UNKNOWNID (all before any write), '2'
]]
-- @include _core
-- @include _write

local err = F.begin_write() or F.check_hop(ARGV[5], 'next hop')
if not err and ARGV[6] and ARGV[6] ~= '' and ARGV[6] ~= '1' then
  err = 'BADARG strict flag ' .. ARGV[6] .. ' must be 1 or empty'
end
if err then return redis.error_reply(err) end
local hop = ARGV[5]
local current, current_dl, current_perm, current_d
if W.SALT and ARGV[4] ~= '' then
  local v = redis.call('HGET', KEYS[2], ARGV[4])
  if v and #v > 6 then
    local dl = F.dec_dl(v)
    if dl > W.NOW then
      local body = string.sub(v, 7)
      current, current_dl, current_d = F.chain_of(body), dl, F.derived_of(ARGV[4], body)
    end
  elseif not v then
    local body = redis.call('HGET', KEYS[1], 'P' .. ARGV[4])
    if body then current, current_perm, current_d = F.chain_of(body), true, F.derived_of(ARGV[4], body) end
  end
end
if not current and ARGV[6] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
local chain = hop
if current then
  chain = current .. '\31' .. hop
  err = F.over_limits(chain, 'extending ' .. ARGV[4])
  if err then return redis.error_reply(err) end
end
F.ensure_salt()
-- Only the last two prefixes' ends are known (n counted, not split): a walk that goes
-- further up completes them (F.complete).
local n = 1
if current then n = select(2, string.gsub(current, '\31', '')) + 2 end
local ends = {n = n, [n] = #chain}
if current then ends[n - 1] = #current end
-- The current thread is the parent: its state and derived id are known already.
local ds, states = {}, {}
F.fill_ds(chain, ends, ds, n, n)
if current then
  ds[n - 1] = current_d
  states[n - 1] = {id = ARGV[4], d = current_d, dl = current_dl, perm = current_perm}
end
local id = F.get_or_create(chain, ends, ds, false, nil, states)
F.end_write()
return id
