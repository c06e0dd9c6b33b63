-- When the follower last handed the checkpoint out (ms since the epoch; 0: before this column):
-- a checkpoint of a file no configured pattern follows any more is dropped a retention after.
ALTER TABLE checkpoints ADD COLUMN written_at INTEGER NOT NULL DEFAULT 0;
