-- _base.lua: what every script that reads the namespace's threads needs first, before
-- any table or helper of _core.lua: the time, and reading a stored value (a 6-byte
-- deadline, then a body: see _core.lua for the layout). A script's hot path (_hot.lua)
-- runs on these alone.

-- The most entries one sweep or gc step examines: a step over the costliest entries
-- (expired, with overrides) stays well under a millisecond (docs/design.md, "Bounded
-- steps"). registry/operations.py's GC_PASS_STEP is the same number.
local MAX_STEP = 128

local NOW
do
  local t = redis.call('TIME')
  NOW = t[1] * 1000 + math.floor(t[2] / 1000)
end

local function dec_dl(s)
  local a, b, c, d, e, f = string.byte(s, 1, 6)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end

-- The chain of a body.
local function chain_of(body)
  if string.byte(body, 1) == 0 then return string.sub(body, 38) end
  return body
end

