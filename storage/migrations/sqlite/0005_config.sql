-- Agent options (the osquery config hosts pull) and query reports.
--
-- Global agent options are one JSON document in app_config under the name 'agent_options';
-- a team's replace the global ones for that team's hosts and live in team_agent_options.
CREATE TABLE app_config (
    name       TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE team_agent_options (
    team_id    INTEGER PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    options    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The latest snapshot rows each host sent for a scheduled query (Fleet's query reports). A
-- host's rows are replaced as a whole; `data` is NULL for an answer with no rows, so the time
-- it was fetched is still known.
CREATE TABLE query_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id     INTEGER NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    host_id      INTEGER NOT NULL,
    last_fetched INTEGER NOT NULL,
    data         TEXT
);
CREATE INDEX query_results_query_host ON query_results (query_id, host_id);
CREATE INDEX query_results_host ON query_results (host_id);
