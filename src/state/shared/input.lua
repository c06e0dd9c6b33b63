-- Numbers sources once for every replica: a source (`instance/input`) gets the next global
-- id the first time any replica names it, and keeps it.
--
-- KEYS[1]: the hash of source -> id, with the counter '#next'.
-- ARGV: source names. Returns their ids, in order.

local ids = {}
for i = 1, #ARGV do
  local id = redis.call('HGET', KEYS[1], ARGV[i])
  if not id then
    id = redis.call('HINCRBY', KEYS[1], '#next', 1)
    redis.call('HSET', KEYS[1], ARGV[i], id)
  end
  ids[i] = tonumber(id)
end
return ids
