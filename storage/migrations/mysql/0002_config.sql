-- Agent options (the osquery config hosts pull) and query reports; the MySQL side of
-- sqlite/0005_config.sql.
--
-- Global agent options are one JSON document in app_config under the name 'agent_options';
-- a team's replace the global ones for that team's hosts and live in team_agent_options.
CREATE TABLE app_config (
    name       VARCHAR(191) NOT NULL PRIMARY KEY,
    value      LONGTEXT     NOT NULL,
    updated_at BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE team_agent_options (
    team_id    BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    options    LONGTEXT        NOT NULL,
    updated_at BIGINT          NOT NULL,
    CONSTRAINT team_agent_options_team FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The latest snapshot rows each host sent for a scheduled query (Fleet's query reports). A
-- host's rows are replaced as a whole; `data` is NULL for an answer with no rows, so the time
-- it was fetched is still known.
CREATE TABLE query_results (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    query_id     BIGINT UNSIGNED NOT NULL,
    host_id      BIGINT UNSIGNED NOT NULL,
    last_fetched BIGINT          NOT NULL,
    data         LONGTEXT        NULL,
    KEY query_results_query_host (query_id, host_id),
    KEY query_results_host (host_id),
    CONSTRAINT query_results_query FOREIGN KEY (query_id) REFERENCES queries (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
