-- A session evicted at the session cap has its lines deleted by origin (source, line) in the
-- commit that saves its share of the retired totals, so a replay does not count it again.
-- Line numbers grow per source, so this index only appends, like events_received.
CREATE INDEX events_origin ON events (source, line);
