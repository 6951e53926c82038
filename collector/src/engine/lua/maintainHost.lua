--[[
  Time-driven changes of one host (docs/design.md §2 rules 10 and 3), found by tick: a lapsed lease turns the host
  stale; a host stale for hostRetireSeconds since its last renewal is retired; a host indexed under
  another countDisconnected than the farm's now is indexed again. Conditions are checked again
  here, so any number of collectors may run it.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 host       host name, lower case
    5 retireMs   hostRetireSeconds in ms

  Output:
    {lapsed, retired}   1 where that happened, else 0
]]
--- @include "keys"
--- @include "util"
--- @include "farm-record"
--- @include "users"
--- @include "hosts"

local now = nowMs()
beginFarm(now)
local host = loadHost(ARGV[4])
syncIndex(host)
local lapsed, retired = 0, 0
local lease = tonumber(rcall('ZSCORE', F.lease, host.name))
if lease ~= nil and lease <= now then
  rcall('ZREM', F.lease, host.name)
  lease = nil
end
if lease == nil and host.live then
  setLive(host, false, now)
  lapsed = 1
end
if not host.live and not host.retired then
  local seen = tonumber(rcall('ZSCORE', F.seen, host.name))
  if seen ~= nil and seen <= now - tonumber(ARGV[5]) then
    retireHost(host)
    retired = 1
  end
end
settle(now)
if lapsed == 1 or retired == 1 then changed() end
saveHost(host)
saveFarm()
return { lapsed, retired }
