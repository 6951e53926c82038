--- @include "util"

-- A finished day in the peaks hash: under the day's number, these values comma-separated, '' where
-- unknown (collector/src/engine/redis-schema.ts reads them by the same names).
local DAY_RECORD_FIELDS = { 'peakUsers', 'peakAtMs', 'seats', 'maxOveruse', 'admissions', 'msOverSeats' }

local function optInt(n)
  if n == nil then return '' end
  return int(n)
end

-- When the UTC day `day` ends (ms).
local function dayEndMs(day)
  return (day + 1) * DAY_MS
end

-- The rule by which a day's record is made from the meta fields of the day (docs/design.md §2
-- rule 7), as of endMs: time over seats still running counts up to endMs. closeDay writes it at the
-- day's end; openDay.lua reads the day still open as of now by the same rule.
local function dayRecord(meta, endMs)
  local overMs = meta.overMs
  if meta.overSince ~= nil then overMs = (overMs or 0) + math.max(0, endMs - meta.overSince) end
  local admissions = nil
  if meta.admDay ~= nil then admissions = (meta.admissions or 0) - meta.admDay end
  local values = {
    peakUsers = int(meta.peakToday or 0), peakAtMs = optInt(meta.peakAt), seats = optInt(meta.daySeats),
    maxOveruse = optInt(meta.overToday), admissions = optInt(admissions), msOverSeats = optInt(overMs),
  }
  local parts = {}
  for i = 1, #DAY_RECORD_FIELDS do parts[i] = values[DAY_RECORD_FIELDS[i]] end
  return table.concat(parts, ',')
end
