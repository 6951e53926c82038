--[[
  Gives a host to the connection whose hello was accepted: the newest connection owns a host,
  whichever collector holds it (DESIGN §3). Starts or renews the host's lease.

  Input:
    KEYS[1..14] farm keys, KEYS[15..17] host keys
    ARGV[1] epoch the collector knows for the farm
    ARGV[2] owner: the connection's id
    ARGV[3] host (lower case)
    ARGV[4] stream
    ARGV[5] agent name/version or ''
    ARGV[6] lease length (ms)
    ARGV[7] maxHosts
    ARGV[8] seats
    ARGV[9] countDisconnected: '1' or '0'
    ARGV[10] overuse grace seed (ms) or ''

  Output:
    {'ok', lastSeq}   lastSeq: last applied seq of this host and stream, 0 for a new stream
    {'full'}          a new host, and the farm already has maxHosts hosts that are not retired
    {'epoch'}         the farm's epoch is not the one given; nothing written
]]
--- @include "farm-state"

if rcall('GET', F.epoch) ~= ARGV[1] then return { 'epoch' } end
local name = ARGV[3]
local counted = rcall('ZSCORE', F.seen, name) and rcall('SISMEMBER', F.retired, name) == 0
if not counted and rcall('ZCARD', F.seen) - rcall('SCARD', F.retired) >= tonumber(ARGV[7]) then
  return { 'full' }
end

local now = nowMs()
beginFarm(now, tonumber(ARGV[8]), argSeed(ARGV[10]))
local host = loadHost(name, ARGV[9] == '1')
if host.stream ~= ARGV[4] then
  host.seq = 0
  rcall('HSET', H.state, 'stream', ARGV[4])
end
rcall('HSET', H.state, 'owner', ARGV[2])
if ARGV[5] ~= '' then
  rcall('HSET', F.agents, name, ARGV[5])
else
  rcall('HDEL', F.agents, name)
end
if rcall('HEXISTS', F.counts, name) == 0 then rcall('HSET', F.counts, name, 0) end
renewLease(host, now, tonumber(ARGV[6]))
settle(now)
saveHost(host)
saveFarm()
return { 'ok', host.seq }
