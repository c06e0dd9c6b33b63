-- The last line ends read of each followed file, 12 bytes each (offset u64, CRC-32 of every
-- byte before it u32, little-endian): a copy made at one of them before the last read, found
-- only after a restart with its original truncated, is told from a new file with the same
-- first bytes.
ALTER TABLE checkpoints ADD COLUMN marks BLOB NOT NULL DEFAULT x'';
