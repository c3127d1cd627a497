-- Hosts, enroll secrets and file carves. Times are Unix seconds.
CREATE TABLE hosts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    osquery_host_id      TEXT    NOT NULL UNIQUE,
    node_key             TEXT    UNIQUE,
    uuid                 TEXT    NOT NULL DEFAULT '',
    hostname             TEXT    NOT NULL DEFAULT '',
    computer_name        TEXT    NOT NULL DEFAULT '',
    platform             TEXT    NOT NULL DEFAULT '',
    platform_like        TEXT    NOT NULL DEFAULT '',
    os_version           TEXT    NOT NULL DEFAULT '',
    build                TEXT    NOT NULL DEFAULT '',
    code_name            TEXT    NOT NULL DEFAULT '',
    osquery_version      TEXT    NOT NULL DEFAULT '',
    cpu_type             TEXT    NOT NULL DEFAULT '',
    cpu_brand            TEXT    NOT NULL DEFAULT '',
    cpu_physical_cores   INTEGER NOT NULL DEFAULT 0,
    cpu_logical_cores    INTEGER NOT NULL DEFAULT 0,
    memory               INTEGER NOT NULL DEFAULT 0,
    hardware_vendor      TEXT    NOT NULL DEFAULT '',
    hardware_model       TEXT    NOT NULL DEFAULT '',
    hardware_version     TEXT    NOT NULL DEFAULT '',
    hardware_serial      TEXT    NOT NULL DEFAULT '',
    primary_ip           TEXT    NOT NULL DEFAULT '',
    primary_mac          TEXT    NOT NULL DEFAULT '',
    uptime               INTEGER NOT NULL DEFAULT 0,
    distributed_interval INTEGER NOT NULL DEFAULT 0,
    config_tls_refresh   INTEGER NOT NULL DEFAULT 0,
    logger_tls_period    INTEGER NOT NULL DEFAULT 0,
    team_id              INTEGER,
    seen_time            INTEGER NOT NULL DEFAULT 0,
    detail_updated_at    INTEGER NOT NULL DEFAULT 0,
    refetch_requested    INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    last_enrolled_at     INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX hosts_uuid ON hosts (uuid);

CREATE TABLE enroll_secrets (
    secret     TEXT    PRIMARY KEY,
    team_id    INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE carves (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT    NOT NULL UNIQUE,
    host_id      INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    carve_id     TEXT    NOT NULL,
    request_id   TEXT    NOT NULL,
    block_count  INTEGER NOT NULL,
    block_size   INTEGER NOT NULL,
    carve_size   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER,
    path         TEXT,
    error        TEXT
);
