--[[
  Applies one snapshot or events frame of an agent's stream, atomically (docs/design.md §3).

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch         the farm's epoch the connection saw at hello
    5 owner         the connection's id
    6 host          host name, lower case
    7 stream        the agent's stream
    8 leaseMs       lease length (ms)
    9 maxSessions   most connections a host may hold (limits.maxSessions)
   10 type          'events' or 'snapshot'
   11 items         JSON, one flat array: the fields of each item one after another, as many as
                    its kind has (an array or object per item would cost a table each to decode)
                    events:   seq, 'u', json, session...   an upsert
                              seq, 'e', id                 an end
                              seq, 'x'                     rejected by validation, skipped but its
                                                           seq counts as applied
                    snapshot: json, session...             each session
                    json: the session's canonical JSON (what is stored); session...: the same,
                    decoded with the frame so that no session is decoded twice, as its id, user,
                    admin, kind, via, state and since
   12 snapshotSeq   the snapshot's seq, '' for events
   13 farmMaxSessions       most connections the farm's hosts may hold together (maxSessions)
   14 maxNewUsersPerMinute  most users new to the farm in a rolling minute (includes/quotas.lua)

  Output:
    {'ok', prevSeq, lastSeq, applied, duplicates, full, farmFull, newUsers, micros, waiting}
                    everything applied or a duplicate
    {'gap', prevSeq, lastSeq, applied, duplicates, full, farmFull, newUsers, micros, waiting}
                    applied up to lastSeq, stopped at a seq gap
      full:     seqs of upserts skipped because the host already held maxSessions connections
      farmFull: seqs of upserts of new connections skipped because the farm held farmMaxSessions;
                or the snapshot's seq, when it would have taken the farm above them
      newUsers: seqs of upserts skipped because their user would have come new to the farm beyond
                maxNewUsersPerMinute; or the snapshot's seq, when its new users would have
      A snapshot over a quota is refused whole: the host keeps what it held but the sessions the
      snapshot no longer lists (those end), and its seq counts as applied (the agent's stream goes on).
      micros:   how long this script ran, by Redis's clock (µs): what the farm's script-time budget
                counts, not the time the frame waited behind other farms' scripts
      waiting:  seqs of upserts a retired host sent, counted as applied but not held: its events
                wait for the snapshot that follows every connect
      Only the upserts with prevSeq < seq <= lastSeq that are in none of these lists were applied
      (and a snapshot whose seq is above prevSeq and in none of them): their users are the month's
      distinct users (engine/month-users.ts).
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
local maxSessions = tonumber(ARGV[9])
local farmMax, newMax = tonumber(ARGV[13]), tonumber(ARGV[14])
local applied, duplicates, full, farmFull, newUsers, waiting = 0, 0, {}, {}, {}, {}
-- A snapshot refused by a quota: nothing of it applied but the ends of what it no longer lists.
local refusedWhole = false
-- The held sessions a snapshot no longer lists: they end, refused or not.
local ended = {}
local result = 'ok'
local flat = cjson.decode(ARGV[11])
local size = #flat

-- How many fields an event item has, by its op; an upsert's session starts at its fourth.
local WIDTH = { u = 3 + SESSION_FIELDS, e = 3, x = 2 }

if ARGV[10] == 'events' then
  if not host.retired then
    local ids, users = {}, {}
    local k = 1
    while k <= size do
      local op = flat[k + 1]
      if flat[k] > host.seq then
        if op == 'u' then
          -- The session's id and user, its first two fields.
          ids[#ids + 1] = flat[k + 3]
          users[#users + 1] = flat[k + 4]
        elseif op == 'e' then
          ids[#ids + 1] = flat[k + 2]
        end
      end
      k = k + WIDTH[op]
    end
    prefetchItems(host, ids, users)
  end
  local k = 1
  while k <= size do
    local seq, op = flat[k], flat[k + 1]
    if seq <= host.seq then
      duplicates = duplicates + 1
    elseif seq == host.seq + 1 then
      -- A retired host's events wait for the snapshot that follows every connect.
      if host.retired then
        if op == 'u' then waiting[#waiting + 1] = seq end
      else
        if op == 'u' then
          local rec = sessionAt(flat, k + 3)
          -- A new connection meets the host's cap, then the farm's, then the new users' budget.
          local refused = nil
          if not heldJson(rec.id) then
            if connsHeld() >= maxSessions then
              refused = full
            elseif farmSessions() >= farmMax then
              refused = farmFull
            elseif not consumesOnFarm(rec.user) and not cameNewLately(rec.user, now) then
              if newUsersRoom(now, newMax) > 0 then admitNewUsers({ rec.user }, now) else refused = newUsers end
            end
          end
          if refused then
            refused[#refused + 1] = seq
          else
            upsertConn(host, rec, flat[k + 2])
          end
        elseif op == 'e' then
          endConn(host, flat[k + 2])
        end
        settle(now)
      end
      host.seq = seq
      applied = applied + 1
    else
      result = 'gap'
      break
    end
    k = k + WIDTH[op]
  end
else
  local seq = tonumber(ARGV[12])
  if seq <= host.seq then
    duplicates = 1
  else
    -- docs/design.md §2 rule 6: the ends of what the snapshot no longer lists, then its sessions in
    -- order (includes/snapshot.lua).
    local correcting = correctingSnapshot(host)
    local heldIds = rcall('HKEYS', H.conns)
    local recs, jsons, listedIds, listedUsers, listed = readSessions(flat)
    -- What the prefetch reads: the held connections and the listed ones, and the listed users (it
    -- adds the held connections' users).
    local ids, users = {}, {}
    for i = 1, #heldIds do ids[i] = heldIds[i] end
    for i = 1, #listedIds do
      ids[#ids + 1] = listedIds[i]
      users[i] = listedUsers[i]
    end
    -- The quotas, before anything is written; the sessions cap before the prefetch, so that a
    -- snapshot refused by it costs no more reads.
    local fresh = {}
    if overSessions(heldIds, #recs, farmMax) then
      refusedWhole = true
      farmFull[1] = seq
    else
      prefetchItems(host, ids, users, listed)
      local over
      fresh, over = newUsersOver(host, heldIds, distinct(listedUsers), newMax, now)
      if over then
        refusedWhole = true
        newUsers[1] = seq
      end
    end
    -- Refused whole, the snapshot's ends apply all the same: an end never grows the farm nor brings
    -- a user, and a refused snapshot must leave no ended session counted until the host's next
    -- accepted one (which, while the farm stays over a quota, may not come).
    ended = endedIds(heldIds, listed)
    if refusedWhole then
      -- Refused before the prefetch (or with it): read what the ends need.
      prefetchItems(host, ended, {})
    else
      acceptSnapshot(host, fresh, now)
    end
    endItems(host, ended, correcting, now)
    if not refusedWhole then
      upsertItems(host, recs, jsons, correcting, now)
      host.synced = true
    end
    -- A big snapshot a connection of this host left half-applied in slices is replaced.
    if host.pending then rcall('HDEL', H.host, 'pending') end
    host.seq = seq
    applied = 1
  end
end

if applied > 0 and (not refusedWhole or #ended > 0) then
  farm.lastUpdate = now
  changed()
end
saveHost(host)
saveFarm()
return { result, prev, host.seq, applied, duplicates, full, farmFull, newUsers, elapsedMicros(), waiting }
