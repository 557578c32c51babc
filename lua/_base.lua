-- _base.lua: what every script that reads the namespace's threads needs before any
-- table or helper of _core.lua: the time (_now.lua), and reading a stored value (a
-- 6-byte deadline, then a body: see _core.lua for the layout).
-- @include _now

local function dec_dl(s)
  local a, b, c, d, e, f = string.byte(s, 1, 6)
  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f
end

-- The chain of a body.
local function chain_of(body)
  if string.byte(body, 1) == 0 then return string.sub(body, 38) end
  return body
end
