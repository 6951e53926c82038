--[[
  Applies one snapshot or events frame of an agent's stream, atomically (DESIGN §3).

  Input:
    KEYS[1..14] farm keys, KEYS[15..17] host keys (see includes/farm-state.lua)
    ARGV[1] epoch the connection saw at hello
    ARGV[2] owner: the connection's id
    ARGV[3] host (lower case)
    ARGV[4] stream
    ARGV[5] seats
    ARGV[6] countDisconnected: '1' or '0'
    ARGV[7] overuse grace seed (ms) or ''
    ARGV[8] lease length (ms)
    ARGV[9] 'events' or 'snapshot'
    ARGV[10] events: JSON [[seq, 'u', sessionJson] | [seq, 'e', id] | [seq, 'x'], ...]
             ('x': rejected by validation, skipped but its seq counts as applied)
             snapshot: JSON [sessionJson, ...]
    ARGV[11] snapshot seq (snapshot only)
    ARGV[12] most connections a host may hold (limits.maxSessions)

  Output:
    {'ok', prevSeq, lastSeq, applied, duplicates, full}   everything applied or a duplicate
    {'gap', prevSeq, lastSeq, applied, duplicates, full}  applied up to lastSeq, stopped at a seq gap
      full: seqs of upserts skipped because the host already held maxSessions connections
    {'epoch'}       the farm's data was lost or recreated since hello; nothing written
    {'superseded'}  another connection owns the host; nothing written
]]
--- @include "farm-state"

if rcall('GET', F.epoch) ~= ARGV[1] then return { 'epoch' } end
local owner = rcall('HGET', H.state, 'owner')
if owner ~= ARGV[2] or rcall('HGET', H.state, 'stream') ~= ARGV[4] then return { 'superseded' } end

local now = nowMs()
beginFarm(now, tonumber(ARGV[5]), argSeed(ARGV[7]))
local host = loadHost(ARGV[3], ARGV[6] == '1')
renewLease(host, now, tonumber(ARGV[8]))
settle(now)

local prev = host.seq
local maxSessions = tonumber(ARGV[12])
local applied, duplicates, full = 0, 0, {}
local result = 'ok'

if ARGV[9] == 'events' then
  for _, item in ipairs(cjson.decode(ARGV[10])) do
    local seq = item[1]
    if seq <= host.seq then
      duplicates = duplicates + 1
    elseif seq == host.seq + 1 then
      -- A retired host's events wait for the snapshot that follows every connect.
      if not host.retired then
        if item[2] == 'u' then
          local id = cjson.decode(item[3]).id
          if rcall('HEXISTS', H.conns, id) == 0 and rcall('HLEN', H.conns) >= maxSessions then
            full[#full + 1] = seq
          else
            upsertConn(host, item[3])
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
  local seq = tonumber(ARGV[11])
  if seq <= host.seq then
    duplicates = 1
  else
    -- Rule 6: the ends of what the snapshot no longer lists, then its sessions in order.
    local correcting = host.synced and not host.retired
    if host.retired then
      host.retired = false
      rcall('SREM', F.retired, host.name)
    end
    local sessions = cjson.decode(ARGV[10])
    local listed = {}
    for i, json in ipairs(sessions) do
      local id = cjson.decode(json).id
      listed[id] = json
    end
    for _, id in ipairs(rcall('HKEYS', H.conns)) do
      if listed[id] == nil then
        if correcting then farm.corrections = farm.corrections + 1 end
        endConn(host, id)
        settle(now)
      end
    end
    for _, json in ipairs(sessions) do
      local id = cjson.decode(json).id
      if correcting and rcall('HGET', H.conns, id) ~= json then
        farm.corrections = farm.corrections + 1
      end
      upsertConn(host, json)
      settle(now)
    end
    host.synced = true
    host.seq = seq
    applied = 1
  end
end

if applied > 0 then farm.lastUpdate = now end
saveHost(host)
saveFarm()
return { result, prev, host.seq, applied, duplicates, full }
