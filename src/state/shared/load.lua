-- What the rules need of some sessions of one bucket, read at one instant: each one's mark,
-- records and arrivals.
--
-- KEYS[1]: the bucket's marks (a hash). Then per session: its records hash, its arrivals hash.
-- ARGV: the session ids, in the order of their keys.
-- Returns per session { mark or '', records (field, value, …), arrivals (field, value, …) }.

local out = {}
for i = 1, #ARGV do
  out[i] = {
    redis.call('HGET', KEYS[1], ARGV[i]) or '',
    redis.call('HGETALL', KEYS[2 * i]),
    redis.call('HGETALL', KEYS[2 * i + 1]),
  }
end
return out
