-- Stores one bucket's share of a batch of events: the exact re-delivery test, done where the
-- records live, so two replicas delivering the same event at once store it once.
--
-- KEYS[1]: the bucket's counters (a hash). KEYS[2]: the bucket's set of sessions with
-- arrivals. KEYS[3]: the bucket's memo (a hash). KEYS[4..]: session record hashes, their
-- arrival hashes and daemon heartbeat sets, all of the bucket (one slot).
-- ARGV[1]: the receive time, ARGV[2] the caller's memo field, ARGV[3] the call's token: a
-- call whose token is already under the field was run (its answer was lost) and is answered
-- as then, changing nothing (memo.rs). Then groups of six: op ('r' a session's record, 'h' a
-- heartbeat), the index of its key in KEYS, the record's identity (field) and its value
-- ('input:line:name'), the index of the session's arrivals hash and the session id; a
-- heartbeat's identity is its time and its other values are unused.
-- Returns one 1 (new) or 0 (re-delivered) per group, in order.
--
-- A new record is also an arrival (field -> 'receive time:position'), in the same step: the
-- rules take it in later (judge.lua removes it), whichever replica gets there, so a replica
-- killed between storing and judging loses nothing.
--
-- A re-delivery from an earlier origin replaces the stored value, as the in-process
-- correlator keeps the earliest origin: evidence must not depend on arrival order.
-- A daemon's 64 latest heartbeat times are kept: a shipper re-delivers a recent batch.

local function origin(v)
  local input, line = string.match(v or '', '^(%d+):(%d+):')
  return tonumber(input), tonumber(line)
end

local memo = redis.call('HGET', KEYS[3], ARGV[2])
if memo and string.sub(memo, 1, #ARGV[3] + 1) == ARGV[3] .. ' ' then
  local again = {}
  for d in string.gmatch(string.sub(memo, #ARGV[3] + 2), '%d') do
    again[#again + 1] = tonumber(d)
  end
  return again
end

local fates = {}
local fresh, again, sessions = 0, 0, 0
local seen = {}
local now = ARGV[1]
for i = 4, #ARGV, 6 do
  local op, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  local field, value = ARGV[i + 2], ARGV[i + 3]
  local new
  if op == 'r' then
    if not seen[key] then
      seen[key] = true
      if redis.call('EXISTS', key) == 0 then
        sessions = sessions + 1
      end
    end
    new = redis.call('HSETNX', key, field, value) == 1
    if new then
      redis.call('HSET', KEYS[tonumber(ARGV[i + 4])], field, now .. ':' .. #fates)
      redis.call('SADD', KEYS[2], ARGV[i + 5])
    else
      local oi, ol = origin(redis.call('HGET', key, field))
      local ni, nl = origin(value)
      if oi and ni and (ni < oi or (ni == oi and nl < ol)) then
        redis.call('HSET', key, field, value)
      end
    end
  else
    new = redis.call('ZADD', key, 'NX', field, field) == 1
    redis.call('ZREMRANGEBYRANK', key, 0, -65)
  end
  if new then
    fresh = fresh + 1
    fates[#fates + 1] = 1
  else
    again = again + 1
    fates[#fates + 1] = 0
  end
end
if fresh > 0 then
  redis.call('HINCRBY', KEYS[1], 'events', fresh)
end
if again > 0 then
  redis.call('HINCRBY', KEYS[1], 'redelivered', again)
end
if sessions > 0 then
  redis.call('HINCRBY', KEYS[1], 'sessions', sessions)
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. ' ' .. table.concat(fates))
return fates
