-- Flotilla's schema on MySQL 8 / MariaDB 10.11: the same tables as the SQLite migrations, in
-- one step. Times are Unix seconds (signed BIGINT); ids are BIGINT UNSIGNED. Text compares
-- byte for byte (utf8mb4_bin) except where SQLite's tables said COLLATE NOCASE (emails, team
-- and label names), which use utf8mb4_general_ci. Short text is VARCHAR(255) so it can be
-- indexed and given a default; the store cuts longer host details to fit.

CREATE TABLE hosts (
    id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    osquery_host_id      VARCHAR(255) NOT NULL,
    node_key             VARCHAR(255) NULL,
    uuid                 VARCHAR(255) NOT NULL DEFAULT '',
    hostname             VARCHAR(255) NOT NULL DEFAULT '',
    computer_name        VARCHAR(255) NOT NULL DEFAULT '',
    platform             VARCHAR(255) NOT NULL DEFAULT '',
    platform_like        VARCHAR(255) NOT NULL DEFAULT '',
    os_version           VARCHAR(255) NOT NULL DEFAULT '',
    build                VARCHAR(255) NOT NULL DEFAULT '',
    code_name            VARCHAR(255) NOT NULL DEFAULT '',
    osquery_version      VARCHAR(255) NOT NULL DEFAULT '',
    cpu_type             VARCHAR(255) NOT NULL DEFAULT '',
    cpu_brand            VARCHAR(255) NOT NULL DEFAULT '',
    cpu_physical_cores   BIGINT NOT NULL DEFAULT 0,
    cpu_logical_cores    BIGINT NOT NULL DEFAULT 0,
    memory               BIGINT NOT NULL DEFAULT 0,
    hardware_vendor      VARCHAR(255) NOT NULL DEFAULT '',
    hardware_model       VARCHAR(255) NOT NULL DEFAULT '',
    hardware_version     VARCHAR(255) NOT NULL DEFAULT '',
    hardware_serial      VARCHAR(255) NOT NULL DEFAULT '',
    primary_ip           VARCHAR(255) NOT NULL DEFAULT '',
    primary_mac          VARCHAR(255) NOT NULL DEFAULT '',
    uptime               BIGINT NOT NULL DEFAULT 0,
    distributed_interval BIGINT NOT NULL DEFAULT 0,
    config_tls_refresh   BIGINT NOT NULL DEFAULT 0,
    logger_tls_period    BIGINT NOT NULL DEFAULT 0,
    team_id              BIGINT UNSIGNED NULL,
    seen_time            BIGINT NOT NULL DEFAULT 0,
    detail_updated_at    BIGINT NOT NULL DEFAULT 0,
    label_updated_at     BIGINT NOT NULL DEFAULT 0,
    refetch_requested    TINYINT(1) NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    last_enrolled_at     BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE KEY hosts_osquery_host_id (osquery_host_id),
    UNIQUE KEY hosts_node_key (node_key),
    KEY hosts_uuid (uuid),
    KEY hosts_team (team_id),
    KEY hosts_hostname (hostname),
    KEY hosts_hardware_serial (hardware_serial)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE enroll_secrets (
    secret     VARCHAR(255) NOT NULL PRIMARY KEY,
    team_id    BIGINT UNSIGNED NULL,
    created_at BIGINT NOT NULL,
    KEY enroll_secrets_team (team_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE carves (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    session_id   VARCHAR(255) NOT NULL,
    host_id      BIGINT UNSIGNED NOT NULL,
    name         TEXT NOT NULL,
    carve_id     VARCHAR(255) NOT NULL,
    request_id   VARCHAR(255) NOT NULL,
    block_count  BIGINT NOT NULL,
    block_size   BIGINT NOT NULL,
    carve_size   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT NULL,
    path         TEXT NULL,
    error        TEXT NULL,
    UNIQUE KEY carves_session (session_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Roles are Fleet's names; what they allow is the API's business, not the database's.
CREATE TABLE users (
    id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name                 VARCHAR(255) NOT NULL,
    email                VARCHAR(255) COLLATE utf8mb4_general_ci NOT NULL,
    -- An argon2 PHC string.
    password_hash        VARCHAR(255) NOT NULL,
    -- NULL when the user's roles are per team.
    global_role          VARCHAR(64) NULL,
    api_only             TINYINT(1) NOT NULL DEFAULT 0,
    enabled              TINYINT(1) NOT NULL DEFAULT 1,
    force_password_reset TINYINT(1) NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A session token is stored only as its SHA-256 (hex): the database never holds a usable token.
CREATE TABLE sessions (
    token_hash  VARCHAR(128) NOT NULL PRIMARY KEY,
    user_id     BIGINT UNSIGNED NOT NULL,
    created_at  BIGINT NOT NULL,
    accessed_at BIGINT NOT NULL,
    KEY sessions_user (user_id),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE teams (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(255) COLLATE utf8mb4_general_ci NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE KEY teams_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE user_teams (
    user_id BIGINT UNSIGNED NOT NULL,
    team_id BIGINT UNSIGNED NOT NULL,
    role    VARCHAR(64) NOT NULL,
    PRIMARY KEY (user_id, team_id),
    KEY user_teams_team (team_id),
    CONSTRAINT user_teams_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_teams_team_fk FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- label_type: 'builtin' or 'regular'. label_membership_type: 'dynamic' (the query decides,
-- answers land in label_membership) or 'manual' (label_membership is edited by people).
-- A builtin label has no membership rows: its members are the hosts whose platform equals
-- the label's platform, or every host when the label's platform is empty.
CREATE TABLE labels (
    id                    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name                  VARCHAR(255) COLLATE utf8mb4_general_ci NOT NULL,
    description           TEXT NOT NULL,
    query                 MEDIUMTEXT NOT NULL,
    platform              VARCHAR(255) NOT NULL DEFAULT '',
    label_type            VARCHAR(16) NOT NULL DEFAULT 'regular',
    label_membership_type VARCHAR(16) NOT NULL DEFAULT 'dynamic',
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE KEY labels_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE label_membership (
    label_id   BIGINT UNSIGNED NOT NULL,
    host_id    BIGINT UNSIGNED NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (label_id, host_id),
    KEY label_membership_host (host_id),
    CONSTRAINT label_membership_label_fk FOREIGN KEY (label_id) REFERENCES labels (id)
        ON DELETE CASCADE,
    CONSTRAINT label_membership_host_fk FOREIGN KEY (host_id) REFERENCES hosts (id)
        ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO labels (name, description, query, platform, label_type, label_membership_type,
                    created_at, updated_at) VALUES
    ('All Hosts', 'All hosts which have enrolled in Flotilla', 'SELECT 1;', '',
     'builtin', 'dynamic', 0, 0),
    ('macOS', 'All macOS hosts', 'SELECT 1 FROM os_version WHERE platform = ''darwin'';',
     'darwin', 'builtin', 'dynamic', 0, 0),
    ('Ubuntu Linux', 'All Ubuntu hosts',
     'SELECT 1 FROM os_version WHERE platform = ''ubuntu'';', 'ubuntu', 'builtin', 'dynamic', 0, 0),
    ('CentOS Linux', 'All CentOS hosts',
     'SELECT 1 FROM os_version WHERE platform = ''centos'' OR name LIKE ''%centos%'';', 'centos',
     'builtin', 'dynamic', 0, 0),
    ('MS Windows', 'Windows hosts',
     'SELECT 1 FROM os_version WHERE platform = ''windows'';', 'windows', 'builtin', 'dynamic', 0, 0);

-- Saved queries. A name is unique within its team, and among global queries (team_id NULL):
-- `team_key` is team_id with NULL as 0, so one unique key covers both. MySQL forbids
-- ON DELETE CASCADE on the base column of a stored generated column, so team_id has no
-- foreign key: the store checks the team on insert and deletes a team's queries with it.
CREATE TABLE queries (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    team_id             BIGINT UNSIGNED NULL,
    team_key            BIGINT UNSIGNED AS (COALESCE(team_id, 0)) STORED,
    name                VARCHAR(255) NOT NULL,
    description         TEXT NOT NULL,
    query               MEDIUMTEXT NOT NULL,
    `interval`          BIGINT NOT NULL DEFAULT 0,
    platform            VARCHAR(255) NOT NULL DEFAULT '',
    min_osquery_version VARCHAR(255) NOT NULL DEFAULT '',
    automations_enabled TINYINT(1) NOT NULL DEFAULT 0,
    logging             VARCHAR(64) NOT NULL DEFAULT 'snapshot',
    observer_can_run    TINYINT(1) NOT NULL DEFAULT 0,
    discard_data        TINYINT(1) NOT NULL DEFAULT 0,
    author_id           BIGINT UNSIGNED NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE KEY queries_team_name (team_key, name),
    KEY queries_team (team_id),
    CONSTRAINT queries_author_fk FOREIGN KEY (author_id) REFERENCES users (id)
        ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The actor's name and email are copied in, so the log still says who did what after the
-- user is gone.
CREATE TABLE activities (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    actor_id        BIGINT UNSIGNED NULL,
    actor_full_name VARCHAR(255) NULL,
    actor_email     VARCHAR(255) NULL,
    type            VARCHAR(128) NOT NULL,
    details         MEDIUMTEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    KEY activities_created (created_at),
    CONSTRAINT activities_actor_fk FOREIGN KEY (actor_id) REFERENCES users (id)
        ON DELETE SET NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Live-query campaigns (Fleet: distributed_query_campaigns). Status 0 waiting, 1 running,
-- 2 complete.
CREATE TABLE distributed_query_campaigns (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    query_sql       MEDIUMTEXT NOT NULL,
    query_id        BIGINT UNSIGNED NULL,
    user_id         BIGINT UNSIGNED NULL,
    status          TINYINT NOT NULL DEFAULT 1,
    targets_count   BIGINT NOT NULL DEFAULT 0,
    online_count    BIGINT NOT NULL DEFAULT 0,
    responded_count BIGINT NOT NULL DEFAULT 0,
    finish_reason   VARCHAR(64) NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    KEY campaigns_status (status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- What the admin selected; type 0 label, 1 host, 2 team (Fleet's numbering).
CREATE TABLE distributed_query_campaign_targets (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    campaign_id BIGINT UNSIGNED NOT NULL,
    type        TINYINT NOT NULL,
    target_id   BIGINT UNSIGNED NOT NULL,
    KEY campaign_targets_campaign (campaign_id),
    CONSTRAINT campaign_targets_campaign_fk FOREIGN KEY (campaign_id)
        REFERENCES distributed_query_campaigns (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
