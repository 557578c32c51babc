--[[
  F.get_or_create: the id of a chain, bound now if it has none.
  Also serves start_chain. Touches the chain and its live ancestors.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID (used only if the derived id is taken)
  ARGV[3] entries to sweep for expiry on the way, '0' for none
  ARGV[4] the chain: hops joined by \31

  Reply: the thread id
  Errors: BADARG, BADID, BADHOP, BADCHAIN (all before any write), '2'
]]
-- @include _hot

-- Hot path (_hot.lua): a plain write to a chain whose thread is live and due within the
-- headroom of this touch's deadline or later: its id, nothing written; or to a new chain
-- that nothing else claims, whose parent is live and needs no push: bound in one HSET.
local meta = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x')
local chain = ARGV[4]
local newdl, headroom = plain_write()
local d, fields
if newdl and meta[1] and meta[2] == '2' and plain_chain(chain) then
  d = as_uuid(digest(meta[1] .. '\0' .. chain))
  fields = redis.call('HMGET', KEYS[2], d, '\0' .. d)
  if holds_until(fields[1], chain, newdl - headroom) then return d end
  if not fields[1] and not fields[2] then
    -- A new chain: its parent (prefix) decides its deadline; read in threads, or in
    -- meta (a permanent parent, such as the root) in the same HMGET as d's claims.
    local x_at, cut = tonumber(meta[3]) or 0, string.find(chain, '\31[^\31]*$')
    local dl, free, prefix, pd, pv, pp
    if not cut then
      dl = plain_deadline(nil, x_at)
      free = dl and unclaimed(d)
    else
      prefix = string.sub(chain, 1, cut - 1)
      pd = as_uuid(digest(meta[1] .. '\0' .. prefix))
      pv = redis.call('HGET', KEYS[2], pd)
      if pv and holds(pv, prefix) and dec_dl(pv) > NOW then
        dl = plain_deadline(dec_dl(pv), x_at)
        free = dl and unclaimed(d)
      elseif not pv then
        free, pp = unclaimed(d, 'P' .. pd)
        dl = free and pp == prefix and plain_deadline(nil, x_at)
      end
    end
    if free and dl then
      redis.call('HSET', KEYS[2], d, enc_dl(dl) .. chain)
      return d
    end
  end
end

-- The full way: _core's and _write's helpers, made only now.
-- @include _core
-- @include _write
F.from_hot(meta)
local err = F.begin_write()
if err then return redis.error_reply(err) end
local ends
if d then  -- plain_chain accepted it on the hot path
  ends = F.split(chain)
else
  err, ends = F.check_chain(chain, true)
  if err then return redis.error_reply(err) end
end
F.ensure_salt()
local n, ds, states = #ends, {}, {}
F.take_hot(chain, ends, ds, states, n, d, fields)
local id = F.get_or_create(chain, ends, ds, false, nil, states)
F.end_write()
return id
