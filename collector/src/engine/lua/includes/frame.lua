--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "farm-record"
--- @include "users"
--- @include "connections"
--- @include "hosts"

-- What the scripts that apply an agent connection's frames (applyFrame, beginSnapshot,
-- snapshotSlice) start and end with. Their ARGV 4-8 are the same: epoch, owner, host, stream, leaseMs.

local frameStarted = rcall('TIME')

-- The host the connection claims, its lease renewed, and the time; or nil, nil and the answer when the
-- farm's data was lost since hello ('epoch') or the host is no longer the connection's
-- ('superseded'): another connection owns it, or, with `pending`, it is not applying that snapshot
-- in slices (a retired host applies none). Nothing is written when it answers.
local function openFrame(pending)
  if rcall('GET', F.epoch) ~= ARGV[4] then return nil, nil, { 'epoch' } end
  local host = loadHost(ARGV[6])
  if host.owner ~= ARGV[5] or host.stream ~= ARGV[7] then return nil, nil, { 'superseded' } end
  if pending and (host.pending ~= pending or host.retired) then return nil, nil, { 'superseded' } end
  local now = nowMs()
  beginFarm(now)
  syncIndex(host)
  renewLease(host, now, tonumber(ARGV[8]))
  settle(now)
  return host, now
end

-- How long the script has run, by Redis's clock (µs): what the farm's script-time budget counts.
local function elapsedMicros()
  local t = rcall('TIME')
  return (tonumber(t[1]) - tonumber(frameStarted[1])) * 1000000 + tonumber(t[2]) - tonumber(frameStarted[2])
end
