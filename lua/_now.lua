-- _now.lua: the time (one TIME), and the bound of a sweep, for every script that reads
-- the namespace's threads. Straight-line code: nothing here makes a closure (Lua makes
-- each function a script defines afresh on every run; see _plain.lua).

-- The most entries one sweep or gc step examines: a step over the costliest entries
-- (expired, with overrides) stays well under a millisecond (docs/design.md, "Bounded
-- steps"). registry/operations.py's GC_PASS_STEP is the same number.
local MAX_STEP = 128

local NOW
do
  local t = redis.call('TIME')
  NOW = t[1] * 1000 + math.floor(t[2] / 1000)
end
