-- Software inventory and its vulnerabilities; the MySQL side of sqlite/0008_software.sql,
-- which explains each table. Identity columns are VARCHAR(255), as the engine cuts them.
CREATE TABLE software_titles (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    checksum          CHAR(32) CHARACTER SET ascii NOT NULL,
    name              VARCHAR(255) NOT NULL,
    source            VARCHAR(64)  NOT NULL,
    browser           VARCHAR(64)  NOT NULL DEFAULT '',
    bundle_identifier VARCHAR(255) NOT NULL DEFAULT '',
    UNIQUE KEY software_titles_checksum (checksum),
    KEY software_titles_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    checksum          CHAR(32) CHARACTER SET ascii NOT NULL,
    title_id          BIGINT UNSIGNED NOT NULL,
    name              VARCHAR(255) NOT NULL,
    version           VARCHAR(255) NOT NULL DEFAULT '',
    source            VARCHAR(64)  NOT NULL,
    bundle_identifier VARCHAR(255) NOT NULL DEFAULT '',
    extension_id      VARCHAR(255) NOT NULL DEFAULT '',
    browser           VARCHAR(64)  NOT NULL DEFAULT '',
    `release`         VARCHAR(255) NOT NULL DEFAULT '',
    vendor            VARCHAR(255) NOT NULL DEFAULT '',
    arch              VARCHAR(32)  NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL,
    UNIQUE KEY software_checksum (checksum),
    KEY software_title (title_id),
    KEY software_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE host_software (
    host_id         BIGINT UNSIGNED NOT NULL,
    software_id     BIGINT UNSIGNED NOT NULL,
    last_opened_at  BIGINT NULL,
    installed_paths TEXT NULL,
    PRIMARY KEY (host_id, software_id),
    KEY host_software_software (software_id, host_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software_os (
    software_id BIGINT UNSIGNED NOT NULL,
    platform    VARCHAR(64)  NOT NULL,
    os_version  VARCHAR(255) NOT NULL,
    PRIMARY KEY (software_id, platform, os_version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software_cve (
    software_id         BIGINT UNSIGNED NOT NULL,
    cve                 VARCHAR(64)  NOT NULL,
    osv_id              VARCHAR(128) NOT NULL DEFAULT '',
    resolved_in_version VARCHAR(255) NULL,
    created_at          BIGINT NOT NULL,
    PRIMARY KEY (software_id, cve),
    KEY software_cve_cve (cve)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE cve_meta (
    cve                VARCHAR(64) NOT NULL PRIMARY KEY,
    cvss_score         DOUBLE NULL,
    epss_probability   DOUBLE NULL,
    cisa_known_exploit TINYINT(1) NOT NULL DEFAULT 0,
    published          BIGINT NULL,
    description        TEXT NULL,
    created_at         BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software_host_counts (
    software_id BIGINT UNSIGNED NOT NULL,
    team_id     BIGINT UNSIGNED NOT NULL,
    hosts_count BIGINT NOT NULL,
    PRIMARY KEY (software_id, team_id),
    KEY software_host_counts_team (team_id, hosts_count)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software_title_host_counts (
    title_id    BIGINT UNSIGNED NOT NULL,
    team_id     BIGINT UNSIGNED NOT NULL,
    hosts_count BIGINT NOT NULL,
    PRIMARY KEY (title_id, team_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE cve_host_counts (
    cve         VARCHAR(64) NOT NULL,
    team_id     BIGINT UNSIGNED NOT NULL,
    hosts_count BIGINT NOT NULL,
    PRIMARY KEY (cve, team_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE software_state (
    id                TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    generation         BIGINT NOT NULL DEFAULT 0,
    counted_generation BIGINT NOT NULL DEFAULT 0,
    matched_generation BIGINT NOT NULL DEFAULT 0,
    changed_at        BIGINT NOT NULL DEFAULT 0,
    counts_updated_at BIGINT NOT NULL DEFAULT 0,
    matched_at        BIGINT NOT NULL DEFAULT 0,
    feed_fingerprint  VARCHAR(64) NOT NULL DEFAULT ''
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO software_state (id) VALUES (1);

ALTER TABLE hosts ADD COLUMN software_fingerprint BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN software_updated_at BIGINT NOT NULL DEFAULT 0;
