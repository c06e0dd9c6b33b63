-- How far each followed file was read, keyed by the file's identity (device, inode), never by
-- its path: a checkpoint follows its file through renames. The head and a checksum of the
-- bytes just before the offset tell a reused inode, or a file truncated and rewritten past
-- the offset with the same head, from the file that was read. Committed with the lines.
CREATE TABLE checkpoints (
    dev BIGINT NOT NULL,
    ino BIGINT NOT NULL,
    -- birth time (ns), 0 where the filesystem keeps none: a reused inode is another file
    born BIGINT NOT NULL,
    head BYTEA NOT NULL,
    "offset" BIGINT NOT NULL,
    tail_len BIGINT NOT NULL,
    tail_crc BIGINT NOT NULL,
    skipping BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (dev, ino)
);
-- Positions (kept by path and by identity) become checkpoints: the offset moves back to the
-- start of the held partial line, which is read again; no tail checksum is known yet.
INSERT INTO checkpoints (dev, ino, born, head, "offset", tail_len, tail_crc, skipping, source, path)
SELECT dev, ino, 0, head, "offset" - length(partial), 0, 0, FALSE, '', ''
FROM positions WHERE path LIKE '#%'
ON CONFLICT (dev, ino) DO NOTHING;
DROP TABLE positions;
