-- The agent side beside osquery: orbit's node key, what orbit_info reports, Fleet Desktop's
-- device tokens and the end-user email orbit sets. Times are Unix seconds.
--
-- A host orbit enrolls first has no osquery node key yet (node_key NULL) until osqueryd, started
-- by orbit with --host_identifier=uuid, enrolls into the same row.
ALTER TABLE hosts ADD COLUMN orbit_node_key TEXT;
CREATE UNIQUE INDEX hosts_orbit_node_key ON hosts (orbit_node_key);

-- One row per host that answered the orbit_info detail query.
CREATE TABLE host_orbit_info (
    host_id         INTEGER PRIMARY KEY,
    version         TEXT    NOT NULL,
    desktop_version TEXT,
    scripts_enabled INTEGER,
    updated_at      INTEGER NOT NULL
);

-- Fleet Desktop's device token: valid for an hour after updated_at; the token it replaced
-- stays valid for the same hour, so a page opened just before a rotation keeps working.
CREATE TABLE host_device_auth (
    host_id        INTEGER PRIMARY KEY,
    token          TEXT    NOT NULL UNIQUE,
    previous_token TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX host_device_auth_previous ON host_device_auth (previous_token);

-- End-user emails by source; orbit's PUT device_mapping writes source 'custom'.
CREATE TABLE host_emails (
    host_id    INTEGER NOT NULL,
    source     TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host_id, source)
);
