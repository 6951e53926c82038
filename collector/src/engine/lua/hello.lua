--[[
  Gives a host to the connection whose hello was accepted: the newest connection owns a host,
  whichever collector holds it (docs/design.md §3). Starts or renews the host's lease.

  KEYS: farm, host
  ARGV: farm rules (1-3, see includes/keys.lua), then
    4 epoch      the farm's epoch as the collector knows it
    5 owner      the connection's id
    6 host       host name, lower case
    7 stream     the agent's stream
    8 agent      agent name/version, or ''
    9 leaseMs    lease length (ms)
   10 maxHosts   most hosts the farm may have that are not retired
   11 maxKnownHosts  most hosts the farm may know, retired ones included (until forgotten)
   12 binding    'key': the host's binding is checked and set (docs/design.md §6, "Host binding");
                 'none': the farm does not bind its hosts (and a pseudo-host of the broker)
   13 keyHash    sha256 hex of the host key the hello carried, or '' for an agent that sent none

  Output:
    {'ok', lastSeq}   lastSeq: last applied seq of this host and stream, 0 for a new stream; a host
                      not bound yet is bound to keyHash (when given)
    {'bound'}         the host is bound to another key than keyHash (or the hello carried none);
                      nothing written
    {'full', 'hosts'} a new or retired host, and the farm already has maxHosts hosts that are not retired
    {'full', 'known'} a new host, and the farm already knows maxKnownHosts hosts
    {'epoch'}         the farm's epoch is not the one given; nothing written
]]
--- @include "keys"
--- @include "util"
--- @include "farm-record"
--- @include "users"
--- @include "hosts"

if rcall('GET', F.epoch) ~= ARGV[4] then return { 'epoch' } end
local name = ARGV[6]
local binding = ARGV[12] == 'key' and rcall('HGET', F.bindings, name)
if binding and binding ~= ARGV[13] then return { 'bound' } end
local known = rcall('ZSCORE', F.seen, name)
local counted = known and rcall('SISMEMBER', F.retired, name) == 0
if not counted then
  local hosts = rcall('ZCARD', F.seen)
  if hosts - rcall('SCARD', F.retired) >= tonumber(ARGV[10]) then return { 'full', 'hosts' } end
  -- Retired hosts are kept until forgotten: without this cap, hosts that come and go (or names
  -- made up with a leaked token) would grow the farm without bound.
  if not known and hosts >= tonumber(ARGV[11]) then return { 'full', 'known' } end
end

local now = nowMs()
beginFarm(now)
local host = loadHost(name)
syncIndex(host)
if host.stream ~= ARGV[7] then
  host.seq = 0
  rcall('HSET', H.host, 'stream', ARGV[7])
end
rcall('HSET', H.host, 'owner', ARGV[5])
if ARGV[8] ~= '' then
  rcall('HSET', F.agents, name, ARGV[8])
else
  rcall('HDEL', F.agents, name)
end
if rcall('HEXISTS', F.counts, name) == 0 then rcall('HSET', F.counts, name, 0) end
if ARGV[12] == 'key' and not binding and ARGV[13] ~= '' then rcall('HSET', F.bindings, name, ARGV[13]) end
renewLease(host, now, tonumber(ARGV[9]))
settle(now)
changed()
saveHost(host)
saveFarm()
return { 'ok', host.seq }
