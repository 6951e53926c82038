--[[
  Shared by every script: the farm's keys, its counters, and the incremental form of the
  license rules (DESIGN §2). The pure statement of the rules is protocol/src/license-model.ts;
  this file must agree with it, and the property tests hold it to it.

  Farm keys, in every script: KEYS[1..14]
    1 epoch   2 meta   3 users   4 live   5 order   6 labels   7 peaks
    8 lease   9 seen  10 agents 11 counts 12 retired 13 cdoff  14 stale
  Host keys, in scripts about one host: KEYS[15..17]
   15 host state   16 conns   17 elig
]]
local rcall = redis.call

local F = {
  epoch = KEYS[1], meta = KEYS[2], users = KEYS[3], live = KEYS[4], order = KEYS[5],
  labels = KEYS[6], peaks = KEYS[7], lease = KEYS[8], seen = KEYS[9], agents = KEYS[10],
  counts = KEYS[11], retired = KEYS[12], cdOff = KEYS[13], stale = KEYS[14],
}
local H = { state = KEYS[15], conns = KEYS[16], elig = KEYS[17] }

local DAY_MS = 86400000
-- Daily peaks older than this many days are dropped (rule 7 keeps at least 400).
local PEAK_DAYS_KEPT = 450
local EXEMPT_PER_HOST = 2

local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as Redis arguments, never in exponent notation.
local function int(n)
  return string.format('%d', n)
end

