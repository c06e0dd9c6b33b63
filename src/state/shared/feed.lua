-- Reads one bucket's feed after the last entry a replica read (see feed.rs).
--
-- KEYS[1]: the bucket's feed (a stream). ARGV[1]: the id of the last entry read ('0': none
-- yet), ARGV[2]: how many entries at most.
-- Returns {found, entries}: found is 0 when the last entry read is still there (or none was
-- read yet), 1 when it is gone — a failover took it back, or trimming did — and the entries
-- come after the last one before it that is left (from the first, if none is). Entries as
-- XRANGE gives them; each is numbered (field 'n'), so the reader tells a gap.

local after = ARGV[1]
local found = 0
if after ~= '0' and #redis.call('XRANGE', KEYS[1], after, after) == 0 then
  found = 1
  local before = redis.call('XREVRANGE', KEYS[1], after, '-', 'COUNT', 1)
  if #before == 1 then
    after = before[1][1]
  else
    after = '0'
  end
end
return {found, redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', ARGV[2])}
