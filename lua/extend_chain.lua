--[[
  extend_chain: the id of (chain of ARGV[4]) + one hop, bound now if it has none.
  An unknown or expired current id gives the one-hop chain [hop].

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way, '0' for none
  ARGV[4] current thread id ('' when the client already knows it is malformed)
  ARGV[5] the next hop
  ARGV[6] '1' for strict mode: an unknown or expired current id is an UNKNOWNID error
          instead of the one-hop chain ('' or absent: not strict)

  Reply: the thread id of the extended chain
  Errors: BADARG, BADID, BADHOP, BADCHAIN (depth over 256), UNKNOWNID (all before any write)
]]
-- @include _core
-- @include _remove
-- @include _write

local err = begin_write() or check_hop(ARGV[5], 'next hop')
if not err and ARGV[6] and ARGV[6] ~= '' and ARGV[6] ~= '1' then
  err = 'BADARG strict flag ' .. ARGV[6] .. ' must be 1 or empty'
end
if err then return redis.error_reply(err) end
local current, current_dl, current_perm = find(ARGV[4])
if not current and ARGV[6] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
local chain = ARGV[5]
if current then
  chain = current .. SEP .. ARGV[5]
  if deeper_than(chain, MAX_HOPS) then
    return redis.error_reply('BADCHAIN extending ' .. ARGV[4] .. ' would make more than 256 hops')
  end
end
ensure_salt()
local id = get_or_create(chain, false, nil, current and {ARGV[4], current_dl, current_perm})
end_write()
return id
