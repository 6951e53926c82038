--[[
  Reads the record of the farm's day still open, as of a given time, by the rule that closes it
  (includes/day-record.lua), so that a day reads alike before and after it closes. Writes nothing.

  KEYS: farm
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 now   the time the record runs to (ms); time over seats still running counts up to it, or to
            the day's end when that came first

  Output:
    {day, record}   day: the open day's number; record: as the peaks hash holds a finished day
    {}              the farm has no day yet
]]
--- @include "keys"
--- @include "util"
--- @include "meta"
--- @include "day-record"

local meta = readMeta()
if meta.day == nil then return {} end
local now = tonumber(ARGV[4])
return { int(meta.day), dayRecord(meta, math.min(now, dayEndMs(meta.day))) }
