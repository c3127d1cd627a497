-- The admin API's objects: users and their sessions, teams, labels, saved queries and the
-- activity log. Times are Unix seconds. Roles are Fleet's names (admin, maintainer, observer,
-- observer_plus); which of them may do what is the API's business, not the database's.

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT    NOT NULL,
    email                TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- An argon2 PHC string.
    password_hash        TEXT    NOT NULL,
    -- NULL when the user's roles are per team.
    global_role          TEXT,
    api_only             INTEGER NOT NULL DEFAULT 0,
    enabled              INTEGER NOT NULL DEFAULT 1,
    force_password_reset INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

-- A session token is stored only as its SHA-256 (hex): the database never holds a usable token.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    accessed_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE teams (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE user_teams (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    role    TEXT    NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX user_teams_team ON user_teams (team_id);

CREATE INDEX hosts_team ON hosts (team_id);
CREATE INDEX hosts_hostname ON hosts (hostname);
CREATE INDEX hosts_hardware_serial ON hosts (hardware_serial);
CREATE INDEX enroll_secrets_team ON enroll_secrets (team_id);

-- label_type: 'builtin' or 'regular'. label_membership_type: 'dynamic' (the query decides,
-- answers land in label_membership) or 'manual' (label_membership is edited by people).
-- A builtin label has no membership rows: its members are the hosts whose platform equals
-- the label's platform, or every host when the label's platform is empty.
CREATE TABLE labels (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    description           TEXT    NOT NULL DEFAULT '',
    query                 TEXT    NOT NULL DEFAULT '',
    platform              TEXT    NOT NULL DEFAULT '',
    label_type            TEXT    NOT NULL DEFAULT 'regular',
    label_membership_type TEXT    NOT NULL DEFAULT 'dynamic',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE label_membership (
    label_id   INTEGER NOT NULL REFERENCES labels (id) ON DELETE CASCADE,
    host_id    INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (label_id, host_id)
);
CREATE INDEX label_membership_host ON label_membership (host_id);

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

-- Saved queries. A name is unique within its team, and among global queries (team_id NULL).
CREATE TABLE queries (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id             INTEGER REFERENCES teams (id) ON DELETE CASCADE,
    name                TEXT    NOT NULL,
    description         TEXT    NOT NULL DEFAULT '',
    query               TEXT    NOT NULL,
    interval            INTEGER NOT NULL DEFAULT 0,
    platform            TEXT    NOT NULL DEFAULT '',
    min_osquery_version TEXT    NOT NULL DEFAULT '',
    automations_enabled INTEGER NOT NULL DEFAULT 0,
    logging             TEXT    NOT NULL DEFAULT 'snapshot',
    observer_can_run    INTEGER NOT NULL DEFAULT 0,
    discard_data        INTEGER NOT NULL DEFAULT 0,
    author_id           INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX queries_team_name ON queries (COALESCE(team_id, 0), name);

-- The actor's name and email are copied in, so the log still says who did what after the
-- user is gone.
CREATE TABLE activities (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor_full_name TEXT,
    actor_email     TEXT,
    type            TEXT    NOT NULL,
    details         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX activities_created ON activities (created_at);
