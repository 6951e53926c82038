--[[
  The farm's keys and its rules, as every script receives them. Key and field names are those of
  collector/src/engine/redis-schema.ts (collector/test/redis-schema.test.ts holds them to it).

  The includes beside this one are the incremental form of the license rules (docs/design.md §2).
  The pure statement of the rules is protocol/src/license-model.ts; the scripts must agree with it,
  and the property tests hold them to it.

  KEYS
    farm keys, in every script: KEYS[1..17]
      1 epoch   2 meta   3 users   4 live   5 order   6 labels   7 peaks
      8 lease   9 seen  10 agents 11 counts 12 retired 13 cdoff  14 stale  15 sources
     16 bindings 17 newUsers
    host keys, in scripts about one host: KEYS[18..20]
     18 host   19 conns   20 elig

  ARGV
    the farm's rules, in every script, read here:
      1 seats              licensed concurrent users, or '' for none (an SPLA farm without a cap:
                           never over)
      2 countDisconnected  '1' or '0'
      3 graceSeed          overuse grace start given by the configuration (ms), or ''
    each script's own arguments follow, from ARGV[4]
]]
local F = {
  epoch = KEYS[1], meta = KEYS[2], users = KEYS[3], live = KEYS[4], order = KEYS[5],
  labels = KEYS[6], peaks = KEYS[7], lease = KEYS[8], seen = KEYS[9], agents = KEYS[10],
  counts = KEYS[11], retired = KEYS[12], cdOff = KEYS[13], stale = KEYS[14], sources = KEYS[15],
  bindings = KEYS[16], newUsers = KEYS[17],
}
local H = { host = KEYS[18], conns = KEYS[19], elig = KEYS[20] }

local function argSeed(value)
  if value == nil or value == '' then return nil end
  return tonumber(value)
end

local RULES = {
  seats = tonumber(ARGV[1]),
  countDisconnected = ARGV[2] == '1',
  graceSeed = argSeed(ARGV[3]),
}

-- No cap: comparisons against it are never over.
local UNCAPPED = math.huge
