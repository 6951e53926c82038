--[[
  Forgets a host: its contributions leave the farm's counts and every key and member about it goes,
  its binding to a host key too, so a host of that name that comes back is a new host. Run by tick for retired hosts not seen for
  forgetHostsAfterDays (the condition is checked again here), or at once by
  `rasmon-collector forget-host`.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 host       host name, lower case
    5 forgetMs   forget only a retired host not seen for this long (ms); '' forgets it whatever its state

  Output:
    {'forgotten', wasLive}   wasLive: 1 when an agent held its lease (it will come back as a new host)
    {'unknown'}              no such host
    {'kept'}                 not due yet
]]
--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "farm-record"
--- @include "users"
--- @include "connections"
--- @include "hosts"

local name = ARGV[4]
local seen = tonumber(rcall('ZSCORE', F.seen, name))
if seen == nil and rcall('EXISTS', H.host) == 0 then return { 'unknown' } end

local now = nowMs()
if ARGV[5] ~= '' then
  local retired = rcall('SISMEMBER', F.retired, name) == 1
  if not retired or seen == nil or seen > now - tonumber(ARGV[5]) then return { 'kept' } end
end

beginFarm(now)
local host = loadHost(name)
local wasLive = host.live and 1 or 0
syncIndex(host)
if not host.retired then unindexHost(host) end
settle(now)
countDelta = 0
rcall('DEL', H.host, H.conns, H.elig)
creset(connsHash)
records, connCount = {}, 0
rcall('ZREM', F.lease, name)
rcall('ZREM', F.seen, name)
rcall('ZREM', F.stale, name)
rcall('SREM', F.retired, name)
rcall('SREM', F.cdOff, name)
rcall('HDEL', F.agents, name)
rcall('HDEL', F.counts, name)
rcall('HDEL', F.sources, name)
-- A forgotten host comes back as a new host: the first hello binds it anew.
rcall('HDEL', F.bindings, name)
changed()
saveFarm()
return { 'forgotten', wasLive }
