-- Reads one bucket's feed after the last entry a replica read (see feed.rs).
--
-- KEYS[1]: the bucket's feed (a stream). ARGV[1]: the id of the last entry read ('0': none
-- yet), ARGV[2]: how many entries at most.
-- Returns {found, entries}: found is 0 when the last entry read is still there (or none was
-- read yet); 1 when it is gone (a failover took it back) and the entries come after the last
-- one before it that is left, read again; 2 when entries after it were trimmed before they
-- were read (the replica was away longer than the feed is kept). Entries as XRANGE gives
-- them.

local after = ARGV[1]
local found = 0

-- An entry id as two numbers (milliseconds, sequence).
local function id(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms or s) or 0, tonumber(seq) or 0
end

local function later(a, b)
  local am, as = id(a)
  local bm, bs = id(b)
  return am > bm or (am == bm and as > bs)
end

if after ~= '0' and redis.call('EXISTS', KEYS[1]) == 1
    and #redis.call('XRANGE', KEYS[1], after, after) == 0 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local deleted = '0-0'
  for i = 1, #info, 2 do
    if info[i] == 'max-deleted-entry-id' then
      deleted = info[i + 1]
    end
  end
  if later(deleted, after) then
    found = 2
  else
    local before = redis.call('XREVRANGE', KEYS[1], after, '-', 'COUNT', 1)
    found = 1
    if #before == 1 then
      after = before[1][1]
    else
      after = '0'
    end
  end
end
return {found, redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', ARGV[2])}
