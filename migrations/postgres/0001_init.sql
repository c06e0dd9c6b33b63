-- Accepted events, as the lines that carried them: recovery re-parses and replays them, so
-- live state after a restart is exactly what it was. Pruned when their session is forgotten.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    source TEXT NOT NULL,
    line BIGINT NOT NULL,
    session TEXT,
    entry_id TEXT,
    default_runtime TEXT,
    raw BYTEA NOT NULL
);
CREATE INDEX events_session ON events (session);

-- How far each followed file was read, committed with the events it produced.
CREATE TABLE positions (
    path TEXT PRIMARY KEY,
    dev BIGINT NOT NULL,
    ino BIGINT NOT NULL,
    head BYTEA NOT NULL,
    "offset" BIGINT NOT NULL,
    partial BYTEA NOT NULL
);

-- Totals since the store was created (the JSON of `app::Summary`).
CREATE TABLE summary (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    json TEXT NOT NULL
);
