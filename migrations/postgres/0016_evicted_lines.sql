-- The lines of a session evicted at the session cap are listed here by origin, in the commit
-- that saves its share of the retired totals, instead of being deleted: recovery reads back
-- only lines not listed, so a replay does not count the session again. Deleting them needed
-- an index of every line by origin, and its inserts (each source's line numbers growing side
-- by side in one B-tree) split pages in its middle: a tenth of SQLite's writer in the tail
-- benchmark. A listing's evicted_at is the latest receive time stored when it was made, no
-- earlier than any line it names: retention prunes it together with them.
CREATE TABLE evicted_lines (
    source_id BIGINT NOT NULL,
    line BIGINT NOT NULL,
    evicted_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, line)
);
CREATE INDEX evicted_lines_at ON evicted_lines (evicted_at);
DROP INDEX events_origin;
