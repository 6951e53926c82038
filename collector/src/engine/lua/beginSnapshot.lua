--[[
  Begins a big snapshot of an agent's stream, applied in slices (docs/design.md §3, "Big snapshots
  in slices"): checks the farm's quotas for the whole snapshot and works out what it ends, as
  applyFrame.lua does before it writes; the ends and the sessions then go in snapshotSlice.lua
  calls, each a short script, so that no farm's big snapshot holds Redis for the whole of it.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch         the farm's epoch the connection saw at hello
    5 owner         the connection's id
    6 host          host name, lower case
    7 stream        the agent's stream
    8 leaseMs       lease length (ms)
    9 seq           the snapshot's seq
   10 listing       JSON: the sessions' ids, then their users, each user once
   11 farmMaxSessions       most connections the farm's hosts may hold together (maxSessions)
   12 maxNewUsersPerMinute  most users new to the farm in a rolling minute (includes/quotas.lua)

  Output:
    {'duplicate', prevSeq, micros}
                    the seq is not above the host's: nothing to apply, nothing written
    {'begun', prevSeq, refusal, correcting, ended, micros}
                    refusal: '' (accepted), 'sessions' or 'newUsers' (refused whole over that
                    quota: only its ends apply); correcting: 1 when the snapshot's changes count as
                    corrections; ended: the ids of the held connections it no longer lists, for the
                    slices to end. An accepted snapshot's new users are admitted to the minute's
                    budget here, and a retired host is back. The host's `pending` field names the
                    connection and seq until the last slice.
    {'epoch'}       the farm's data was lost or recreated since hello; nothing written
    {'superseded'}  another connection owns the host; nothing written
]]
--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "farm-record"
--- @include "users"
--- @include "connections"
--- @include "hosts"
--- @include "quotas"
--- @include "snapshot"
--- @include "frame"

local host, now, answer = openFrame()
if not host then return answer end

local prev = host.seq
local seq = tonumber(ARGV[9])
if seq <= host.seq then
  saveHost(host)
  saveFarm()
  return { 'duplicate', prev, elapsedMicros() }
end

local correcting = correctingSnapshot(host)
local heldIds = rcall('HKEYS', H.conns)
local listing = cjson.decode(ARGV[10])
local ids, users = listing[1], listing[2]
local listed = {}
for i = 1, #ids do listed[ids[i]] = true end
local refusal = ''
local fresh = {}
if overSessions(heldIds, #ids, tonumber(ARGV[11])) then
  refusal = 'sessions'
else
  cprefetch(usersHash, users)
  local over
  fresh, over = newUsersOver(host, heldIds, users, tonumber(ARGV[12]), now)
  if over then refusal = 'newUsers' end
end
if refusal == '' then acceptSnapshot(host, fresh, now) end
rcall('HSET', H.host, 'pending', ARGV[5] .. ' ' .. ARGV[9])
saveHost(host)
saveFarm()
return { 'begun', prev, refusal, correcting and 1 or 0, endedIds(heldIds, listed), elapsedMicros() }
