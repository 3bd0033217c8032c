-- Commit one decided batch atomically: check every guard, then write everything,
-- then append the batch to the ledger stream -- all in this one call, so there is
-- no moment at which a counter has moved and its record is missing.
--
-- KEYS[1] the ready marker, KEYS[2] the ledger stream; the other keys are
-- referred to by their index in KEYS.
-- ARGV[1] the stream entry (opaque bytes)
-- ARGV[2] the number of guards, then per guard: kind, key index, expected
--   kind "s": the key's value equals expected ("" = the key does not exist)
--   kind "n": the set at key has exactly expected members
-- then the number of writes, then per write: kind, key index, value, ttl
--   kind "S": SET key value (with PX ttl when ttl > 0)
--   kind "A": SADD key value (ttl unused)
-- Returns {1, entry id}; {0, n} when guard n failed (nothing written);
-- {-1} when the counters are not there (a new or flushed Redis, before rebuild).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end

local i = 3
for guard = 1, tonumber(ARGV[2]) do
  local kind, key, expected = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  local actual
  if kind == 's' then
    actual = redis.call('GET', key) or ''
  else
    actual = tostring(redis.call('SCARD', key))
  end
  if actual ~= expected then
    return {0, guard}
  end
  i = i + 3
end

local writes = tonumber(ARGV[i])
i = i + 1
for _ = 1, writes do
  local kind, key, value = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  if kind == 'S' then
    local ttl = tonumber(ARGV[i + 3])
    if ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      redis.call('SET', key, value)
    end
  else
    redis.call('SADD', key, value)
  end
  i = i + 4
end

return {1, redis.call('XADD', KEYS[2], '*', 'e', ARGV[1])}
