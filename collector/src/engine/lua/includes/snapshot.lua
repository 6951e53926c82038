--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "farm-record"
--- @include "users"
--- @include "connections"
--- @include "hosts"
--- @include "quotas"

-- A snapshot's parts (docs/design.md §2 rule 6): its quotas checked whole, then the ends of what it
-- no longer lists, then its sessions in order, each settled as an item of its own. applyFrame.lua
-- runs them all in one script; a big snapshot runs them in beginSnapshot.lua and slices of
-- snapshotSlice.lua, so that no one script holds Redis for the whole of it.

-- How many fields follow a session's JSON in a packed frame (script-args.ts), and the session
-- whose fields start at flat[k]: id, user, admin, kind, via, state, since.
local SESSION_FIELDS = 7
local function sessionAt(flat, k)
  return {
    id = flat[k], user = flat[k + 1], admin = flat[k + 2], kind = flat[k + 3], via = flat[k + 4],
    state = flat[k + 5], since = flat[k + 6],
  }
end

-- A snapshot's packed sessions (each its JSON, then its fields), in order: their records, their
-- JSONs, their ids, their users, and id → JSON.
local function readSessions(flat)
  local recs, jsons, ids, users, listed = {}, {}, {}, {}, {}
  for k = 1, #flat, 1 + SESSION_FIELDS do
    local rec = sessionAt(flat, k + 1)
    recs[#recs + 1] = rec
    jsons[#jsons + 1] = flat[k]
    ids[#ids + 1] = rec.id
    users[#users + 1] = rec.user
    listed[rec.id] = flat[k]
  end
  return recs, jsons, ids, users, listed
end

-- Everything the items will read, in one HMGET per hash: their connections, then their users.
-- listed: id → the JSON the snapshot gives it; a held connection stored as that JSON has the user
-- the snapshot names, so it is not decoded (most of a periodic snapshot is unchanged).
local function prefetchItems(host, ids, users, listed)
  cprefetch(connsHash, ids)
  for i = 1, #ids do
    local id = ids[i]
    local json = heldJson(id)
    if json and not (listed and listed[id] == json) then users[#users + 1] = heldRecord(id).user end
  end
  cprefetch(usersHash, users)
  if host.live then cprefetch(liveHash, users) end
end

-- Whether a snapshot of `count` sessions replacing the host's heldIds would take the farm above its
-- sessions cap: one that grows the farm above it is refused, one that shrinks it is not, so a farm
-- over a lowered cap still heals. A retired host holds nothing.
local function overSessions(heldIds, count, farmMax)
  local before = farmSessions()
  local after = before - #heldIds + count
  return after > before and after > farmMax
end

-- The list's values, each once, in the order they first come.
local function distinct(list)
  local seen, out, n = {}, {}, 0
  for i = 1, #list do
    local value = list[i]
    if not seen[value] then
      seen[value] = true
      n = n + 1
      out[n] = value
    end
  end
  return out
end

-- The snapshot's users new to the farm (users: its sessions' users, each once, their consumption
-- on the farm prefetched), and whether they exceed the minute's budget.
local function newUsersOver(host, heldIds, users, newMax, now)
  local fresh, n = {}, 0
  for i = 1, #users do
    local user = users[i]
    if not consumesOnFarm(user) then
      n = n + 1
      fresh[n] = user
    end
  end
  -- Nor is a user the host already holds a session of (one that does not consume: disconnected
  -- with countDisconnected false, an exempt admin), or every periodic snapshot would bring it
  -- anew. Read only when some user does not consume, and only the held sessions that may not
  -- consume: a user held in a consuming session consumes, so is not among these. When the host
  -- counts disconnected sessions, only its exempt ones do not consume (a retired host holds
  -- nothing): a flood of new users costs no decoding of the sessions it replaces.
  if #fresh > 0 and #heldIds > 0 then
    local mayNotConsume = heldIds
    if host.countDisconnected then mayNotConsume = rcall('ZRANGE', H.elig, 0, EXEMPT_PER_HOST - 1) end
    cprefetch(connsHash, mayNotConsume)
    local onHost, kept = {}, {}
    for i = 1, #mayNotConsume do
      local held = heldRecord(mayNotConsume[i])
      if held then onHost[held.user] = true end
    end
    for i = 1, #fresh do
      if not onHost[fresh[i]] then kept[#kept + 1] = fresh[i] end
    end
    fresh = kept
  end
  -- Only when they might not fit: those already new within the minute do not count again.
  local room = #fresh > 0 and newUsersRoom(now, newMax) or 0
  if #fresh > room then
    local newCount = 0
    for i = 1, #fresh do
      if not cameNewLately(fresh[i], now) then newCount = newCount + 1 end
    end
    if newCount > room then return fresh, true end
  end
  return fresh, false
end

-- The held connections the snapshot no longer lists (listed: id → anything): they end, whether or
-- not a quota refuses the snapshot.
local function endedIds(heldIds, listed)
  local ended = {}
  for i = 1, #heldIds do
    if not listed[heldIds[i]] then ended[#ended + 1] = heldIds[i] end
  end
  return ended
end

-- Whether the snapshot's changes are corrections of events the host's agent lost: only for a host
-- already in step. A broker source's pseudo-host (`broker/vdi`...) lists what RAS lists at each
-- poll: its changes are users coming and going, not events an agent lost, so they correct nothing.
local function correctingSnapshot(host)
  return host.synced and not host.retired and string.sub(host.name, 1, 7) ~= 'broker/'
end

-- A snapshot accepted: a retired host is back, and its new users take their place in the minute.
local function acceptSnapshot(host, fresh, now)
  if host.retired then
    host.retired = false
    rcall('SREM', F.retired, host.name)
  end
  admitNewUsers(fresh, now)
end

-- Ends these connections, each an item (their records prefetched); one no longer held is skipped
-- (a slice of ends run twice).
local function endItems(host, ids, correcting, now)
  for i = 1, #ids do
    if correcting and heldRecord(ids[i]) then farm.corrections = farm.corrections + 1 end
    endConn(host, ids[i])
    settle(now)
  end
end

-- Applies these sessions in order, each an item (their records and users prefetched).
local function upsertItems(host, recs, jsons, correcting, now)
  for i = 1, #recs do
    local json, rec = jsons[i], recs[i]
    if correcting and heldJson(rec.id) ~= json then farm.corrections = farm.corrections + 1 end
    upsertConn(host, rec, json)
    settle(now)
  end
end
