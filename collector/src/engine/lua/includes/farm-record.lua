--- @include "keys"
--- @include "util"
--- @include "counters"
--- @include "meta"
--- @include "day-record"

-- Farm record: loaded once per script, saved once at its end; the day and the overuse grace as
-- time alone moves them (docs/design.md §2 rules 7 and 8; "rule N" below is its rule N).

-- Daily peaks older than this many days are dropped (rule 7 keeps at least 400).
local PEAK_DAYS_KEPT = 450

local farm = nil
-- The record as loaded, so that saveFarm writes only what changed (an idle farm's tick writes nothing).
local loaded = nil
local seats = 0

local function loadFarm()
  loaded = readMeta()
  farm = {}
  for field, value in pairs(loaded) do farm[field] = value end
  for _, field in ipairs({ 'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'corrections', 'version' }) do
    farm[field] = farm[field] or 0
  end
end

-- Marks the farm's state as changed in what /metrics shows, for every collector's scrape cache.
local function changed()
  farm.version = farm.version + 1
end

-- Writes back the farm record and every counter the script changed.
local function saveFarm()
  saveCounters()
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

-- Writes the finished record of farm.day into peaks. Time over seats still running is counted to
-- the day's end: the state Redis held lasted until a script ran.
local function closeDay()
  rcall('HSET', F.peaks, int(farm.day), dayRecord(farm, dayEndMs(farm.day)))
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
