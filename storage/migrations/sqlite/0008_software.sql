-- Software inventory and its vulnerabilities.
--
-- `software` interns every distinct package once for the whole fleet, keyed by a 128-bit
-- digest of its identity columns (hex in `checksum`); a host holds references to it in
-- `host_software`. `software_titles` groups the versions of one product (name, source,
-- browser, bundle id). Counts are computed by a periodic job, never at read time, and say
-- when they were computed. Times are Unix seconds.
CREATE TABLE software_titles (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    checksum          TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    browser           TEXT    NOT NULL DEFAULT '',
    bundle_identifier TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX software_titles_name ON software_titles (name);

CREATE TABLE software (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    checksum          TEXT    NOT NULL UNIQUE,
    title_id          INTEGER NOT NULL REFERENCES software_titles (id),
    name              TEXT    NOT NULL,
    version           TEXT    NOT NULL DEFAULT '',
    source            TEXT    NOT NULL,
    bundle_identifier TEXT    NOT NULL DEFAULT '',
    extension_id      TEXT    NOT NULL DEFAULT '',
    browser           TEXT    NOT NULL DEFAULT '',
    "release"         TEXT    NOT NULL DEFAULT '',
    vendor            TEXT    NOT NULL DEFAULT '',
    arch              TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL
);
CREATE INDEX software_title ON software (title_id);
CREATE INDEX software_name ON software (name);

-- A host's software: one row per (host, software). The second index answers "which hosts
-- have this software" (GET /hosts?software_id=) and the counts.
CREATE TABLE host_software (
    host_id         INTEGER NOT NULL,
    software_id     INTEGER NOT NULL,
    last_opened_at  INTEGER,
    -- Newline-separated, NULL when the package reported none.
    installed_paths TEXT,
    PRIMARY KEY (host_id, software_id)
) WITHOUT ROWID;
CREATE INDEX host_software_software ON host_software (software_id, host_id);

-- The operating systems a distribution package was seen on: a package is matched against
-- its distribution's advisories (Ubuntu 22.04's, Debian 12's…).
CREATE TABLE software_os (
    software_id INTEGER NOT NULL,
    platform    TEXT    NOT NULL,
    os_version  TEXT    NOT NULL,
    PRIMARY KEY (software_id, platform, os_version)
) WITHOUT ROWID;

-- What the last match found: a software version affected by a CVE, the record that said so,
-- and the version that fixes it.
CREATE TABLE software_cve (
    software_id         INTEGER NOT NULL,
    cve                 TEXT    NOT NULL,
    osv_id              TEXT    NOT NULL DEFAULT '',
    resolved_in_version TEXT,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (software_id, cve)
) WITHOUT ROWID;
CREATE INDEX software_cve_cve ON software_cve (cve);

-- Each CVE some installed software is affected by, with the feed's metadata.
CREATE TABLE cve_meta (
    cve                TEXT    PRIMARY KEY,
    cvss_score         REAL,
    epss_probability   REAL,
    cisa_known_exploit INTEGER NOT NULL DEFAULT 0,
    published          INTEGER,
    description        TEXT,
    created_at         INTEGER NOT NULL
);

-- Hosts with each software version and title, per team; team_id 0: every host.
CREATE TABLE software_host_counts (
    software_id INTEGER NOT NULL,
    team_id     INTEGER NOT NULL,
    hosts_count INTEGER NOT NULL,
    PRIMARY KEY (software_id, team_id)
) WITHOUT ROWID;
CREATE INDEX software_host_counts_team ON software_host_counts (team_id, hosts_count);
CREATE TABLE software_title_host_counts (
    title_id    INTEGER NOT NULL,
    team_id     INTEGER NOT NULL,
    hosts_count INTEGER NOT NULL,
    PRIMARY KEY (title_id, team_id)
) WITHOUT ROWID;

CREATE TABLE cve_host_counts (
    cve         TEXT    NOT NULL,
    team_id     INTEGER NOT NULL,
    hosts_count INTEGER NOT NULL,
    PRIMARY KEY (cve, team_id)
) WITHOUT ROWID;

-- One row: when host software last changed, when the counts and the match last ran.
-- `generation` counts the writes of host software; the jobs record the generation they saw,
-- so a change in the same second as a job is never missed.
CREATE TABLE software_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    generation         INTEGER NOT NULL DEFAULT 0,
    counted_generation INTEGER NOT NULL DEFAULT 0,
    matched_generation INTEGER NOT NULL DEFAULT 0,
    changed_at         INTEGER NOT NULL DEFAULT 0,
    counts_updated_at  INTEGER NOT NULL DEFAULT 0,
    matched_at         INTEGER NOT NULL DEFAULT 0,
    feed_fingerprint   TEXT    NOT NULL DEFAULT ''
);
INSERT INTO software_state (id) VALUES (1);

-- The fingerprint of each host's stored set: an unchanged set is never written again, even
-- after a restart.
ALTER TABLE hosts ADD COLUMN software_fingerprint INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN software_updated_at INTEGER NOT NULL DEFAULT 0;
