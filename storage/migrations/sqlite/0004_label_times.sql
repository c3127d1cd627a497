-- When each host last answered the dynamic-label queries (Unix seconds), so a restart does not
-- make every host evaluate its labels at once.
ALTER TABLE hosts ADD COLUMN label_updated_at INTEGER NOT NULL DEFAULT 0;
