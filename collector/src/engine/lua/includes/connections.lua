--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "users"

-- Connections of one host (docs/design.md §2 rules 1-3; "rule N" below is its rule N): index and
-- unindex keep users, exemption and labels exact.

-- How many eligible connections of a host are exempt (rule 2).
local EXEMPT_PER_HOST = 2

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
