--- @include "keys"
--- @include "util"
--- @include "cached-hash"

--[[
  The farm's counters and the host's connections, as one script changes them. Reads and writes of
  users, live, labels, counts, order and a host's conns go through the tables below: each field is
  read at most once per script (a frame prefetches all it will need in one HMGET per hash) and
  written back once, at its end, by saveCounters.

  Loops over lists as long as a frame are numeric (for i = 1, #list): ipairs costs a call of its
  iterator per element.
]]

-- users and live: user → consuming connections (absent at zero). Their values are small integers,
-- the same few over and over: each distinct one is converted once per script, as tonumber and
-- string.format cost several table lookups each.
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
-- The host whose connections countDelta counts (set by loadHost).
local hostName = nil

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

local function flushConns()
  cflush(connsHash, identity)
end

-- Writes back every counter the script changed.
local function saveCounters()
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
end
