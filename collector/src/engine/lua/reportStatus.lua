--[[
  Keeps the latest status an agent sent about its session source (feature `status`): the latest
  wins, and it stays with the host until the host is forgotten.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch     the farm's epoch the connection saw at hello
    5 owner     the connection's id
    6 host      host name, lower case
    7 status    JSON {source, ok, error?, lastListAt?}, built by the collector from a valid frame

  Output:
    'ok'          kept; the farm's version moves when source, ok or error changed (a newer
                  lastListAt alone is read by the next scrape anyway)
    'superseded'  another connection owns the host; nothing written
    'epoch'       the farm's epoch is not the one given; nothing written
]]
--- @include "keys"
--- @include "util"

if rcall('GET', F.epoch) ~= ARGV[4] then return 'epoch' end
if rcall('HGET', H.host, 'owner') ~= ARGV[5] then return 'superseded' end

local old = rcall('HGET', F.sources, ARGV[6])
if old == ARGV[7] then return 'ok' end
rcall('HSET', F.sources, ARGV[6], ARGV[7])
local new = cjson.decode(ARGV[7])
old = old and cjson.decode(old)
if not old or old.source ~= new.source or old.ok ~= new.ok or old.error ~= new.error then
  rcall('HINCRBY', F.meta, 'version', 1)
end
return 'ok'
