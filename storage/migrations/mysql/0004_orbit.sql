-- The agent side beside osquery; the MySQL side of sqlite/0007_orbit.sql.
ALTER TABLE hosts
    ADD COLUMN orbit_node_key VARCHAR(255) NULL,
    ADD UNIQUE KEY hosts_orbit_node_key (orbit_node_key);

CREATE TABLE host_orbit_info (
    host_id         BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    version         VARCHAR(50)     NOT NULL,
    desktop_version VARCHAR(50)     NULL,
    scripts_enabled TINYINT(1)      NULL,
    updated_at      BIGINT          NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE host_device_auth (
    host_id        BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    token          VARCHAR(255)    NOT NULL,
    previous_token VARCHAR(255)    NULL,
    created_at     BIGINT          NOT NULL,
    updated_at     BIGINT          NOT NULL,
    UNIQUE KEY host_device_auth_token (token),
    KEY host_device_auth_previous (previous_token)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE host_emails (
    host_id    BIGINT UNSIGNED NOT NULL,
    source     VARCHAR(32)     NOT NULL,
    email      VARCHAR(255)    NOT NULL,
    updated_at BIGINT          NOT NULL,
    PRIMARY KEY (host_id, source)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
