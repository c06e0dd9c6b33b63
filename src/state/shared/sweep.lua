-- One bucket's sessions with work to do: those whose earliest key on the sidecar's clock has
-- come (`due`), those whose earliest key on event time the low watermark has reached
-- (`settle`), and those with arrivals not yet taken in by the rules. Read only: what to do
-- with them is decided in Rust and committed by judge.lua.
--
-- KEYS[1]: due (sorted set), KEYS[2]: settle (sorted set), KEYS[3]: arriving (set),
-- KEYS[4]: the bucket's counters (hash; field 'v' is its version).
-- ARGV[1]: the sidecar's clock now, ARGV[2]: the low watermark (both integer ms).
-- Returns three lists of session ids, then the bucket's summary for the index (index.lua):
-- its version, earliest due and settle scores ('' for none) and how many sessions have
-- arrivals.

local function first(key)
  local f = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return f[2] or ''
end

return {
  redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]),
  redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2]),
  redis.call('SMEMBERS', KEYS[3]),
  {
    redis.call('HGET', KEYS[4], 'v') or '0',
    first(KEYS[1]),
    first(KEYS[2]),
    tostring(redis.call('SCARD', KEYS[3])),
  },
}
