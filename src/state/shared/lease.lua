-- Takes or renews a bucket's sweep lease: one replica at a time sweeps a bucket's overdue
-- sessions; a replica that dies stops renewing, its lease expires and another takes over.
-- The holder renewing keeps it (no gap in which two replicas sweep).
--
-- KEYS[1]: the bucket's lease. ARGV[1]: the instance asking. ARGV[2]: the lease in ms, or
-- '0' to give it up (only its holder may).
-- Returns 1 when the asker holds the lease afterwards (or gave it up), else 0.

local holder = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if holder == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
