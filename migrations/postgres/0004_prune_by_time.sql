-- Lines are pruned by receive time (older than the retention), not session by session: an
-- index on random session ids made every insert dirty a random page; this one only appends.
DROP INDEX events_session;
CREATE INDEX events_received ON events (received_at);
