--- @include "util"
--- @include "counters"
--- @include "farm-record"

-- Users: who consumes, where, and what changed during the current item (docs/design.md §2; "rule N"
-- below is its rule N).

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
