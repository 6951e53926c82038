--[[
  Renews the lease of a host for the connection that owns it (a heartbeat, rule 10).

  Input:
    KEYS[1..14] farm keys, KEYS[15..17] host keys
    ARGV[1] epoch   ARGV[2] owner   ARGV[3] host (lower case)   ARGV[4] lease length (ms)
    ARGV[5] seats   ARGV[6] countDisconnected '1'/'0'   ARGV[7] overuse grace seed (ms) or ''

  Output:
    'ok'
    'superseded'  another connection owns the host; nothing written
    'epoch'       the farm's epoch is not the one given; nothing written
]]
--- @include "farm-state"

if rcall('GET', F.epoch) ~= ARGV[1] then return 'epoch' end
if rcall('HGET', H.state, 'owner') ~= ARGV[2] then return 'superseded' end

local now = nowMs()
if rcall('HGET', H.state, 'live') == '1' then
  -- The common case: a lease and a time stamp, no counting changes.
  rcall('ZADD', F.lease, int(now + tonumber(ARGV[4])), ARGV[3])
  rcall('ZADD', F.seen, int(now), ARGV[3])
  return 'ok'
end
beginFarm(now, tonumber(ARGV[5]), argSeed(ARGV[7]))
local host = loadHost(ARGV[3], ARGV[6] == '1')
renewLease(host, now, tonumber(ARGV[4]))
settle(now)
saveHost(host)
saveFarm()
return 'ok'
