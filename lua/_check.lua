-- _check.lua: what check_page reports and what repair re-verifies before it acts, so
-- a repair racing live traffic acts only on a problem that is still there.
-- @include _core
-- @include _write
--
-- Each classify_* returns nil (sound, or expired and the sweep's) or
-- kind, detail[, other]: kinds are
--   malformed    an entry that breaks the encoding or the hop rules (repair: drop it)
--   derived      a live mapping whose chain derives another id than its body says
--                (the salt changed under it: it can never be found from its chain; drop)
--   duplicate    a live mapping its chain does not lead to, while the chain has
--                another live id (`other`): one chain, two ids (drop the unreachable one)
--   unreachable  a live mapping its chain does not lead to, and no other id serves
--                the chain (repair: point the chain's override at it again)
--   dangling     an override naming no mapping of its chain (drop the override)
--   pointer      a root or table-root pointer naming no permanent mapping of the right
--                shape (drop the pointer)
--   ancestor     a live thread whose parent's floor is due before it (raise the floor)
--   unknown      a meta field this layout does not know (reported, never touched)

local function is_id(s)
  return s and F.check_id(s) == nil
end

-- The live mapping at `id`, if any, as chain, derived id, deadline (nil: permanent).
function F.live_at(id)
  local v = redis.call('HGET', KEYS[2], id)
  if v and #v > 6 then
    local dl = F.dec_dl(v)
    if dl > W.NOW then
      local body = string.sub(v, 7)
      return F.chain_of(body), F.derived_of(id, body), dl
    end
    return nil
  end
  local body = redis.call('HGET', KEYS[1], 'P' .. id)
  if body and #body > 0 then return F.chain_of(body), F.derived_of(id, body), nil end
  return nil
end

-- Another live id than `self` that the chain (deriving d) is found at, if any.
local function serving(chain, d, self)
  if d ~= self then
    local c, cd = F.live_at(d)
    if c == chain and cd == d then return d end
  end
  for _, o in ipairs({redis.call('HGET', KEYS[3], d) or false, redis.call('HGET', KEYS[1], 'Q' .. d) or false}) do
    if o and o ~= '' and o ~= self and is_id(o) then
      local c, cd = F.live_at(o)
      if c == chain and cd == d then return o end
    end
  end
  return nil
end

-- Checks a body (chain, or \0 d chain) of the mapping `id`; on success returns nil,
-- chain, d, ends, and whether d was verified (false: no salt to derive with).
local function check_body(id, body)
  local chain, d = body, id
  if string.byte(body, 1) == 0 then
    d, chain = string.sub(body, 2, 37), string.sub(body, 38)
    if not is_id(d) or d == id then return 'malformed', 'its body names no valid derived id' end
  end
  local cerr, ends = F.check_chain(chain)
  if cerr then return 'malformed', 'its chain breaks the hop rules (' .. cerr .. ')' end
  if not W.SALT then return nil, chain, d, ends, false end
  local derived = F.derive(chain)
  if derived ~= d then
    return 'derived', 'its chain ' .. F.render(chain) .. ' derives ' .. derived .. ', not ' .. d
      .. ' (was the salt changed?): it can never be found from its chain'
  end
  return nil, chain, d, ends, true
end

-- An entry of the threads hash.
function F.classify_thread(field, v)
  if field == '' then
    if v ~= '' then return 'malformed', 'the placeholder field holds a value' end
    return nil
  end
  if string.byte(field, 1) == 0 then
    if #field ~= 37 or not is_id(string.sub(field, 2)) or #v ~= 6 then
      return 'malformed', 'a floor whose field or deadline is malformed'
    end
    return nil
  end
  if not is_id(field) then return 'malformed', 'a field that is neither a thread id, a floor nor the placeholder' end
  if #v <= 6 then return 'malformed', 'a value too short for a deadline and a chain' end
  local dl = F.dec_dl(v)
  if dl <= W.NOW then return nil end  -- expired: the sweep reclaims it
  local kind, chain, d, ends, salted = check_body(field, string.sub(v, 7))
  if kind then return kind, chain end
  if field ~= d and redis.call('HGET', KEYS[3], d) ~= field then
    local other = serving(chain, d, field)
    if other then
      return 'duplicate', 'its chain ' .. F.render(chain) .. ' leads to ' .. other .. ', not to it', other
    end
    return 'unreachable', 'no override leads from its chain ' .. F.render(chain) .. ' to it'
  end
  if salted and #ends > 1 then
    local pd = F.derive(string.sub(chain, 1, ends[#ends - 1]))
    local f = redis.call('HGET', KEYS[2], '\0' .. pd)
    if f and #f == 6 and F.dec_dl(f) < dl and redis.call('HGET', KEYS[1], 'Q' .. pd) ~= ''
        and not serving(string.sub(chain, 1, ends[#ends - 1]), pd, '') then
      return 'ancestor', 'its parent ' .. F.render(string.sub(chain, 1, ends[#ends - 1]))
        .. ' has a floor due ' .. string.format('%d', F.dec_dl(f)) .. ', before it (' .. string.format('%d', dl) .. ')', pd
    end
  end
  return nil
end

-- A field of meta.
function F.classify_meta(field, v)
  if field == 'salt' or field == 'v' or field == 'x' or field == 'cur' or field == 'sk' or field == 'ack' then
    return nil
  end
  local head, rest = string.sub(field, 1, 1), string.sub(field, 2)
  if field == 'root' then
    local id, body = string.sub(v, 1, 36), string.sub(v, 37)
    local c = is_id(id) and redis.call('HGET', KEYS[1], 'P' .. id)
    local ends = c and c == body and F.split(F.chain_of(c))
    if not ends or #ends ~= 2 or string.sub(F.chain_of(c), 1, ends[1]) ~= 'system' then
      return 'pointer', 'the root pointer names ' .. id .. ', which is no permanent system.<organism> mapping'
    end
    return nil
  end
  if head == 'T' then
    local c = is_id(v) and redis.call('HGET', KEYS[1], 'P' .. v)
    local chain = c and F.chain_of(c)
    local ends = chain and F.split(chain)
    if not ends or #ends ~= 2 or string.sub(chain, 1, ends[1]) ~= rest then
      return 'pointer', 'the table-root pointer of ' .. rest .. ' names ' .. v .. ', which is no permanent '
        .. rest .. '.<organism> mapping'
    end
    return nil
  end
  if head == 'P' then
    if not is_id(rest) or #v == 0 then return 'malformed', 'a permanent mapping with a malformed id or body' end
    local kind, chain, d = check_body(rest, v)
    if kind then return kind, chain end
    if rest ~= d and redis.call('HGET', KEYS[1], 'Q' .. d) ~= rest then
      local other = serving(chain, d, rest)
      if other then
        return 'duplicate', 'its chain ' .. F.render(chain) .. ' leads to ' .. other .. ', not to it', other
      end
      return 'unreachable', 'no override leads from its chain ' .. F.render(chain) .. ' to it'
    end
    return nil
  end
  if head == 'Q' then
    if not is_id(rest) then return 'malformed', 'a permanent override or floor with a malformed field' end
    if v == '' then return nil end  -- a permanent floor
    local c = is_id(v) and redis.call('HGET', KEYS[1], 'P' .. v)
    if not c or F.derived_of(v, c) ~= rest then
      return 'dangling', 'a permanent override naming ' .. v .. ', which is no permanent mapping of that chain'
    end
    return nil
  end
  return 'unknown', 'a field this layout does not know (left as it is)'
end

-- An entry of the overrides hash: d -> id.
function F.classify_override(d, id)
  if d == '' then
    if id ~= '' then return 'malformed', 'the placeholder field holds a value' end
    return nil
  end
  if not is_id(d) or not is_id(id) then return 'malformed', 'an override with a malformed field or id' end
  local v = redis.call('HGET', KEYS[2], id)
  if v and #v > 6 and F.derived_of(id, string.sub(v, 7)) == d then return nil end  -- live, or the sweep's
  return 'dangling', 'an override naming ' .. id .. ', which holds no mapping of that chain'
end

-- What check and repair read first: salt (for derived ids) and the layout.
function F.begin_check()
  local m = redis.call('HMGET', KEYS[1], 'salt', 'v')
  W.SALT = m[1] or nil
  return F.layout_error(m[1], m[2])
end
