-- _hot.lua: the helpers a write's hot path needs beyond _plain.lua's, for a new chain
-- (made without _write.lua's helpers, in one HSET) and for the full way. A write script
-- includes this file after answering the usual call from _plain.lua alone: a touch of
-- a live chain makes none of these closures (see _plain.lua), nor the forty-odd helpers
-- of _write.lua (they are made on first use, and making them costs more than the
-- reads). Every argument check here is a quick acceptance test only: anything it does
-- not accept goes the full way, whose checks report the error.
-- @include _plain

-- Whether id is a lowercase UUID string (UUID_SHAPE, _plain.lua).
local function valid_id(id)
  if #id ~= 36 then return false end
  local _, _, a, b, c, d = string.find(id, UUID_SHAPE)
  return a == 9 and b == 14 and c == 19 and d == 24
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
