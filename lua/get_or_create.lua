--[[
  F.get_or_create: the id of a chain, bound now if it has none.
  Also serves start_chain. Touches the chain and its live ancestors.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)
  ARGV[1] ttl in ms, '' for never expire
  ARGV[2] a fresh random UUID (used only if the derived id is taken)
  ARGV[3] entries to sweep for expiry on the way (0 to 128), '0' for none
  ARGV[4] the chain: hops joined by \31

  Reply: the thread id
  Errors: BADARG, BADID, BADHOP, BADCHAIN (all before any write), '2'
]]
-- @include _plain

-- Whether a chain is printable ASCII hops of 1 to 256 bytes, 32 at most, 2,048 bytes at
-- most (the usual chain: surely valid). One of up to 64 bytes (the usual one) is known
-- after three scans of the whole string: its hops can be neither longer than 256 bytes
-- nor more than 32; a longer one is walked hop by hop. (Here, not in _plain.lua: no
-- other script needs it, and each function a run defines costs it a closure.)
local function plain_chain(chain)
  local n = #chain
  if n < 1 or n > 2048 or string.find(chain, '[^\31-\126]') then return false end
  if n <= 64 then
    return string.byte(chain, 1) ~= 31 and string.byte(chain, n) ~= 31
      and not string.find(chain, '\31\31', 1, true)
  end
  local from, hops = 1, 0
  while true do
    local i = string.find(chain, '\31', from, true) or n + 1
    if i == from or i - from > 256 then return false end
    hops = hops + 1
    if i > n then return hops <= 32 end
    if hops == 32 then return false end
    from = i + 1
  end
end

-- Hot path (_plain.lua): a plain write to a chain whose thread is live and due within the
-- headroom of this touch's deadline or later: its id, nothing written.
local meta = redis.call('HMGET', KEYS[1], 'salt', 'v', 'x')
local chain = ARGV[4]
local newdl, headroom = PLAIN_DL, PLAIN_HR
local d, fields, plain
if newdl and meta[1] and meta[2] == '2' then plain = plain_chain(chain) end
if plain then
  d = as_uuid(digest(meta[1] .. '\0' .. chain))
  fields = redis.call('HMGET', KEYS[2], d, '\0' .. d)
  if holds_until(fields[1], chain, newdl - headroom) then
    if SWEEP == 0 then return d end
    DONE = d  -- (swept after the includes)
  end
end

-- A new chain that nothing else claims, whose parent is live and needs no push: bound
-- in one HSET, with _hot.lua's helpers (made only now).
-- @include _hot
if plain and not fields[1] and not fields[2] then
  -- Its parent (prefix) decides its deadline; read in threads, or in meta (a permanent
  -- parent, such as the root) in the same HMGET as d's claims.
  local x_at = tonumber(meta[3]) or 0
  local prefix = string.match(chain, '^(.*)\31')  -- (greedy: up to the last separator)
  local dl, free, pd, pv, pp
  if not prefix then  -- one hop
    dl = plain_deadline(nil, x_at)
    free = dl and unclaimed(d)
  else
    pd = as_uuid(digest(meta[1] .. '\0' .. prefix))
    pv = redis.call('HGET', KEYS[2], pd)
    if pv and holds(pv, prefix) and dec_dl(pv) > NOW then
      dl = plain_deadline(dec_dl(pv), x_at)
      free = dl and unclaimed(d)
    elseif not pv then
      -- (plain_deadline first: when the keys' expiry must be raised, the full way
      -- reads the claims anyway.)
      dl = plain_deadline(nil, x_at)
      if dl then free, pp = unclaimed(d, 'P' .. pd) end
      free = free and pp == prefix
    end
  end
  if free and dl then
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
local err = F.begin_write()
if err then return redis.error_reply(err) end
local ends
if d then  -- the hot path's quick test accepted it
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
