--[[
  Releases a host's lease at once when its owning connection closes: the host turns stale and its
  connections keep counting, unverified (rule 10). A connection that no longer owns the host
  changes nothing.

  Input:
    KEYS[1..14] farm keys, KEYS[15..17] host keys
    ARGV[1] owner   ARGV[2] host (lower case)
    ARGV[3] seats   ARGV[4] countDisconnected '1'/'0'   ARGV[5] overuse grace seed (ms) or ''

  Output:
    'ok'          released
    'superseded'  the connection did not own the host
]]
--- @include "farm-state"

if rcall('HGET', H.state, 'owner') ~= ARGV[1] then return 'superseded' end

local now = nowMs()
beginFarm(now, tonumber(ARGV[3]), argSeed(ARGV[5]))
local host = loadHost(ARGV[2], ARGV[4] == '1')
rcall('HDEL', H.state, 'owner')
rcall('ZREM', F.lease, host.name)
setLive(host, false, now)
settle(now)
saveHost(host)
saveFarm()
return 'ok'
