-- Whether the counters may be decided on. The ready marker holds the run id of the
-- Redis that the leading persister checked against the ledger (or rebuilt from it).
-- A Redis that restarted has a new run id: whatever it brought back (an RDB snapshot,
-- an append-only file, a replica's copy) waits for that check before anyone decides on it.
local function is_ready(marker)
  local checked_for = redis.call('GET', marker)
  return checked_for ~= false and checked_for == string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
