-- Commits what the rules decided for some sessions of one bucket: a compare-and-set per
-- session, so of several replicas that judged a session from the same state exactly one
-- commits, and only it emits the changes. A session commits when its mark still has the
-- version the rules read and no arrival came since (its arrivals are exactly those the rules
-- took in): the judgement saw every piece of stored evidence. The loser reloads.
--
-- KEYS[1]: marks (hash), KEYS[2]: due, KEYS[3]: settle (sorted sets), KEYS[4]: counters
-- (hash), KEYS[5]: arriving (set), KEYS[6]: the feed (stream), KEYS[7]: the memo (hash). Then
-- per session: its records hash, its arrivals hash.
-- ARGV[1]: how long feed entries are kept (ms, on the server's clock, which stamps them),
-- ARGV[2] the caller's memo field, ARGV[3] the call's token: a call whose token is already
-- under the field was run (its answer was lost) and is answered as then, changing nothing
-- but the summary's version (memo.rs). Then per session a group: id, the
-- version read ('' when it had no mark), the new mark ('' to forget the session: records,
-- arrivals and mark deleted), its due score and settle score ('' for none), its feed entry
-- ('' for none: appended when it commits, numbered by the bucket's counter 'feed', so every
-- replica reads the changes it made), the
-- number m of counters it moves, then m pairs (counter, delta): the
-- pending and overdue gauges and the cumulative totals, so the totals of every replica's
-- judgements are counted with the judgement itself, once; then the number n of arrivals
-- taken in, then those n arrival fields.
-- Returns one 1 (committed) or 0 (lost: changed since it was read) per session, in order,
-- then the bucket's summary for the index (as sweep.lua's), its version moved first.

local out = {}
local i, s = 4, 0
local time = redis.call('TIME')
local trim = string.format('%d', math.max(0, tonumber(time[1]) * 1000 - tonumber(ARGV[1])))
local memo = redis.call('HGET', KEYS[7], ARGV[2])
if memo and string.sub(memo, 1, #ARGV[3] + 1) == ARGV[3] .. ' ' then
  for d in string.gmatch(string.sub(memo, #ARGV[3] + 2), '%d') do
    out[#out + 1] = tonumber(d)
  end
  i = #ARGV + 1
end
while i <= #ARGV do
  s = s + 1
  local id, version, mark = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local due, settle, feed = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local m = tonumber(ARGV[i + 6])
  local at = i + 7 + 2 * m
  local n = tonumber(ARGV[at])
  local records, arrivals = KEYS[6 + 2 * s], KEYS[7 + 2 * s]
  local current = redis.call('HGET', KEYS[1], id)
  local read = ''
  if current then
    read = string.match(current, '^(%d+)|') or 'unreadable'
  end
  if read ~= version or redis.call('HLEN', arrivals) ~= n then
    out[s] = 0
  else
    if mark == '' then
      redis.call('HDEL', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      redis.call('SREM', KEYS[5], id)
      redis.call('DEL', arrivals)
      if redis.call('DEL', records) == 1 then
        redis.call('HINCRBY', KEYS[4], 'sessions', -1)
      end
    else
      redis.call('HSET', KEYS[1], id, mark)
      if due == '' then
        redis.call('ZREM', KEYS[2], id)
      else
        redis.call('ZADD', KEYS[2], due, id)
      end
      if settle == '' then
        redis.call('ZREM', KEYS[3], id)
      else
        redis.call('ZADD', KEYS[3], settle, id)
      end
      if n > 0 then
        redis.call('HDEL', arrivals, unpack(ARGV, at + 1, at + n))
      end
      redis.call('SREM', KEYS[5], id)
    end
    for c = 0, m - 1 do
      redis.call('HINCRBY', KEYS[4], ARGV[i + 7 + 2 * c], ARGV[i + 8 + 2 * c])
    end
    if feed ~= '' then
      -- Numbered, so a reader tells entries trimmed before it read them (a gap) from entries
      -- a failover took back (read again).
      local n = redis.call('HINCRBY', KEYS[4], 'feed', 1)
      redis.call('XADD', KEYS[6], 'MINID', '~', trim, '*', 'n', n, 'e', feed)
    end
    out[s] = 1
  end
  i = at + 1 + n
end
if s > 0 then
  redis.call('HSET', KEYS[7], ARGV[2], ARGV[3] .. ' ' .. table.concat(out))
end
local function first(key)
  local f = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return f[2] or ''
end
local v = redis.call('HINCRBY', KEYS[4], 'v', 1)
return {
  out,
  { tostring(v), first(KEYS[2]), first(KEYS[3]), tostring(redis.call('SCARD', KEYS[5])) },
}
