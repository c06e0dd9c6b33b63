-- Numbers sources once for every replica: a source (`instance/input`) gets the next global
-- id the first time any replica names it, and keeps it; the name its replica cites it by is
-- kept beside it, so every replica cites its lines alike.
--
-- KEYS[1]: the hash of source -> id, with the counter '#next'; KEYS[2]: the hash of id -> the
-- name its lines are cited by.
-- ARGV: pairs of a source and the name its lines are cited by ('' for none). Returns their
-- ids, in order.

local ids = {}
for i = 1, #ARGV, 2 do
  local id = redis.call('HGET', KEYS[1], ARGV[i])
  if not id then
    id = redis.call('HINCRBY', KEYS[1], '#next', 1)
    redis.call('HSET', KEYS[1], ARGV[i], id)
  end
  if ARGV[i + 1] ~= '' then
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
  end
  ids[#ids + 1] = tonumber(id)
end
return ids