-- Orders strings by their bytes (Lua's < follows the server's collation locale).
local function bytesLess(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

--------------------------------------------------------------------------------------------------
-- Farm record: loaded once per script, saved once at its end.

local farm = nil
-- The record as loaded, so that saveFarm writes only what changed (an idle farm's tick writes nothing).
local loaded = nil
local seats = 0

local META_FIELDS = {
  'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'day',
  'graceStart', 'graceSeats', 'graceSeed', 'corrections', 'lastUpdate',
}

local function loadFarm()
  local values = rcall('HMGET', F.meta, unpack(META_FIELDS))
  farm = {}
  for i, field in ipairs(META_FIELDS) do
    farm[field] = tonumber(values[i])
  end
  for _, field in ipairs({ 'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'corrections' }) do
    farm[field] = farm[field] or 0
  end
  loaded = {}
  for i, field in ipairs(META_FIELDS) do
    loaded[field] = tonumber(values[i])
  end
end

local function saveFarm()
  local set, del = {}, {}
  for _, field in ipairs(META_FIELDS) do
    if farm[field] ~= loaded[field] then
      if farm[field] == nil then
        del[#del + 1] = field
      else
        set[#set + 1] = field
        set[#set + 1] = int(farm[field])
      end
    end
  end
  if #set > 0 then rcall('HSET', F.meta, unpack(set)) end
  if #del > 0 then rcall('HDEL', F.meta, unpack(del)) end
  if farm.day ~= loaded.day or farm.peakToday ~= loaded.peakToday then
    rcall('HSET', F.peaks, int(farm.day), int(farm.peakToday))
  end
end

-- Rules 7 and 8 as time alone moves them: a new UTC day, and the overuse grace's reset (more seats
-- than it recorded), its seed from the console, and its start when the farm is already overused.
local function beginFarm(now, farmSeats, graceSeed)
  loadFarm()
  seats = farmSeats
  local users = rcall('HLEN', F.users)
  local today = math.floor(now / DAY_MS)
  if farm.day ~= today then
    farm.day = today
    farm.peakToday = users
    local oldest = today - PEAK_DAYS_KEPT
    if rcall('HLEN', F.peaks) > PEAK_DAYS_KEPT then
      for _, day in ipairs(rcall('HKEYS', F.peaks)) do
        if tonumber(day) < oldest then rcall('HDEL', F.peaks, day) end
      end
    end
  end
  if farm.graceSeats ~= nil and seats > farm.graceSeats then
    farm.graceStart, farm.graceSeats = nil, nil
  end
  if farm.graceStart == nil and graceSeed ~= nil and farm.graceSeed ~= graceSeed then
    farm.graceSeed, farm.graceStart, farm.graceSeats = graceSeed, graceSeed, seats
  end
  if farm.graceStart == nil and users > seats then
    farm.graceStart, farm.graceSeats = now, seats
  end
end

--------------------------------------------------------------------------------------------------
-- Users: who consumes, where, and what changed during the current item.

-- user → { before = {consuming, on live hosts} at the item's start, now = the same as of now }
local touched, touchedList = {}, {}

local function touch(user)
  local entry = touched[user]
  if entry == nil then
    local total = tonumber(rcall('HGET', F.users, user) or 0)
    local live = tonumber(rcall('HGET', F.live, user) or 0)
    entry = { total, live, total, live }
    touched[user] = entry
    touchedList[#touchedList + 1] = user
  end
  return entry
end

-- HINCRBY that drops the field at zero, returning the new value.
local function shift(key, field, delta)
  local value = rcall('HINCRBY', key, field, delta)
  if value <= 0 then
    rcall('HDEL', key, field)
    return 0
  end
  return value
end

local function consume(host, user, delta)
  local entry = touch(user)
  entry[3] = shift(F.users, user, delta)
  if host.live then entry[4] = shift(F.live, user, delta) end
end

local function shiftLive(user, delta)
  local entry = touch(user)
  entry[4] = shift(F.live, user, delta)
end

-- Closes one item (rule 6): users who started consuming get their place in the order and, while
-- the farm is above its seats, count as an overuse admission; then peaks and the grace start.
local function settle(now)
  if #touchedList == 0 then return end
  local users = rcall('HLEN', F.users)
  local started = {}
  for _, user in ipairs(touchedList) do
    local entry = touched[user]
    local wasUnverified = entry[1] > 0 and entry[2] == 0
    local isUnverified = entry[3] > 0 and entry[4] == 0
    if wasUnverified ~= isUnverified then
      farm.unverified = farm.unverified + (isUnverified and 1 or -1)
    end
    if entry[1] == 0 and entry[3] > 0 then
      started[#started + 1] = user
    elseif entry[1] > 0 and entry[3] == 0 then
      rcall('ZREM', F.order, user)
    end
  end
  table.sort(started, bytesLess)
  for _, user in ipairs(started) do
    farm.nextOrder = farm.nextOrder + 1
    rcall('ZADD', F.order, int(farm.nextOrder), user)
    if users > seats then farm.admissions = farm.admissions + 1 end
  end
  touched, touchedList = {}, {}
  if users > farm.peak then farm.peak = users end
  if users > farm.peakToday then farm.peakToday = users end
  if farm.graceStart == nil and users > seats then
    farm.graceStart, farm.graceSeats = now, seats
  end
end

--------------------------------------------------------------------------------------------------
-- Connections of one host (rules 1-3): index and unindex keep users, exemption and labels exact.

local function counts(rec, host)
  return host.countDisconnected or rec.state == 'active'
end

local function eligible(rec, host)
  return rec.admin and rec.kind == 'desktop' and counts(rec, host)
end

local function labelOf(rec)
  return rec.kind .. '|' .. rec.via .. '|' .. tostring(rec.admin) .. '|' .. rec.state
end

local function userOf(id)
  return cjson.decode(rcall('HGET', H.conns, id)).user
end

-- Adds the contribution of a connection already stored in conns.
local function indexConn(host, rec)
  rcall('HINCRBY', F.labels, labelOf(rec), 1)
  rcall('HINCRBY', F.counts, host.name, 1)
  if eligible(rec, host) then
    rcall('ZADD', H.elig, int(rec.since), rec.id)
    if rcall('ZRANK', H.elig, rec.id) < EXEMPT_PER_HOST then
      -- It takes an exempt slot; whoever held the last one now consumes.
      local pushed = rcall('ZRANGE', H.elig, EXEMPT_PER_HOST, EXEMPT_PER_HOST)[1]
      if pushed then
        consume(host, userOf(pushed), 1)
      else
        farm.exempt = farm.exempt + 1
      end
    else
      consume(host, rec.user, 1)
    end
  elseif counts(rec, host) then
    consume(host, rec.user, 1)
  end
end

-- Removes the contribution of a connection still stored in conns.
local function unindexConn(host, rec)
  shift(F.labels, labelOf(rec), -1)
  rcall('HINCRBY', F.counts, host.name, -1)
  if eligible(rec, host) then
    local rank = rcall('ZRANK', H.elig, rec.id)
    rcall('ZREM', H.elig, rec.id)
    if rank < EXEMPT_PER_HOST then
      -- Its exempt slot passes to the next eligible connection, which stops consuming.
      local promoted = rcall('ZRANGE', H.elig, EXEMPT_PER_HOST - 1, EXEMPT_PER_HOST - 1)[1]
      if promoted then
        consume(host, userOf(promoted), -1)
      else
        farm.exempt = farm.exempt - 1
      end
    else
      consume(host, rec.user, -1)
    end
  elseif counts(rec, host) then
    consume(host, rec.user, -1)
  end
end

local function upsertConn(host, json)
  local rec = cjson.decode(json)
  local held = rcall('HGET', H.conns, rec.id)
  if held == json then return end
  if held then unindexConn(host, cjson.decode(held)) end
  rcall('HSET', H.conns, rec.id, json)
  indexConn(host, rec)
end

local function endConn(host, id)
  local held = rcall('HGET', H.conns, id)
  if not held then return end
  unindexConn(host, cjson.decode(held))
  rcall('HDEL', H.conns, id)
end

-- Calls fn(rec, consumes, exempt) for every connection of the host.
local function eachConn(host, fn)
  local exempt = {}
  for _, id in ipairs(rcall('ZRANGE', H.elig, 0, EXEMPT_PER_HOST - 1)) do exempt[id] = true end
  local all = rcall('HGETALL', H.conns)
  for i = 2, #all, 2 do
    local rec = cjson.decode(all[i])
    local isExempt = exempt[rec.id] == true
    fn(rec, counts(rec, host) and not isExempt, isExempt)
  end
end

-- Removes every contribution of the host's connections, keeping the connections themselves.
local function unindexHost(host)
  eachConn(host, function(rec, consumes, isExempt)
    shift(F.labels, labelOf(rec), -1)
    if isExempt then farm.exempt = farm.exempt - 1 end
    if consumes then consume(host, rec.user, -1) end
  end)
  rcall('DEL', H.elig)
  rcall('HSET', F.counts, host.name, 0)
end

local function indexHost(host)
  local all = rcall('HGETALL', H.conns)
  for i = 2, #all, 2 do indexConn(host, cjson.decode(all[i])) end
end

--------------------------------------------------------------------------------------------------
-- Host records (rule 10).

local function loadHost(name, countDisconnected)
  local v = rcall('HMGET', H.state, 'stream', 'seq', 'owner', 'live', 'retired', 'synced')
  local host = {
    name = name,
    stream = v[1],
    seq = tonumber(v[2]) or 0,
    owner = v[3],
    live = v[4] == '1',
    retired = v[5] == '1',
    synced = v[6] == '1',
    countDisconnected = rcall('SISMEMBER', F.cdOff, name) == 0,
  }
  -- The farm's countDisconnected changed since this host was indexed: index it again.
  if host.countDisconnected ~= countDisconnected then
    unindexHost(host)
    host.countDisconnected = countDisconnected
    if countDisconnected then rcall('SREM', F.cdOff, name) else rcall('SADD', F.cdOff, name) end
    indexHost(host)
  end
  return host
end

local function saveHost(host)
  rcall('HSET', H.state, 'seq', int(host.seq), 'live', host.live and '1' or '0',
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
  host.retired = true
  host.synced = false
  rcall('SADD', F.retired, host.name)
  rcall('ZREM', F.stale, host.name)
end

local function argSeed(value)
  if value == nil or value == '' then return nil end
  return tonumber(value)
end
