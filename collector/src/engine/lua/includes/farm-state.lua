--[[
  Shared by every script: the farm's keys, its rules, its counters, and the incremental form of the
  license rules (docs/design.md §2; "rule N" below is its rule N). The pure statement of the rules is protocol/src/license-model.ts;
  this file must agree with it, and the property tests hold it to it.

  KEYS
    farm keys, in every script: KEYS[1..15]
      1 epoch   2 meta   3 users   4 live   5 order   6 labels   7 peaks
      8 lease   9 seen  10 agents 11 counts 12 retired 13 cdoff  14 stale  15 sources
    host keys, in scripts about one host: KEYS[16..18]
     16 state   17 conns   18 elig

  ARGV
    the farm's rules, in every script, read here:
      1 seats              licensed concurrent users, or '' for none (an SPLA farm without a cap:
                           never over)
      2 countDisconnected  '1' or '0'
      3 graceSeed          overuse grace start given by the configuration (ms), or ''
    each script's own arguments follow, from ARGV[4]

  Reads and writes of users, live, labels, counts, order and a host's conns go through the
  tables below: each field is read at most once per script (a frame prefetches all it will need
  in one HMGET per hash) and written back once, at its end, by saveFarm.

  Loops over lists as long as a frame are numeric (for i = 1, #list): ipairs costs a call of its
  iterator per element.
]]
local rcall = redis.call

local F = {
  epoch = KEYS[1], meta = KEYS[2], users = KEYS[3], live = KEYS[4], order = KEYS[5],
  labels = KEYS[6], peaks = KEYS[7], lease = KEYS[8], seen = KEYS[9], agents = KEYS[10],
  counts = KEYS[11], retired = KEYS[12], cdOff = KEYS[13], stale = KEYS[14], sources = KEYS[15],
}
local H = { state = KEYS[16], conns = KEYS[17], elig = KEYS[18] }

local function argSeed(value)
  if value == nil or value == '' then return nil end
  return tonumber(value)
end

local RULES = {
  seats = tonumber(ARGV[1]),
  countDisconnected = ARGV[2] == '1',
  graceSeed = argSeed(ARGV[3]),
}

-- No cap: comparisons against it are never over.
local UNCAPPED = math.huge

local DAY_MS = 86400000
-- Daily peaks older than this many days are dropped (rule 7 keeps at least 400).
local PEAK_DAYS_KEPT = 450
local EXEMPT_PER_HOST = 2
-- Most arguments given to one Redis command from Lua (unpack's stack limit is 8000).
local CHUNK = 1000

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

-- Calls `command key ...args` in chunks; args is a flat list whose chunks keep `step` items together.
local function chunked(command, key, args, step)
  local size = CHUNK - CHUNK % step
  for first = 1, #args, size do
    rcall(command, key, unpack(args, first, math.min(#args, first + size - 1)))
  end
end

--------------------------------------------------------------------------------------------------
-- Hashes read once and written back at the end of the script.

local function cachedHash(key, decode)
  return { key = key, decode = decode, values = {}, dirty = {}, dirtyList = {} }
end

-- The field's value (false when absent), read from Redis the first time.
local function cget(hash, field)
  local value = hash.values[field]
  if value == nil then
    value = rcall('HGET', hash.key, field)
    if value and hash.decode then value = hash.decode(value) end
    hash.values[field] = value
  end
  return value
end

-- Reads, in one HMGET per chunk, the fields not read yet.
local function cprefetch(hash, fields)
  local missing, seen = {}, {}
  for i = 1, #fields do
    local field = fields[i]
    if hash.values[field] == nil and not seen[field] then
      seen[field] = true
      missing[#missing + 1] = field
    end
  end
  for first = 1, #missing, CHUNK do
    local last = math.min(#missing, first + CHUNK - 1)
    local values = rcall('HMGET', hash.key, unpack(missing, first, last))
    for i = first, last do
      local value = values[i - first + 1]
      if value and hash.decode then value = hash.decode(value) end
      hash.values[missing[i]] = value
    end
  end
end

-- Sets (or, with false, removes) a field; written back by cflush.
local function cset(hash, field, value)
  hash.values[field] = value
  if not hash.dirty[field] then
    hash.dirty[field] = true
    hash.dirtyList[#hash.dirtyList + 1] = field
  end
end

local function cflush(hash, encode)
  local set, del = {}, {}
  local dirtyList = hash.dirtyList
  for i = 1, #dirtyList do
    local field = dirtyList[i]
    local value = hash.values[field]
    if value then
      set[#set + 1] = field
      set[#set + 1] = encode(value)
    else
      del[#del + 1] = field
    end
  end
  if #set > 0 then chunked('HSET', hash.key, set, 2) end
  if #del > 0 then chunked('HDEL', hash.key, del, 1) end
  hash.dirty, hash.dirtyList = {}, {}
end

-- Forgets what was read (after the key was deleted or rewritten directly).
local function creset(hash)
  hash.values, hash.dirty, hash.dirtyList = {}, {}, {}
end

-- users and live: user → consuming connections (absent at zero). Their values are small integers,
-- the same few over and over: each distinct one is converted once per script, as tonumber and
-- string.format cost several table lookups each.
local function memoized(fn)
  local known = {}
  return function(value)
    local result = known[value]
    if result == nil then
      result = fn(value)
      known[value] = result
    end
    return result
  end
end

local decodeCount, encodeCount = memoized(tonumber), memoized(int)

local usersHash = cachedHash(F.users, decodeCount)
local liveHash = cachedHash(F.live, decodeCount)
-- The number of fields of users (users in use), read once and then kept.
local usersInUse = nil

local function usersNow()
  if usersInUse == nil then usersInUse = rcall('HLEN', F.users) end
  return usersInUse
end

-- Adds delta to a user's count, old as its touched entry holds it, dropping it at zero; returns the
-- new value.
local function shift(hash, user, old, delta)
  local value = old + delta
  if value <= 0 then value = 0 end
  if value ~= old then
    cset(hash, user, value > 0 and value or false)
    if hash == usersHash then
      if old == 0 then usersInUse = usersNow() + 1 elseif value == 0 then usersInUse = usersNow() - 1 end
    end
  end
  return value
end

-- labels: "kind|via|admin|state" → connections, and counts: host → connections, as deltas.
local labelDeltas, labelList = {}, {}
local countDelta = 0

local function shiftLabel(label, delta)
  if labelDeltas[label] == nil then
    labelDeltas[label] = 0
    labelList[#labelList + 1] = label
  end
  labelDeltas[label] = labelDeltas[label] + delta
end

-- order: user → the place it took when it last started consuming; false once it stopped.
local orderOps, orderList = {}, {}

local function setOrder(user, place)
  if orderOps[user] == nil then orderList[#orderList + 1] = user end
  orderOps[user] = place
end

-- The host's connections: id → decoded record (false when absent), with the stored JSON beside.
local connsHash = cachedHash(H.conns, nil)
local records = {}
-- Connections the host holds, read once and then kept.
local connCount = nil

local function heldJson(id)
  return cget(connsHash, id)
end

local function heldRecord(id)
  local rec = records[id]
  if rec == nil then
    local json = cget(connsHash, id)
    rec = json and cjson.decode(json) or false
    records[id] = rec
  end
  return rec
end

local function connsHeld()
  if connCount == nil then connCount = rcall('HLEN', H.conns) end
  return connCount
end

-- isNew: the host did not hold the connection.
local function putConn(rec, json, isNew)
  if isNew then connCount = connsHeld() + 1 end
  cset(connsHash, rec.id, json)
  records[rec.id] = rec
end

local function dropConn(id)
  if cget(connsHash, id) then connCount = connsHeld() - 1 end
  cset(connsHash, id, false)
  records[id] = false
end

local function identity(value) return value end

local function flushConns()
  cflush(connsHash, identity)
end

--------------------------------------------------------------------------------------------------
-- Farm record: loaded once per script, saved once at its end.

local farm = nil
-- The record as loaded, so that saveFarm writes only what changed (an idle farm's tick writes nothing).
local loaded = nil
local seats = 0
local hostName = nil

-- The current UTC day's record (rule 7) lives in meta: peakToday and peakAt (when it was first
-- reached), daySeats, overToday (highest overuse), admDay (admissions at the day's start), overMs
-- (closed time over seats) and overSince (start of the running time over seats). When the day
-- turns, closeDay writes it into peaks (collector/src/day-records.ts reads both).
local META_FIELDS = {
  'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'day',
  'graceStart', 'graceSeats', 'graceSeed', 'corrections', 'lastUpdate', 'version',
  'peakAt', 'daySeats', 'overToday', 'admDay', 'overMs', 'overSince',
}

local function loadFarm()
  local values = rcall('HMGET', F.meta, unpack(META_FIELDS))
  farm = {}
  for i, field in ipairs(META_FIELDS) do
    farm[field] = tonumber(values[i])
  end
  for _, field in ipairs({ 'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'corrections', 'version' }) do
    farm[field] = farm[field] or 0
  end
  loaded = {}
  for i, field in ipairs(META_FIELDS) do
    loaded[field] = tonumber(values[i])
  end
end

-- Marks the farm's state as changed in what /metrics shows, for every collector's scrape cache.
local function changed()
  farm.version = farm.version + 1
end

-- Writes back the farm record and every counter the script changed.
local function saveFarm()
  flushConns()
  cflush(usersHash, encodeCount)
  cflush(liveHash, encodeCount)
  for _, label in ipairs(labelList) do
    local delta = labelDeltas[label]
    if delta ~= 0 and rcall('HINCRBY', F.labels, label, delta) <= 0 then rcall('HDEL', F.labels, label) end
  end
  labelDeltas, labelList = {}, {}
  if countDelta ~= 0 then
    rcall('HINCRBY', F.counts, hostName, countDelta)
    countDelta = 0
  end
  local add, rem = {}, {}
  for i = 1, #orderList do
    local user = orderList[i]
    local place = orderOps[user]
    if place then
      add[#add + 1] = int(place)
      add[#add + 1] = user
    else
      rem[#rem + 1] = user
    end
  end
  if #add > 0 then chunked('ZADD', F.order, add, 2) end
  if #rem > 0 then chunked('ZREM', F.order, rem, 1) end
  orderOps, orderList = {}, {}

  if farm == nil then return end
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

local function optInt(n)
  if n == nil then return '' end
  return int(n)
end

-- The day's highest overuse and its time over seats, after any change of users or seats.
local function trackDay(now, users)
  local over = users - seats
  if over > 0 then
    if over > (farm.overToday or 0) then farm.overToday = over end
    if farm.overSince == nil then farm.overSince = now end
  elseif farm.overSince ~= nil then
    farm.overMs = (farm.overMs or 0) + (now - farm.overSince)
    farm.overSince = nil
  end
end

-- Writes the finished record of farm.day into peaks as
-- peakUsers,peakAtMs,seats,maxOveruse,admissions,msOverSeats ('' where unknown). Time over seats
-- still running is counted to the day's end: the state Redis held lasted until a script ran.
local function closeDay()
  local dayEnd = (farm.day + 1) * DAY_MS
  local overMs = farm.overMs
  if farm.overSince ~= nil then overMs = (overMs or 0) + math.max(0, dayEnd - farm.overSince) end
  local admissions = nil
  if farm.admDay ~= nil then admissions = farm.admissions - farm.admDay end
  rcall('HSET', F.peaks, int(farm.day), table.concat({
    int(farm.peakToday), optInt(farm.peakAt), optInt(farm.daySeats), optInt(farm.overToday),
    optInt(admissions), optInt(overMs),
  }, ','))
end

-- Rules 7 and 8 as time alone moves them: a new UTC day, and the overuse grace's reset (more seats
-- than it recorded), its seed from the console, and its start when the farm is already overused.
local function beginFarm(now)
  loadFarm()
  seats = RULES.seats or UNCAPPED
  farm.daySeats = RULES.seats
  local graceSeed = RULES.graceSeed
  if RULES.seats == nil then graceSeed = nil end
  local users = usersNow()
  local today = math.floor(now / DAY_MS)
  if farm.day ~= today then
    local wasOver = farm.overSince ~= nil
    if farm.day ~= nil then closeDay() end
    farm.day = today
    farm.peakToday = users
    farm.peakAt = now
    farm.overToday = 0
    farm.admDay = farm.admissions
    farm.overMs = 0
    farm.overSince = nil
    if wasOver then farm.overSince = today * DAY_MS end
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
  trackDay(now, users)
end

--------------------------------------------------------------------------------------------------
-- Users: who consumes, where, and what changed during the current item.

-- user → { consuming, on live hosts } at the item's start, then the same as of now. settle runs
-- after every item, so these tables are emptied and their entries reused rather than made anew.
local touched, touchedList, touchedCount = {}, {}, 0
local entries = {}
-- Users who started consuming during the item, emptied by settle.
local started = {}

local function touch(user)
  local entry = touched[user]
  if entry == nil then
    local total = cget(usersHash, user) or 0
    local live = cget(liveHash, user) or 0
    touchedCount = touchedCount + 1
    entry = entries[touchedCount]
    if entry == nil then
      entry = {}
      entries[touchedCount] = entry
    end
    entry[1], entry[2], entry[3], entry[4] = total, live, total, live
    touched[user] = entry
    touchedList[touchedCount] = user
  end
  return entry
end

-- Every change of users and live goes through these two, so a touched user's entry always holds
-- its counts as of now.
local function consume(host, user, delta)
  local entry = touch(user)
  entry[3] = shift(usersHash, user, entry[3], delta)
  if host.live then entry[4] = shift(liveHash, user, entry[4], delta) end
end

local function shiftLive(user, delta)
  local entry = touch(user)
  entry[4] = shift(liveHash, user, entry[4], delta)
end

-- Closes one item (rule 6): users who started consuming get their place in the order and, while
-- the farm is above its seats, count as an overuse admission; then peaks and the grace start.
local function settle(now)
  if touchedCount == 0 then return end
  local users = usersNow()
  for i = 1, touchedCount do
    local user = touchedList[i]
    local entry = touched[user]
    touched[user] = nil
    touchedList[i] = nil
    local wasUnverified = entry[1] > 0 and entry[2] == 0
    local isUnverified = entry[3] > 0 and entry[4] == 0
    if wasUnverified ~= isUnverified then
      farm.unverified = farm.unverified + (isUnverified and 1 or -1)
    end
    if entry[1] == 0 and entry[3] > 0 then
      started[#started + 1] = user
    elseif entry[1] > 0 and entry[3] == 0 then
      setOrder(user, false)
    end
  end
  touchedCount = 0
  -- Places go in byte order of the users; an event's item mostly starts one user or none.
  if #started > 1 then table.sort(started, bytesLess) end
  for i = 1, #started do
    farm.nextOrder = farm.nextOrder + 1
    setOrder(started[i], farm.nextOrder)
    if users > seats then farm.admissions = farm.admissions + 1 end
    started[i] = nil
  end
  if users > farm.peak then farm.peak = users end
  if users > farm.peakToday then
    farm.peakToday = users
    farm.peakAt = now
  end
  if farm.graceStart == nil and users > seats then
    farm.graceStart, farm.graceSeats = now, seats
  end
  trackDay(now, users)
end

--------------------------------------------------------------------------------------------------
-- Connections of one host (rules 1-3): index and unindex keep users, exemption and labels exact.

local function counts(rec, host)
  return host.countDisconnected or rec.state == 'active'
end

local function eligible(rec, host)
  return rec.admin and rec.kind == 'desktop' and counts(rec, host)
end

-- admin is a boolean (the frame schema): spelt out, as tostring costs a call.
local function labelOf(rec)
  return rec.kind .. '|' .. rec.via .. '|' .. (rec.admin and 'true' or 'false') .. '|' .. rec.state
end

local function userOf(id)
  return heldRecord(id).user
end

-- Adds the contribution of a connection already stored in conns.
local function indexConn(host, rec)
  shiftLabel(labelOf(rec), 1)
  countDelta = countDelta + 1
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
  shiftLabel(labelOf(rec), -1)
  countDelta = countDelta - 1
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

-- rec: the session as decoded with its frame; json: its canonical form, what is stored.
local function upsertConn(host, rec, json)
  local held = heldJson(rec.id)
  if held == json then return end
  if held then unindexConn(host, heldRecord(rec.id)) end
  putConn(rec, json, not held)
  indexConn(host, rec)
end

local function endConn(host, id)
  local held = heldRecord(id)
  if not held then return end
  unindexConn(host, held)
  dropConn(id)
end

-- Calls fn(rec, consumes, exempt) for every connection of the host.
local function eachConn(host, fn)
  flushConns()
  local exempt = {}
  for _, id in ipairs(rcall('ZRANGE', H.elig, 0, EXEMPT_PER_HOST - 1)) do exempt[id] = true end
  local all = rcall('HGETALL', H.conns)
  for i = 2, #all, 2 do
    local rec = records[all[i - 1]] or cjson.decode(all[i])
    records[rec.id] = rec
    connsHash.values[rec.id] = all[i]
    local isExempt = exempt[rec.id] == true
    fn(rec, counts(rec, host) and not isExempt, isExempt)
  end
end

-- Removes every contribution of the host's connections, keeping the connections themselves.
local function unindexHost(host)
  eachConn(host, function(rec, consumes, isExempt)
    shiftLabel(labelOf(rec), -1)
    if isExempt then farm.exempt = farm.exempt - 1 end
    if consumes then consume(host, rec.user, -1) end
  end)
  rcall('DEL', H.elig)
  rcall('HSET', F.counts, host.name, 0)
  countDelta = 0
end

local function indexHost(host)
  local all = {}
  eachConn(host, function(rec) all[#all + 1] = rec end)
  for i = 1, #all do indexConn(host, all[i]) end
end

--------------------------------------------------------------------------------------------------
-- Host records (rule 10).

local function loadHost(name)
  hostName = name
  local v = rcall('HMGET', H.state, 'stream', 'seq', 'owner', 'live', 'retired', 'synced')
  return {
    name = name,
    stream = v[1],
    seq = tonumber(v[2]) or 0,
    owner = v[3],
    live = v[4] == '1',
    retired = v[5] == '1',
    synced = v[6] == '1',
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
  creset(connsHash)
  records, connCount = {}, 0
  host.retired = true
  host.synced = false
  rcall('SADD', F.retired, host.name)
  rcall('ZREM', F.stale, host.name)
end
