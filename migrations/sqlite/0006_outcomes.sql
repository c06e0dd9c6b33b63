-- One row per dispatched session, written in the commit that saw its dispatch (outcome
-- 'pending') and updated in the commit that judged it: the filtered /api/summary is SQL
-- aggregates over these, never a re-judging of the stored lines. Pruned with the lines (by the
-- receive time of the dispatch, `seen_at`).
CREATE TABLE outcomes (
    session TEXT PRIMARY KEY,
    org TEXT,
    runner TEXT NOT NULL,
    -- event time of the dispatch (epoch ms): what since/until select on
    dispatched_at BIGINT NOT NULL,
    -- receive time of the dispatch (epoch ms): what retention prunes on
    seen_at BIGINT NOT NULL,
    -- pending, matched, late, mismatched, unclaimed
    outcome TEXT NOT NULL,
    latency_ms BIGINT,
    skew_clamped INTEGER NOT NULL,
    duplicate INTEGER NOT NULL,
    duplicate_cross INTEGER NOT NULL,
    -- claims after a release
    reclaims INTEGER NOT NULL
);
CREATE INDEX outcomes_org ON outcomes (org, dispatched_at);
CREATE INDEX outcomes_dispatched ON outcomes (dispatched_at);
CREATE INDEX outcomes_seen ON outcomes (seen_at);
-- Totals are derived from the evidence (retired totals + replay); the saved summary was unused.
DROP TABLE summary;
