-- Policies and each host's latest answer to them; the MySQL side of sqlite/0006_policies.sql.
-- As for saved queries, a name is unique per team through a stored generated column, and
-- team_id has no foreign key (MySQL refuses ON DELETE CASCADE on the base column of a stored
-- generated column): the store checks the team on insert and deletes a team's policies with it.
CREATE TABLE policies (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    team_id     BIGINT UNSIGNED NULL,
    team_key    BIGINT UNSIGNED AS (COALESCE(team_id, 0)) STORED,
    name        VARCHAR(255) NOT NULL,
    query       MEDIUMTEXT NOT NULL,
    description TEXT NOT NULL,
    resolution  TEXT NOT NULL,
    platform    VARCHAR(255) NOT NULL DEFAULT '',
    critical    TINYINT(1) NOT NULL DEFAULT 0,
    author_id   BIGINT UNSIGNED NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE KEY policies_team_name (team_key, name),
    KEY policies_team (team_id),
    CONSTRAINT policies_author_fk FOREIGN KEY (author_id) REFERENCES users (id)
        ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- passes: 1 pass, 0 fail, NULL unknown (the query failed on the host).
CREATE TABLE policy_membership (
    policy_id  BIGINT UNSIGNED NOT NULL,
    host_id    BIGINT UNSIGNED NOT NULL,
    passes     TINYINT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (policy_id, host_id),
    KEY policy_membership_passes (policy_id, passes),
    KEY policy_membership_host (host_id),
    CONSTRAINT policy_membership_policy_fk FOREIGN KEY (policy_id) REFERENCES policies (id)
        ON DELETE CASCADE,
    CONSTRAINT policy_membership_host_fk FOREIGN KEY (host_id) REFERENCES hosts (id)
        ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE hosts ADD COLUMN policy_updated_at BIGINT NOT NULL DEFAULT 0;
