-- Live-query campaigns (Fleet: distributed_query_campaigns). Status 0 waiting, 1 running,
-- 2 complete. Times are Unix seconds.
CREATE TABLE distributed_query_campaigns (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    query_sql       TEXT    NOT NULL,
    query_id        INTEGER,
    user_id         INTEGER,
    status          INTEGER NOT NULL DEFAULT 1,
    targets_count   INTEGER NOT NULL DEFAULT 0,
    online_count    INTEGER NOT NULL DEFAULT 0,
    responded_count INTEGER NOT NULL DEFAULT 0,
    finish_reason   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

-- What the admin selected; type 0 label, 1 host, 2 team (Fleet's numbering).
CREATE TABLE distributed_query_campaign_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES distributed_query_campaigns (id) ON DELETE CASCADE,
    type        INTEGER NOT NULL,
    target_id   INTEGER NOT NULL
);
CREATE INDEX campaign_targets_campaign ON distributed_query_campaign_targets (campaign_id);
