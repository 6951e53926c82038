-- What every script may use: Redis calls, time, integers as arguments, byte order, chunked commands.
local rcall = redis.call

local DAY_MS = 86400000
-- Most arguments given to one Redis command from Lua (unpack's stack limit is 8000).
local CHUNK = 1000

local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as Redis arguments, never in exponent notation.
local function int(n)
  return string.format('%d', n)
end

-- Orders strings by their bytes (Lua's < follows the server's collation locale).
local function bytesLess(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Calls `command key ...args` in chunks; args is a flat list whose chunks keep `step` items together.
local function chunked(command, key, args, step)
  local size = CHUNK - CHUNK % step
  for first = 1, #args, size do
    rcall(command, key, unpack(args, first, math.min(#args, first + size - 1)))
  end
end

-- Memoizes a function of one argument: each distinct value is computed once per script.
local function memoized(fn)
  local known = {}
  return function(value)
    local result = known[value]
    if result == nil then
      result = fn(value)
      known[value] = result
    end
    return result
  end
end

local function identity(value) return value end
