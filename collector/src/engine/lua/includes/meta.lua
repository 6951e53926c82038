--- @include "keys"
--- @include "util"

-- The current UTC day's record (docs/design.md §2 rule 7) lives in meta: peakToday and peakAt (when it was first
-- reached), daySeats, overToday (highest overuse), admDay (admissions at the day's start), overMs
-- (closed time over seats) and overSince (start of the running time over seats). When the day
-- turns, closeDay writes it into peaks; openDay.lua reads it as of now by the same rule.
local META_FIELDS = {
  'exempt', 'unverified', 'admissions', 'nextOrder', 'peak', 'peakToday', 'day',
  'graceStart', 'graceSeats', 'graceSeed', 'corrections', 'lastUpdate', 'version',
  'peakAt', 'daySeats', 'overToday', 'admDay', 'overMs', 'overSince',
}

-- The meta hash, each field a number, nil where absent: one HMGET.
local function readMeta()
  local values = rcall('HMGET', F.meta, unpack(META_FIELDS))
  local meta = {}
  for i, field in ipairs(META_FIELDS) do
    meta[field] = tonumber(values[i])
  end
  return meta
end
