-- Appends finding writes published beside the judgements (feed.rs, `publish`) to one
-- bucket's feed, numbered by the bucket's counter 'feed' as judge.lua numbers its entries, so
-- a reader tells a gap the same way whoever appended.
--
-- KEYS[1]: the bucket's counters (hash), KEYS[2]: its feed (stream).
-- ARGV[1]: how long feed entries are kept (ms, on the server's clock, which stamps them);
-- then the entries, in order (each a finding write as JSON, field 'p').
-- Returns how many were appended. Not remembered (memo.rs): a call sent again after its
-- answer was lost appends its entries again, and writing a keyed finding twice changes
-- nothing.

local time = redis.call('TIME')
local trim = string.format('%d', math.max(0, tonumber(time[1]) * 1000 - tonumber(ARGV[1])))
for i = 2, #ARGV do
  local n = redis.call('HINCRBY', KEYS[1], 'feed', 1)
  redis.call('XADD', KEYS[2], 'MINID', '~', trim, '*', 'n', n, 'p', ARGV[i])
end
return #ARGV - 1
