--[[
  Applies one snapshot or events frame of an agent's stream, atomically (docs/design.md §3).

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/farm-state.lua), then
    4 epoch         the farm's epoch the connection saw at hello
    5 owner         the connection's id
    6 host          host name, lower case
    7 stream        the agent's stream
    8 leaseMs       lease length (ms)
    9 maxSessions   most connections a host may hold (limits.maxSessions)
   10 type          'events' or 'snapshot'
   11 items         events: JSON [[seq, 'u', json, session] | [seq, 'e', id] | [seq, 'x'], ...]
                    ('x': rejected by validation, skipped but its seq counts as applied)
                    snapshot: JSON [[json, session], ...]
                    json: the session's canonical JSON (what is stored); session: the same, decoded
                    with the frame, so that no session is decoded twice
   12 snapshotSeq   the snapshot's seq, '' for events

  Output:
    {'ok', prevSeq, lastSeq, applied, duplicates, full}   everything applied or a duplicate
    {'gap', prevSeq, lastSeq, applied, duplicates, full}  applied up to lastSeq, stopped at a seq gap
      full: seqs of upserts skipped because the host already held maxSessions connections
    {'epoch'}       the farm's data was lost or recreated since hello; nothing written
    {'superseded'}  another connection owns the host; nothing written
]]
--- @include "farm-state"

if rcall('GET', F.epoch) ~= ARGV[4] then return { 'epoch' } end
local host = loadHost(ARGV[6])
if host.owner ~= ARGV[5] or host.stream ~= ARGV[7] then return { 'superseded' } end

local now = nowMs()
beginFarm(now)
syncIndex(host)
renewLease(host, now, tonumber(ARGV[8]))
settle(now)

local prev = host.seq
local maxSessions = tonumber(ARGV[9])
local applied, duplicates, full = 0, 0, {}
local result = 'ok'
local items = cjson.decode(ARGV[11])

-- Everything the frame will read, in one HMGET per hash: its connections, then their users.
local function prefetch(ids, recs)
  cprefetch(connsHash, ids)
  local users = {}
  for i = 1, #recs do users[i] = recs[i].user end
  for i = 1, #ids do
    local held = heldRecord(ids[i])
    if held then users[#users + 1] = held.user end
  end
  cprefetch(usersHash, users)
  if host.live then cprefetch(liveHash, users) end
end

if ARGV[10] == 'events' then
  if not host.retired then
    local ids, recs = {}, {}
    for i = 1, #items do
      local item = items[i]
      if item[1] > host.seq then
        if item[2] == 'u' then
          ids[#ids + 1] = item[4].id
          recs[#recs + 1] = item[4]
        elseif item[2] == 'e' then
          ids[#ids + 1] = item[3]
        end
      end
    end
    prefetch(ids, recs)
  end
  for i = 1, #items do
    local item = items[i]
    local seq = item[1]
    if seq <= host.seq then
      duplicates = duplicates + 1
    elseif seq == host.seq + 1 then
      -- A retired host's events wait for the snapshot that follows every connect.
      if not host.retired then
        if item[2] == 'u' then
          local rec = item[4]
          if not heldJson(rec.id) and connsHeld() >= maxSessions then
            full[#full + 1] = seq
          else
            upsertConn(host, rec, item[3])
          end
        elseif item[2] == 'e' then
          endConn(host, item[3])
        end
        settle(now)
      end
      host.seq = seq
      applied = applied + 1
    else
      result = 'gap'
      break
    end
  end
else
  local seq = tonumber(ARGV[12])
  if seq <= host.seq then
    duplicates = 1
  else
    -- docs/design.md §2 rule 6: the ends of what the snapshot no longer lists, then its sessions in order.
    local correcting = host.synced and not host.retired
    if host.retired then
      host.retired = false
      rcall('SREM', F.retired, host.name)
    end
    local heldIds = rcall('HKEYS', H.conns)
    local listed, ids, recs = {}, {}, {}
    for i = 1, #heldIds do ids[i] = heldIds[i] end
    for i = 1, #items do
      local pair = items[i]
      listed[pair[2].id] = true
      ids[#ids + 1] = pair[2].id
      recs[#recs + 1] = pair[2]
    end
    prefetch(ids, recs)
    for i = 1, #heldIds do
      local id = heldIds[i]
      if not listed[id] then
        if correcting then farm.corrections = farm.corrections + 1 end
        endConn(host, id)
        settle(now)
      end
    end
    for i = 1, #items do
      local json, rec = items[i][1], items[i][2]
      if correcting and heldJson(rec.id) ~= json then
        farm.corrections = farm.corrections + 1
      end
      upsertConn(host, rec, json)
      settle(now)
    end
    host.synced = true
    host.seq = seq
    applied = 1
  end
end

if applied > 0 then
  farm.lastUpdate = now
  changed()
end
saveHost(host)
saveFarm()
return { result, prev, host.seq, applied, duplicates, full }
