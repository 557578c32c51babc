--[[
  extend_chain: the id of (chain of ARGV[4]) + one hop, bound now if it has none.
  An unknown or expired current id gives the one-hop chain [hop].

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] current thread id ('' when the client already knows it is malformed)
  ARGV[5] the next hop
  ARGV[6] '1' for strict mode: an unknown or expired current id is an UNKNOWNID error
          instead of the one-hop chain ('' or absent: not strict)

  Reply: the thread id of the extended chain
  Errors: BADARG, BADID, BADHOP, BADCHAIN (over 32 hops or 2,048 bytes), UNKNOWNID (all before any write), '2'
]]
-- @include _plain

-- The reads every call makes, before any helper: meta, and the current thread.
local meta = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x')
local hop = ARGV[5]
local current, current_dl, current_perm, current_d, v
if meta[1] and ARGV[4] ~= '' then
  v = redis.call('HGET', KEYS[2], ARGV[4])
  if v and #v > 6 then
    -- (One string.byte for the deadline and the body's first byte: see _core.lua.)
    local a, b, c, e, f, g, h = string.byte(v, 1, 7)
    local dl = ((((a * 256 + b) * 256 + c) * 256 + e) * 256 + f) * 256 + g
    if dl > NOW then
      current_dl = dl
      if h == 0 then
        current, current_d = string.sub(v, 44), string.sub(v, 8, 43)
      else
        current, current_d = string.sub(v, 7), ARGV[4]
      end
    end
  end
end
local chain = hop
if current then chain = current .. '\31' .. hop end

-- Hot path (_plain.lua): a plain write to a chain whose thread is live and due within the
-- headroom of this touch's deadline or later: its id, nothing written.
local newdl, headroom = PLAIN_DL, PLAIN_HR
local d, fields
if newdl and current and meta[2] == '2' and plain_hop(hop) and #chain <= 2048
    and (#chain < 65 or select(2, string.gsub(chain, '\31', '')) < 32)
    and (ARGV[6] == nil or ARGV[6] == '' or ARGV[6] == '1') then
  d = as_uuid(digest(meta[1] .. '\0' .. chain))
  fields = redis.call('HMGET', KEYS[2], d, '\0' .. d)
  if holds_until(fields[1], chain, newdl - headroom) then
    if SWEEP == 0 then return d end
    DONE = d  -- (swept after the includes)
  end
end

-- A new chain (nothing at d): made here, with _hot.lua's helpers, when nothing else
-- claims d and the parent needs no push.
-- @include _hot
if d and not fields[1] and not fields[2] then
  local dl = plain_deadline(current_dl, tonumber(meta[3]) or 0)
  if dl and unclaimed(d) then
    redis.call('HSET', KEYS[2], d, enc_dl(dl) .. chain)
    if SWEEP == 0 then return d end
    DONE = d
  end
end

-- The full way: _core's and _write's helpers, made only now (after a hot answer, only
-- the sweep the call asked for: sweep_after, _remove.lua).
-- @include _core
-- @include _write
if DONE then return sweep_after(DONE, SWEEP) end
F.from_hot(meta)
local err = F.begin_write() or (not d and F.check_hop(ARGV[5], 'next hop')) or nil
if not err and ARGV[6] and ARGV[6] ~= '' and ARGV[6] ~= '1' then
  err = 'BADARG strict flag ' .. ARGV[6] .. ' must be 1 or empty'
end
if err then return redis.error_reply(err) end
if W.SALT and ARGV[4] ~= '' and not v then
  local body = redis.call('HGET', KEYS[1], 'P' .. ARGV[4])
  if body then
    current, current_perm, current_d = F.chain_of(body), true, F.derived_of(ARGV[4], body)
    chain = current .. '\31' .. hop
  end
end
if not current and ARGV[6] == '1' then
  return redis.error_reply('UNKNOWNID thread id ' .. ARGV[4] .. ' is unknown or expired; nothing was written')
end
if current and not d then  -- (the hot path checked the limits of what it tried)
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
-- The current thread is the parent: its state and derived id are known already; the
-- chain's own were read on the hot path when it was tried.
local ds, states = {}, {}
F.take_hot(chain, ends, ds, states, n, d, fields)
if current then
  ds[n - 1] = current_d
  states[n - 1] = {id = ARGV[4], d = current_d, dl = current_dl, perm = current_perm}
end
local id = F.get_or_create(chain, ends, ds, false, nil, states)
F.end_write()
return id
