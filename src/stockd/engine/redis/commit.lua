-- Commit one decided batch atomically: check every guard, then write everything,
-- then append the batch to the ledger stream -- all in this one call, so there is
-- no moment at which a counter has moved and its record is missing.
--
-- KEYS[1] the ready marker, KEYS[2] the ledger stream; the other keys are
-- referred to by their index in KEYS.
-- ARGV[1] the stream entry (opaque bytes)
-- ARGV[2] the guards and ARGV[3] the writes, each a run of packed operations
-- (big-endian): kind (1 byte), key index (4), value length (4), value, ttl (4).
-- One packed string instead of thousands of arguments: for a batch of a thousand
-- reservations, building and parsing the arguments would cost more than the work.
--   guard "s": the key's value equals value ("" = the key does not exist)
--   guard "n": the set at key has exactly tonumber(value) members
--   write "S": SET key value (with PX ttl when ttl > 0)
--   write "A": SADD key value
-- Returns {1, entry id}; {0, key index} when a guard failed (nothing written);
-- {-1} when the counters are not ready: a new or flushed Redis before its rebuild, or a
-- restarted one not yet checked against the ledger. Runs after ready.lua, which defines is_ready.

if not is_ready(KEYS[1]) then
  return {-1}
end

local function operations(packed)
  local position = 1
  return function()
    if position > #packed then
      return nil
    end
    local kind, key, length, start = struct.unpack('>c1I4I4', packed, position)
    local value = string.sub(packed, start, start + length - 1)
    local ttl, after = struct.unpack('>I4', packed, start + length)
    position = after
    return kind, KEYS[key], value, ttl, key
  end
end

for kind, key, expected, _, index in operations(ARGV[2]) do
  local actual
  if kind == 's' then
    actual = redis.call('GET', key) or ''
  else
    actual = tostring(redis.call('SCARD', key))
  end
  if actual ~= expected then
    return {0, index}
  end
end

for kind, key, value, ttl in operations(ARGV[3]) do
  if kind == 'S' then
    if ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      redis.call('SET', key, value)
    end
  else
    redis.call('SADD', key, value)
  end
end

return {1, redis.call('XADD', KEYS[2], '*', 'e', ARGV[1])}
