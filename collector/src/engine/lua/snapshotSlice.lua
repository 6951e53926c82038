--[[
  One slice of a big snapshot begun by beginSnapshot.lua: some of the connections it ends, or some
  of its sessions, each applied and settled as an item, as applyFrame.lua applies a whole snapshot
  (docs/design.md §2 rule 6: the ends first, then the sessions in order). Other hosts' items may run
  between two slices: an order of independent hosts' items, as their events interleave. The last
  slice sets the host's seq.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch         the farm's epoch the connection saw at hello
    5 owner         the connection's id
    6 host          host name, lower case
    7 stream        the agent's stream
    8 leaseMs       lease length (ms)
    9 seq           the snapshot's seq
   10 part          'ends' or 'sessions'
   11 items         JSON, one flat array: ends: the ids; sessions: as applyFrame.lua's snapshot
                    items (json, then id, user, admin, kind, via, state, since of each)
   12 correcting    '1' when the snapshot's changes count as corrections (beginSnapshot's answer)
   13 last          '1' for the snapshot's last slice
   14 accepted      '1' when no quota refused the snapshot: its last slice marks the host in step

  Output:
    {'ok', micros}
    {'epoch'}       the farm's data was lost or recreated since hello; nothing written
    {'superseded'}  another connection owns the host, or the snapshot is no longer the one its
                    connection is applying (another replaced it, or the host retired meanwhile);
                    nothing written
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

local host, now, answer = openFrame(ARGV[5] .. ' ' .. ARGV[9])
if not host then return answer end

local correcting = ARGV[12] == '1'
local flat = cjson.decode(ARGV[11])
local changes = 0
if ARGV[10] == 'ends' then
  prefetchItems(host, flat, {})
  endItems(host, flat, correcting, now)
  changes = #flat
else
  local recs, jsons, ids, users, listed = readSessions(flat)
  prefetchItems(host, ids, users, listed)
  upsertItems(host, recs, jsons, correcting, now)
  changes = #recs
end
if ARGV[13] == '1' then
  host.seq = tonumber(ARGV[9])
  if ARGV[14] == '1' then host.synced = true end
  rcall('HDEL', H.host, 'pending')
end
if changes > 0 or (ARGV[13] == '1' and ARGV[14] == '1') then
  farm.lastUpdate = now
  changed()
end
saveHost(host)
saveFarm()
return { 'ok', elapsedMicros() }
