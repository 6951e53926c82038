--[[
  Releases a host's lease at once when its owning connection closes: the host turns stale and its
  connections keep counting, unverified (docs/design.md §2 rule 10). A connection that no longer owns the host
  changes nothing. Not run for connections a collector's drain closes: those keep their lease.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 owner   the connection's id
    5 host    host name, lower case

  Output:
    'ok'          released
    'superseded'  the connection did not own the host
]]
--- @include "keys"
--- @include "util"
--- @include "farm-record"
--- @include "users"
--- @include "hosts"

if rcall('HGET', H.host, 'owner') ~= ARGV[4] then return 'superseded' end

local now = nowMs()
beginFarm(now)
local host = loadHost(ARGV[5])
syncIndex(host)
rcall('HDEL', H.host, 'owner')
rcall('ZREM', F.lease, host.name)
setLive(host, false, now)
settle(now)
changed()
saveHost(host)
saveFarm()
return 'ok'
