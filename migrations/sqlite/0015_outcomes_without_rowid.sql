-- Outcome rows live in their key's own B-tree (`WITHOUT ROWID`), not in a rowid table beside an
-- index of the key: every write of a row — a dispatch's insert, a judgement's upsert, a
-- refile, a duplicate mark — sought and wrote both, where one does. The outcome writes were
-- half of the tail benchmark's commit time, and the commits are what bounds it (README,
-- "Where it stands (session 20)"). Rows are small (about 100 bytes of 16 KiB pages) and
-- keyed by (first seen, session), the case SQLite's documentation gives for `WITHOUT ROWID`.
-- Postgres has no rowid tables; its schema stays.
CREATE TABLE outcomes_keyed (
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
) WITHOUT ROWID;
INSERT INTO outcomes_keyed (first_seen, session, org, runner, dispatched_at, outcome,
    latency_ms, skew_clamped, duplicate, duplicate_cross, reclaims)
SELECT first_seen, session, org, runner, dispatched_at, outcome, latency_ms, skew_clamped,
    duplicate, duplicate_cross, reclaims
FROM outcomes
ORDER BY first_seen, session;
DROP TABLE outcomes;
ALTER TABLE outcomes_keyed RENAME TO outcomes;
CREATE INDEX outcomes_org ON outcomes (org, dispatched_at);
CREATE INDEX outcomes_dispatched ON outcomes (dispatched_at);
