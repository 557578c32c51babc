--[[
  clear: remove the whole namespace, and only it. UNLINK frees large hashes in a
  background thread, so the server is not blocked however big the namespace is.

  KEYS[1] meta, KEYS[2] threads, KEYS[3] overrides   (see _core.lua)

  Reply: the number of keys removed
]]
return redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
