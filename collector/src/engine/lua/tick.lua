--[[
  Run every second by every collector for every farm. Keeps the farm's epoch (a value that
  vanishes with the data, so that a collector notices Redis coming back empty), applies what
  time alone changes farm-wide (a new UTC day, the overuse grace), and names the hosts that
  maintainHost must look at.

  KEYS: farm, rebuilding
    rebuilding     KEYS[18], the farm's hosts that owe their state after a loss (host → until, ms)
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 freshEpoch   a new epoch value, stored when the farm has none
    5 retireMs     hostRetireSeconds in ms
    6 forgetMs     forgetHostsAfterDays in ms
    7 knownEpoch   the farm's epoch as this collector last read it, '' when it never did
    8 unmarkedMs   how long a farm whose data was lost is held rebuilding before its hosts are marked

  A farm that had an epoch (knownEpoch) and has none lost its data: the fresh epoch is stored with a
  mark '' (no host) in rebuilding, in the same script, so that no read between the two sees the farm
  empty and not rebuilding. The collectors mark the hosts they ask to resend a Redis round trip or
  more later, each at its own round (under load seconds); the mark '' stays until it lapses after
  unmarkedMs, so that no collector's hosts read as resent before that collector has marked them.

  Output:
    {epoch, hosts, forget}   epoch: the farm's epoch now; hosts: hosts due for maintainHost;
                             forget: retired hosts due for forgetHost (at most 100 per tick)
]]
--- @include "keys"
--- @include "util"
--- @include "farm-record"

local now = nowMs()
local epoch = rcall('GET', F.epoch)
if not epoch then
  epoch = ARGV[4]
  rcall('SET', F.epoch, epoch)
  if ARGV[7] ~= '' then
    local unmarked = tonumber(ARGV[8])
    rcall('ZADD', KEYS[18], int(now + unmarked), '')
    if rcall('PTTL', KEYS[18]) < unmarked then rcall('PEXPIRE', KEYS[18], unmarked) end
  end
end

beginFarm(now)
saveFarm()

local due, seen = {}, {}
local function add(list)
  for _, name in ipairs(list) do
    if not seen[name] then
      seen[name] = true
      due[#due + 1] = name
    end
  end
end
add(rcall('ZRANGEBYSCORE', F.lease, '-inf', int(now)))
add(rcall('ZRANGEBYSCORE', F.stale, '-inf', int(now - tonumber(ARGV[5]))))
-- Hosts indexed under another countDisconnected than the farm's (rare: after a reload).
if RULES.countDisconnected then
  add(rcall('SMEMBERS', F.cdOff))
elseif rcall('SCARD', F.cdOff) < rcall('ZCARD', F.seen) then
  for _, name in ipairs(rcall('ZRANGE', F.seen, 0, -1)) do
    if rcall('SISMEMBER', F.cdOff, name) == 0 then add({ name }) end
  end
end
local forget = {}
for _, name in ipairs(rcall('ZRANGEBYSCORE', F.seen, '-inf', int(now - tonumber(ARGV[6])), 'LIMIT', 0, 100)) do
  if rcall('SISMEMBER', F.retired, name) == 1 then forget[#forget + 1] = name end
end
return { epoch, due, forget }
