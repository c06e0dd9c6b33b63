-- Post-flip verification reports serve wrote once a detected flip's window had passed.
CREATE TABLE reports (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    flip_at BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX reports_org ON reports (org, flip_at);
