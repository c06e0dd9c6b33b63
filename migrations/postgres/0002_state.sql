-- Small pieces of durable state kept as JSON by name: the platform flag book (flips and the
-- last snapshot, so a restart neither loses nor repeats a flip).
CREATE TABLE state (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
