-- Merges sources' watermark news into the one hash every replica reads, so the low watermark
-- is the same cluster-wide: a replica waits for the evidence another replica's sources still
-- have to deliver.
--
-- KEYS[1]: the watermark hash, source name -> 'high|last_seen|backlog' (high may be empty:
-- known, nothing delivered yet; backlog '1' or '0').
-- ARGV: groups of four: source, the largest event time delivered ('' for none), the
-- sidecar's clock now, backlog ('1', '0', or '' to leave it as it is).
-- Returns the whole hash (source, value, source, value, …).
-- Times stay the decimal strings they came as; Lua compares them as numbers (exact below
-- 2^53 ms).

for i = 1, #ARGV, 4 do
  local src, high, now, backlog = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local h, seen, b = '', now, '0'
  local old = redis.call('HGET', KEYS[1], src)
  if old then
    h, seen, b = string.match(old, '^([^|]*)|([^|]*)|([^|]*)$')
    if not h then
      h, seen, b = '', now, '0'
    end
    if tonumber(now) > tonumber(seen) then
      seen = now
    end
  end
  if high ~= '' and (h == '' or tonumber(high) > tonumber(h)) then
    h = high
  end
  if backlog ~= '' then
    b = backlog
  end
  redis.call('HSET', KEYS[1], src, h .. '|' .. seen .. '|' .. b)
end
-- Every source after the merge, so a replica learns the low watermark in the same round trip.
return redis.call('HGETALL', KEYS[1])
