-- Policies: a yes/no question about a host, asked as a query (rows: pass, no rows: fail, an
-- error: unknown). Global (team_id NULL) or per team; a name is unique within its team and
-- among global policies. `platform` is Fleet's comma-separated list of darwin, windows,
-- linux, chrome; empty: every platform. Times are Unix seconds.
CREATE TABLE policies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id     INTEGER REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    query       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    resolution  TEXT    NOT NULL DEFAULT '',
    platform    TEXT    NOT NULL DEFAULT '',
    critical    INTEGER NOT NULL DEFAULT 0,
    author_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX policies_team_name ON policies (COALESCE(team_id, 0), name);
CREATE INDEX policies_team ON policies (team_id);

-- Each host's latest answer to each policy it was sent: passes 1 pass, 0 fail, NULL unknown
-- (the query failed on the host). Written by the batched host flush; counted at read.
CREATE TABLE policy_membership (
    policy_id  INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    host_id    INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    passes     INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (policy_id, host_id)
);
CREATE INDEX policy_membership_passes ON policy_membership (policy_id, passes);
CREATE INDEX policy_membership_host ON policy_membership (host_id);

-- When each host last answered its policies, so a restart does not make every host run them
-- at once.
ALTER TABLE hosts ADD COLUMN policy_updated_at INTEGER NOT NULL DEFAULT 0;
