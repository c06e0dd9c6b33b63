-- One bucket's sessions with work to do: those whose earliest key on the sidecar's clock has
-- come (`due`), those whose earliest key on event time the low watermark has reached
-- (`settle`), and those with arrivals not yet taken in by the rules. Read only: what to do
-- with them is decided in Rust and committed by judge.lua.
--
-- KEYS[1]: due (sorted set), KEYS[2]: settle (sorted set), KEYS[3]: arriving (set).
-- ARGV[1]: the sidecar's clock now, ARGV[2]: the low watermark (both integer ms).
-- Returns three lists of session ids.

return {
  redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]),
  redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2]),
  redis.call('SMEMBERS', KEYS[3]),
}
