-- _hot.lua: what the hot path of a write needs, made before (and without) _write's
-- helpers. Most touches find the thread already there and due late enough (within the
-- headroom of what the touch would give it: see _write.lua), and write nothing; such a
-- call answers from a few reads and these locals, and never makes the forty-odd
-- helpers of _write.lua (they are made on first use, and making them costs more than
-- the reads). Every argument check here is a quick acceptance test only: anything it
-- does not accept goes the full way, whose checks report the error. A write script
-- includes this file first and runs its hot path before _core.lua makes its tables and
-- helpers: a call that ends there makes none of them.
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

-- A digest as a UUIDv8 string (subs cost less than one gsub here).
local function as_uuid(hex)
  return string.sub(hex, 1, 8) .. '-' .. string.sub(hex, 9, 12) .. '-8' .. string.sub(hex, 14, 16)
    .. '-8' .. string.sub(hex, 18, 20) .. '-' .. string.sub(hex, 21, 32)
end

-- Whether id is a lowercase UUID string (8-4-4-4-12 hex digits): one match, whose
-- position captures place the dashes (each C call costs more than a comparison).
local function valid_id(id)
  if #id ~= 36 then return false end
  local _, _, a, b, c, d = string.find(id, '^[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+()%-[0-9a-f]+$')
  return a == 9 and b == 14 and c == 19 and d == 24
end

-- For a plain write (a ttl, a valid random id, a sweep count of 0 to 128): the deadline
-- it gives what it touches, and the headroom (kept in PLAIN_DL and PLAIN_HR, which
-- F.from_hot hands to the full path: F.begin_write then checks nothing again; and the
-- sweep count in SWEEP). nil for anything else. A hot path that answers a call with a
-- sweep count keeps its answer in DONE, and the script sweeps after its includes
-- (sweep_after, _remove.lua) instead of going the full way.
local PLAIN_DL, PLAIN_HR, SWEEP, DONE
local function plain_write()
  local sweep = 0
  if ARGV[3] ~= '0' then
    sweep = tonumber(ARGV[3])
    if not sweep or sweep % 1 ~= 0 or sweep < 1 or sweep > MAX_STEP then return nil end
  end
  local ttl = tonumber(ARGV[1])
  -- (Arithmetic, not math.floor and math.min: each call of a library function costs
  -- more than the comparison. inf and nan fail `% 1 == 0`.)
  if not ttl or ttl % 1 ~= 0 or ttl < 1 or ttl > 315360000000 or not valid_id(ARGV[2]) then
    return nil
  end
  local headroom = (ttl - ttl % 64) / 64
  if headroom > 1000 then headroom = 1000 end
  PLAIN_DL, PLAIN_HR, SWEEP = NOW + ttl, headroom, sweep
  return PLAIN_DL, PLAIN_HR
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

-- A deadline (ms) as the 6 big-endian bytes a stored value starts with.
local function enc_dl(ms)
  local f = ms % 256
  ms = (ms - f) / 256
  local e = ms % 256
  ms = (ms - e) / 256
  local d = ms % 256
  ms = (ms - d) / 256
  local c = ms % 256
  ms = (ms - c) / 256
  local b = ms % 256
  return string.char((ms - b) / 256 % 256, b, c, d, e, f)
end

-- The plain creation of a chain deriving d, after a plain write's hot path read d's
-- mapping and floor fields and found neither (the usual new chain), is made here,
-- without _write.lua's helpers, in two steps; when either says no, the full path
-- decides from the start (it reads again; nothing was written).

-- The deadline it gives (see F.give): nil when that would need a push of the parent
-- (due at `pdl`; nil when the parent is permanent or there is none) or a raise of the
-- keys' native expiry (meta's x, `x_at`), which the full path makes.
local function plain_deadline(pdl, x_at)
  local dl, headroom = PLAIN_DL, PLAIN_HR
  if pdl and pdl < dl then
    if pdl < dl - headroom then return nil end
    dl = pdl
  end
  if dl > x_at then return nil end
  return dl
end

-- Whether nothing else claims d: no permanent mapping or floor in meta, no override.
-- `more` names one more meta field to read in the same HMGET (its value is returned).
local function unclaimed(d, more)
  local m
  if more then
    m = redis.call('HMGET', KEYS[1], 'P' .. d, 'Q' .. d, more)
  else
    m = redis.call('HMGET', KEYS[1], 'P' .. d, 'Q' .. d)
  end
  return not m[1] and not m[2] and redis.call('HEXISTS', KEYS[3], d) == 0, m[3]
end
