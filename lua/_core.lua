-- _core.lua: what every operation script needs (time, the layout, finding a mapping).
-- Everything here is `local` (Redis forbids globals).
--
-- Layout 2. Every operation script receives the same three KEYS, under the namespace's
-- hash tag:
--   KEYS[1] meta       hash, never expires: salt, v (layout version), x (the expiry the
--                      threads and overrides keys were last given, ms), cur (sweep
--                      cursor), ack, root -> root id .. its body, T<table> -> table-root
--                      id, P<id> -> body (permanent threads), Q<d> -> id (override of a
--                      permanent thread whose chain derives d) or '' (a permanent floor)
--   KEYS[2] threads    hash: id -> 6-byte deadline (ms, big-endian) .. body, and
--                      \0<d> -> 6-byte deadline (an expiring floor of the chain that
--                      derives d, see _write.lua), and '' -> '' (a placeholder)
--   KEYS[3] overrides  hash: d -> id, for a chain deriving d bound to another id;
--                      '' -> '' (a placeholder)
-- A chain is its hops joined by \31 (unit separator): hops never contain control
-- characters, so the separator keeps hop boundaries exact. A body is the chain, or,
-- when the id is not the chain's derived id d, \0 .. d .. chain (a chain never starts
-- with \0), so the derived id of any thread's chain is known without hashing it.
--
-- Error replies start with a code the client maps to an exception:
--   BADHOP, BADCHAIN, BADID, BADARG, ROOTCONFLICT, TABLECONFLICT, IDCONFLICT, LAYOUT


-- @include _base

-- The derived id of a body's chain (id is the thread's own id). (Not in _base: no
-- hot path needs it, and each function a run defines costs it a closure.)
local function derived_of(id, body)
  if string.byte(body, 1) == 0 then return string.sub(body, 2, 37) end
  return id
end

-- The whole number s names when it lies in [lo, hi], else nil ('1.5', 'inf', '1e300').
local function whole(s, lo, hi)
  local n = tonumber(s)
  if n and n == math.floor(n) and n >= lo and n <= hi then return n end
  return nil
end

-- Where a thread id lives. Returns chain, deadline, permanent, derived id of the chain;
-- chain is nil when the id is unknown or its deadline has passed (deadline is then the
-- stale one, or nil). A floor's field starts with \0: never an id.
local function find(id)
  local v = redis.call('HGET', KEYS[2], id)
  if v and #v > 6 then
    local dl = dec_dl(v)
    if dl > NOW then
      local body = string.sub(v, 7)
      return chain_of(body), dl, false, derived_of(id, body)
    end
    return nil, dl, false
  end
  v = redis.call('HGET', KEYS[1], 'P' .. id)
  if v then return chain_of(v), nil, true, derived_of(id, v) end
  return nil, nil, false
end

-- The helpers, and the call's state: two upvalues per helper. Both are made by
-- constructors that name the fields every run sets: a table grown one field at a time
-- is rehashed at each power of two, which costs more than one of the script's reads.
local F = {dec_dl = dec_dl, chain_of = chain_of, derived_of = derived_of, whole = whole, find = find}
local W = {NOW = NOW, META = false, PLAIN = false, NEWDL = nil, HEADROOM = nil}
-- Lua makes every helper afresh on each run, which costs more than most redis.calls;
-- the rest of the helpers are made by the functions `lazy` registers ("groups") when F
-- is first asked for a name it does not hold: the groups not made yet are made, the
-- last registered first, until one has made it. (The includes a script names last are
-- the ones it needs.) LAZY has room for every group of a script made in advance.
local LAZY, NLAZY = {false, false, false, false, false, false, false, false}, 0
local function lazy(make)  -- returns the group's number, for make_now
  NLAZY = NLAZY + 1
  LAZY[NLAZY] = make
  return NLAZY
end
-- Makes group i now unless it was made: for a caller that knows which group it needs
-- (F's lookup would make every group registered after it first).
local function make_now(i)
  local make = LAZY[i]
  if make then
    LAZY[i] = false
    make()
  end
end
setmetatable(F, {__index = function(t, name)
  local i = NLAZY
  while i > 0 do
    local make = LAZY[i]
    if make then
      LAZY[i] = false
      make()
      local f = rawget(t, name)
      if f ~= nil then return f end
      i = NLAZY  -- (a group may add groups)
    else
      i = i - 1
    end
  end
  return nil
end})

-- Helpers a call seldom needs: made on first use (F's __index, see _core.lua).
lazy(function()
-- An error when meta says the namespace was written by another layout (no salt: new).
function F.layout_error(salt, v)
  if salt and v ~= '2' then
    return 'LAYOUT namespace ' .. KEYS[1] .. ' was written by layout ' .. (v or '1')
      .. ' of redis-thread-registry; this version reads layout ' .. '2'
      .. ' only: use the version that wrote it, or clear() the namespace (its threads are lost)'
  end
  return nil
end
end)
