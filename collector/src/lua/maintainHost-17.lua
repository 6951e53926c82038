--[[
  Time-driven changes of one host (rules 10 and 3), found by tick: a lapsed lease turns the host
  stale; a host stale for hostRetireSeconds since its last renewal is retired; a host indexed under
  another countDisconnected than the farm's now is indexed again. Conditions are checked again
  here, so any number of collectors may run it.

  Input:
    KEYS[1..14] farm keys, KEYS[15..17] host keys
    ARGV[1] host (lower case)   ARGV[2] hostRetireSeconds in ms
    ARGV[3] seats   ARGV[4] countDisconnected '1'/'0'   ARGV[5] overuse grace seed (ms) or ''

  Output:
    {lapsed, retired}   1 where that happened, else 0
]]
--- @include "farm-state"

local now = nowMs()
beginFarm(now, tonumber(ARGV[3]), argSeed(ARGV[5]))
local host = loadHost(ARGV[1], ARGV[4] == '1')
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
  if seen ~= nil and seen <= now - tonumber(ARGV[2]) then
    retireHost(host)
    retired = 1
  end
end
settle(now)
saveHost(host)
saveFarm()
return { lapsed, retired }
