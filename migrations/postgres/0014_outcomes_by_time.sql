-- Outcome rows are keyed by when their session was first seen (the receive time of its first
-- line), then its id, not by the id alone: an index on random session ids made every row's
-- insert and judgement dirty a random page; sessions are first seen in time order, so a
-- commit's rows land on the key's last pages. A session id that lives again after it was
-- forgotten is another row. The key's prefix is also what retention prunes on, so
-- `outcomes_seen` goes. A row the old schema wrote is keyed by its session's earliest stored
-- line (what a replay of the store finds first), else by its dispatch's receive time.
CREATE TABLE outcomes_by_time (
    -- receive time of the session's first line (epoch ms): the key's prefix, what retention
    -- prunes on
    first_seen BIGINT NOT NULL,
    session TEXT NOT NULL,
    org TEXT,
    runner TEXT NOT NULL,
    -- event time of the dispatch (epoch ms): what since/until select on
    dispatched_at BIGINT NOT NULL,
    -- pending, matched, late, mismatched, unclaimed
    outcome TEXT NOT NULL,
    latency_ms BIGINT,
    skew_clamped INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    duplicate_cross INTEGER NOT NULL,
    -- claims after a release
    reclaims INTEGER NOT NULL,
    CONSTRAINT outcomes_key PRIMARY KEY (first_seen, session)
);
INSERT INTO outcomes_by_time (first_seen, session, org, runner, dispatched_at, outcome,
    latency_ms, skew_clamped, duplicate, duplicate_cross, reclaims)
SELECT COALESCE(f.first_seen, o.seen_at), o.session, o.org, o.runner, o.dispatched_at,
    o.outcome, o.latency_ms, o.skew_clamped, o.duplicate, o.duplicate_cross, o.reclaims
FROM outcomes o
LEFT JOIN (SELECT session, MIN(received_at) AS first_seen FROM events
    WHERE session IS NOT NULL GROUP BY session) f ON f.session = o.session
ORDER BY 1, 2;
DROP TABLE outcomes;
ALTER TABLE outcomes_by_time RENAME TO outcomes;
CREATE INDEX outcomes_org ON outcomes (org, dispatched_at);
CREATE INDEX outcomes_dispatched ON outcomes (dispatched_at);
