--[[
  Renews the lease of a host for the connection that owns it (a heartbeat, docs/design.md §2 rule 10).

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch     the farm's epoch the connection saw at hello
    5 owner     the connection's id
    6 host      host name, lower case
    7 leaseMs   lease length (ms)

  Output:
    'ok'
    'superseded'  another connection owns the host; nothing written
    'epoch'       the farm's epoch is not the one given; nothing written
]]
--- @include "keys"
--- @include "util"
--- @include "farm-record"
--- @include "users"
--- @include "hosts"

if rcall('GET', F.epoch) ~= ARGV[4] then return 'epoch' end
if rcall('HGET', H.host, 'owner') ~= ARGV[5] then return 'superseded' end

local now = nowMs()
if rcall('HGET', H.host, 'live') == '1' then
  -- The common case: a lease and a time stamp, no counting changes.
  rcall('ZADD', F.lease, int(now + tonumber(ARGV[7])), ARGV[6])
  rcall('ZADD', F.seen, int(now), ARGV[6])
  return 'ok'
end
beginFarm(now)
local host = loadHost(ARGV[6])
syncIndex(host)
renewLease(host, now, tonumber(ARGV[7]))
settle(now)
changed()
saveHost(host)
saveFarm()
return 'ok'
