-- Every finding (late, mismatched, unclaimed, duplicate and orphan claims, and the platform's
-- flips, drift, malformed flags and sessions missing from the logs), written in the commit of
-- the evidence that caused it; its resolution (a late claim) is an update in its own commit.
-- `key` tells one finding of a kind from another (the session; an orphan claim's number; an
-- org and a time), so a replay of the stored lines writes nothing twice. Pruned with the lines
-- (by `found_at`). `GET /api/findings` pages on (found_at, id) through these indexes.
CREATE TABLE findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    "key" TEXT NOT NULL,
    session TEXT,
    org TEXT,
    runner TEXT NOT NULL,
    -- the sidecar's clock (epoch ms) when found, and when resolved
    found_at BIGINT NOT NULL,
    resolved_at BIGINT,
    -- one sentence of evidence
    detail TEXT
);
CREATE UNIQUE INDEX findings_key ON findings (kind, "key");
CREATE INDEX findings_found ON findings (found_at, id);
CREATE INDEX findings_kind ON findings (kind, found_at, id);
CREATE INDEX findings_org ON findings (org, found_at, id);
CREATE INDEX findings_org_kind ON findings (org, kind, found_at, id);
