-- Lists of reports (`/api/reports`, the status page) read the latest flips first, bounded.
CREATE INDEX reports_flip_at ON reports (flip_at DESC, id);
