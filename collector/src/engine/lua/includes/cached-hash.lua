--- @include "util"

-- Hashes read once and written back at the end of the script.

local function cachedHash(key, decode)
  return { key = key, decode = decode, values = {}, dirty = {}, dirtyList = {} }
end

-- The field's value (false when absent), read from Redis the first time.
local function cget(hash, field)
  local value = hash.values[field]
  if value == nil then
    value = rcall('HGET', hash.key, field)
    if value and hash.decode then value = hash.decode(value) end
    hash.values[field] = value
  end
  return value
end

-- Reads, in one HMGET per chunk, the fields not read yet (one listed twice is asked for twice:
-- cheaper than a table of those seen).
local function cprefetch(hash, fields)
  local known, missing, n = hash.values, {}, 0
  for i = 1, #fields do
    local field = fields[i]
    if known[field] == nil then
      n = n + 1
      missing[n] = field
    end
  end
  for first = 1, #missing, CHUNK do
    local last = math.min(#missing, first + CHUNK - 1)
    local values = rcall('HMGET', hash.key, unpack(missing, first, last))
    for i = first, last do
      local value = values[i - first + 1]
      if value and hash.decode then value = hash.decode(value) end
      hash.values[missing[i]] = value
    end
  end
end

-- Sets (or, with false, removes) a field; written back by cflush.
local function cset(hash, field, value)
  hash.values[field] = value
  if not hash.dirty[field] then
    hash.dirty[field] = true
    hash.dirtyList[#hash.dirtyList + 1] = field
  end
end

local function cflush(hash, encode)
  local set, del = {}, {}
  local dirtyList = hash.dirtyList
  for i = 1, #dirtyList do
    local field = dirtyList[i]
    local value = hash.values[field]
    if value then
      set[#set + 1] = field
      set[#set + 1] = encode(value)
    else
      del[#del + 1] = field
    end
  end
  if #set > 0 then chunked('HSET', hash.key, set, 2) end
  if #del > 0 then chunked('HDEL', hash.key, del, 1) end
  hash.dirty, hash.dirtyList = {}, {}
end

-- Forgets what was read (after the key was deleted or rewritten directly).
local function creset(hash)
  hash.values, hash.dirty, hash.dirtyList = {}, {}, {}
end
