--- @include "keys"
--- @include "util"
--- @include "counters"

-- The farm's quotas (docs/design.md §6, "One farm against the others"): the sessions all its hosts
-- hold together, and the users new to it in a rolling minute. Checked here, in the script that
-- applies the frame, because only it sees the farm's sessions and users as they are: a check in
-- the collector would race every other connection of the farm, on every collector.

-- How long a user new to the farm counts against maxNewUsersPerMinute (ms).
local NEW_USER_WINDOW_MS = 60000

-- The farm's sessions before this script changed any (every indexed connection has a label), and
-- countDelta then: the script changes one host's connections only, so countDelta follows the rest.
local sessionsBase, sessionsDeltaAt = nil, 0

local function farmSessions()
  if sessionsBase == nil then
    local total = 0
    local values = rcall('HVALS', F.labels)
    for i = 1, #values do total = total + tonumber(values[i]) end
    for i = 1, #labelList do total = total + labelDeltas[labelList[i]] end
    sessionsBase, sessionsDeltaAt = total, countDelta
  end
  return sessionsBase + countDelta - sessionsDeltaAt
end

-- Users who came new to the farm within the minute, as of the first question (nil before it).
local windowCount = nil

local function openWindow(now)
  if windowCount == nil then
    rcall('ZREMRANGEBYSCORE', F.newUsers, '-inf', now - NEW_USER_WINDOW_MS)
    windowCount = rcall('ZCARD', F.newUsers)
  end
end

-- Whether the user consumes somewhere on the farm now (the users hash must hold its entry or
-- have it prefetched): one who does is never new to it.
local function consumesOnFarm(user)
  return cget(usersHash, user) and true or false
end

-- Whether the user came new to the farm within the minute: it does not count again (a user who
-- logs off and on again counts once).
local function cameNewLately(user, now)
  openWindow(now)
  return rcall('ZSCORE', F.newUsers, user) ~= false
end

-- Room for this many more new users within the minute.
local function newUsersRoom(now, budget)
  openWindow(now)
  return budget - windowCount
end

-- Counts these users as come new to the farm now; those already in the window keep their time.
local function admitNewUsers(users, now)
  if #users == 0 then return end
  openWindow(now)
  local score = int(now)
  for first = 1, #users, CHUNK do
    local args, n = {}, 0
    for i = first, math.min(#users, first + CHUNK - 1) do
      args[n + 1], args[n + 2] = score, users[i]
      n = n + 2
    end
    windowCount = windowCount + rcall('ZADD', F.newUsers, 'NX', unpack(args))
  end
  rcall('PEXPIRE', F.newUsers, NEW_USER_WINDOW_MS)
end
