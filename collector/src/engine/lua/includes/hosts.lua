--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "farm-record"
--- @include "users"
--- @include "connections"

-- Host records (docs/design.md §2 rule 10; "rule N" below is its rule N).

local function loadHost(name)
  hostName = name
  local v = rcall('HMGET', H.host, 'stream', 'seq', 'owner', 'live', 'retired', 'synced', 'pending')
  return {
    name = name,
    stream = v[1],
    seq = tonumber(v[2]) or 0,
    owner = v[3],
    live = v[4] == '1',
    retired = v[5] == '1',
    synced = v[6] == '1',
    -- 'owner seq' of a big snapshot its connection began in slices (beginSnapshot.lua), false when none.
    pending = v[7],
    countDisconnected = nil,
  }
end

-- Indexes the host again when the farm's countDisconnected changed since it was indexed.
local function syncIndex(host)
  host.countDisconnected = rcall('SISMEMBER', F.cdOff, host.name) == 0
  local wanted = RULES.countDisconnected
  if host.countDisconnected ~= wanted then
    unindexHost(host)
    host.countDisconnected = wanted
    if wanted then rcall('SREM', F.cdOff, host.name) else rcall('SADD', F.cdOff, host.name) end
    indexHost(host)
    changed()
  end
end

local function saveHost(host)
  rcall('HSET', H.host, 'seq', int(host.seq), 'live', host.live and '1' or '0',
    'retired', host.retired and '1' or '0', 'synced', host.synced and '1' or '0')
end

-- A host going live or stale moves its consuming connections in or out of the live count,
-- which is what tells verified users from unverified ones.
local function setLive(host, live, now)
  if host.live == live then return end
  eachConn(host, function(rec, consumes)
    if consumes then shiftLive(rec.user, live and 1 or -1) end
  end)
  host.live = live
  if live or host.retired then
    rcall('ZREM', F.stale, host.name)
  else
    rcall('ZADD', F.stale, int(tonumber(rcall('ZSCORE', F.seen, host.name) or now)), host.name)
  end
end

local function renewLease(host, now, leaseMs)
  rcall('ZADD', F.lease, int(now + leaseMs), host.name)
  rcall('ZADD', F.seen, int(now), host.name)
  setLive(host, true, now)
end

-- Rule 10: the retired host's connections stop counting until its agent's next snapshot.
local function retireHost(host)
  unindexHost(host)
  rcall('DEL', H.conns)
  creset(connsHash)
  records, connCount = {}, 0
  host.retired = true
  host.synced = false
  rcall('SADD', F.retired, host.name)
  rcall('ZREM', F.stale, host.name)
end
