-- _plain.lua: the start of a write's hot path: the digest that derives ids, and the
-- quick acceptance test of a plain write's arguments. A write script includes this file
-- first and answers the usual call (a chain that is there, due late enough) from a few
-- reads and what is made here, before _hot.lua's helpers exist.
--
-- Lua makes every function a script defines afresh on each run, and a closure with
-- upvalues costs more than one without. So this file makes only the small helpers a
-- touch calls, and the argument test, which needed six upvalues as a function, is
-- straight-line code. Anything it does not accept goes the full way, whose checks
-- report the error.
-- @include _base

-- The digest that derives ids: sha1hex on real servers (and the embedded one); a keyed
-- polynomial hash on plain fakeredis, which has none. Collisions are handled by the
-- override path either way, so only opacity depends on the digest.
local digest = redis.sha1hex
if not digest then
  local P = {67108859, 67108837, 67108819, 67108777, 67108763}
  local M = {16777619, 22222223, 19999999, 23456789, 17171717}
  digest = function(s)
    local h = {1, 7, 13, 29, 31}
    for from = 1, #s, 128 do
      local bytes = {string.byte(s, from, math.min(from + 127, #s))}
      for j = 1, #bytes do
        local x = bytes[j]
        for k = 1, 5 do h[k] = (h[k] * M[k] + x + 1) % P[k] end
      end
    end
    return string.format('%07x%07x%07x%07x%07x', h[1], h[2], h[3], h[4], h[5])
  end
end

-- A digest's first 32 hex digits as a UUIDv8 string: the 13th and 17th become the
-- version and variant digits (8), dashes (45) go between the groups. Two C calls and
-- one new string: five subs and a concatenation cost 1,800 instructions more.
local function as_uuid(hex)
  local a, b, c, d, e, f, g, h, i, j, k, l, _, n, o, p, _, r, s, t, u, v, w, x, y, z, A, B, C, D, E, F =
    string.byte(hex, 1, 32)
  return string.char(a, b, c, d, e, f, g, h, 45, i, j, k, l, 45, 56, n, o, p, 45, 56, r, s, t, 45,
    u, v, w, x, y, z, A, B, C, D, E, F)
end

-- Whether a hop is 1 to 256 bytes of printable ASCII (the usual hop: surely valid).
local function plain_hop(hop)
  return #hop >= 1 and #hop <= 256 and not string.find(hop, '[^\32-\126]')
end

-- Whether a stored value (6-byte deadline .. body) holds exactly `chain`: compared in
-- place (a plain find anchored by the lengths), without copying the body out.
local function holds(v, chain)
  return #v == #chain + 6 and string.find(v, chain, 7, true) == 7
end

-- Whether a value read (false: none) holds exactly `chain`, due at `at` or later.
local function holds_until(v, chain, at)
  return v ~= false and holds(v, chain) and dec_dl(v) >= at
end

-- A lowercase UUID string is 8-4-4-4-12 hex digits: one match of this shape, whose
-- position captures place the dashes (9, 14, 19, 24), tells (each C call costs more
-- than a comparison). valid_id (_hot.lua) uses it too.
local UUID_SHAPE = '^[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+$'

-- For a plain write (a ttl, a valid random id, a sweep count of 0 to 128): the deadline
-- it gives what it touches (PLAIN_DL) and the headroom (PLAIN_HR), which F.from_hot
-- hands to the full path: F.begin_write then checks nothing again; and the sweep count
-- (SWEEP). PLAIN_DL is nil for anything else, and in scripts whose arguments are not a
-- write's (this file reaches them through _write.lua; they never read these). A hot path
-- that answers a call with a sweep count keeps its answer in DONE, and the script sweeps
-- after its includes (sweep_after, _remove.lua) instead of going the full way.
local PLAIN_DL, PLAIN_HR, SWEEP, DONE
do
  local sweep, ttl, id = 0, tonumber(ARGV[1]), ARGV[2]
  if ARGV[3] ~= '0' then
    sweep = tonumber(ARGV[3])
    if sweep and (sweep % 1 ~= 0 or sweep < 1 or sweep > MAX_STEP) then sweep = nil end
  end
  -- (Arithmetic, not math.floor and math.min: each call of a library function costs
  -- more than the comparison. inf and nan fail `% 1 == 0`.)
  if sweep and ttl and ttl % 1 == 0 and ttl >= 1 and ttl <= 315360000000 and id and #id == 36 then
    local _, _, a, b, c, d = string.find(id, UUID_SHAPE)
    if a == 9 and b == 14 and c == 19 and d == 24 then
      local headroom = (ttl - ttl % 64) / 64
      if headroom > 1000 then headroom = 1000 end
      PLAIN_DL, PLAIN_HR, SWEEP = NOW + ttl, headroom, sweep
    end
  end
end
