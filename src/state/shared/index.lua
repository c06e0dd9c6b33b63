-- Writes buckets' summaries into the index every replica reads to find the buckets with
-- work to do. A summary is written only over one of the same or an older version of its
-- bucket (each bucket's version is moved by judge.lua in the bucket's own slot), so
-- summaries sent by replicas in any order leave the latest. The index is a hint: a bucket
-- written without its summary reaching here (a replica killed in between) is found by the
-- full sweep each replica makes when it renews its leases.
--
-- KEYS[1]: the index hash (bucket -> 'version|due|settle|arriving').
-- ARGV: groups of five: bucket, version, earliest due score, earliest settle score ('' for
-- none), sessions with arrivals.

for i = 1, #ARGV, 5 do
  local b, v = ARGV[i], tonumber(ARGV[i + 1])
  local old = redis.call('HGET', KEYS[1], b)
  local was = old and tonumber(string.match(old, '^(%d+)|'))
  if not was or v >= was then
    redis.call('HSET', KEYS[1], b,
      ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|' .. ARGV[i + 3] .. '|' .. ARGV[i + 4])
  end
end
return 0
