//! The software inventory's detail queries, per platform, with the columns Fleet's ingest
//! reads: `name, version, source, bundle_identifier, extension_id, browser, release, vendor,
//! arch, last_opened_at, installed_path` (a query leaves out what its platform never has).
//!
//! The per-user tables (browser extensions, VS Code extensions) are read through a
//! `cached_users` CTE joined with `CROSS JOIN … USING (uid)`: osquery's SQLite then lists the
//! users once, and the join order it must keep makes each table run once per user.

/// The users whose home directories hold per-user software: real login accounts only.
macro_rules! cached_users {
    () => {
        "WITH cached_users AS (WITH cached_groups AS (SELECT * FROM groups) \
         SELECT uid, username, type, groupname, shell \
         FROM users LEFT JOIN cached_groups USING (gid) \
         WHERE type <> 'special' AND shell NOT LIKE '%/false' AND shell NOT LIKE '%/nologin' \
         AND shell NOT LIKE '%/shutdown' AND shell NOT LIKE '%/halt' \
         AND username NOT LIKE '%$' AND username NOT LIKE '\\_%' ESCAPE '\\' \
         AND NOT (username = 'sync' AND shell = '/bin/sync' AND directory <> '')) "
    };
}

pub const SOFTWARE_LINUX: &str = concat!(
    cached_users!(),
    "SELECT name, version, '' AS extension_id, '' AS browser, 'deb_packages' AS source, \
     '' AS release, '' AS vendor, arch, '' AS installed_path \
     FROM deb_packages WHERE status LIKE '% ok installed' \
     UNION SELECT package AS name, version, '' AS extension_id, '' AS browser, \
     'portage_packages' AS source, '' AS release, '' AS vendor, '' AS arch, '' AS installed_path \
     FROM portage_packages \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, 'rpm_packages' AS source, \
     release, vendor, arch, '' AS installed_path FROM rpm_packages \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, 'npm_packages' AS source, \
     '' AS release, '' AS vendor, '' AS arch, path AS installed_path FROM npm_packages \
     UNION SELECT name, version, identifier AS extension_id, browser_type AS browser, \
     'chrome_extensions' AS source, '' AS release, '' AS vendor, '' AS arch, \
     path AS installed_path FROM cached_users CROSS JOIN chrome_extensions USING (uid) \
     UNION SELECT name, version, identifier AS extension_id, 'firefox' AS browser, \
     'firefox_addons' AS source, '' AS release, '' AS vendor, '' AS arch, \
     path AS installed_path FROM cached_users CROSS JOIN firefox_addons USING (uid) \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, \
     'python_packages' AS source, '' AS release, '' AS vendor, '' AS arch, \
     path AS installed_path FROM python_packages;"
);

pub const SOFTWARE_MACOS: &str = concat!(
    cached_users!(),
    "SELECT name, COALESCE(NULLIF(bundle_short_version, ''), bundle_version) AS version, \
     bundle_identifier, '' AS extension_id, '' AS browser, 'apps' AS source, '' AS vendor, \
     last_opened_time AS last_opened_at, path AS installed_path FROM apps \
     UNION SELECT name, version, '' AS bundle_identifier, '' AS extension_id, '' AS browser, \
     'python_packages' AS source, '' AS vendor, 0 AS last_opened_at, path AS installed_path \
     FROM python_packages \
     UNION SELECT name, version, '' AS bundle_identifier, identifier AS extension_id, \
     browser_type AS browser, 'chrome_extensions' AS source, '' AS vendor, \
     0 AS last_opened_at, path AS installed_path \
     FROM cached_users CROSS JOIN chrome_extensions USING (uid) \
     UNION SELECT name, version, '' AS bundle_identifier, identifier AS extension_id, \
     'firefox' AS browser, 'firefox_addons' AS source, '' AS vendor, 0 AS last_opened_at, \
     path AS installed_path FROM cached_users CROSS JOIN firefox_addons USING (uid) \
     UNION SELECT name, version, '' AS bundle_identifier, '' AS extension_id, '' AS browser, \
     'safari_extensions' AS source, '' AS vendor, 0 AS last_opened_at, path AS installed_path \
     FROM cached_users CROSS JOIN safari_extensions USING (uid) \
     UNION SELECT name, version, '' AS bundle_identifier, '' AS extension_id, '' AS browser, \
     'homebrew_packages' AS source, '' AS vendor, 0 AS last_opened_at, path AS installed_path \
     FROM homebrew_packages;"
);

pub const SOFTWARE_WINDOWS: &str = concat!(
    cached_users!(),
    "SELECT name, version, '' AS extension_id, '' AS browser, 'programs' AS source, \
     publisher AS vendor, install_location AS installed_path FROM programs \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, \
     'python_packages' AS source, '' AS vendor, path AS installed_path FROM python_packages \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, 'ie_extensions' AS source, \
     '' AS vendor, path AS installed_path FROM ie_extensions \
     UNION SELECT name, version, identifier AS extension_id, browser_type AS browser, \
     'chrome_extensions' AS source, '' AS vendor, path AS installed_path \
     FROM cached_users CROSS JOIN chrome_extensions USING (uid) \
     UNION SELECT name, version, identifier AS extension_id, 'firefox' AS browser, \
     'firefox_addons' AS source, '' AS vendor, path AS installed_path \
     FROM cached_users CROSS JOIN firefox_addons USING (uid) \
     UNION SELECT name, version, '' AS extension_id, '' AS browser, \
     'chocolatey_packages' AS source, '' AS vendor, path AS installed_path \
     FROM chocolatey_packages;"
);

pub const SOFTWARE_CHROME: &str = "SELECT name, version, identifier AS extension_id, \
     browser_type AS browser, 'chrome_extensions' AS source, '' AS vendor, \
     '' AS installed_path FROM chrome_extensions;";

/// VS Code extensions: a query of their own (the table exists from osquery 5.11), whose rows
/// join the platform query's.
pub const SOFTWARE_VSCODE_EXTENSIONS: &str = concat!(
    cached_users!(),
    "SELECT name, version, '' AS bundle_identifier, uuid AS extension_id, '' AS browser, \
     'vscode_extensions' AS source, publisher AS vendor, '' AS last_opened_at, \
     path AS installed_path FROM cached_users CROSS JOIN vscode_extensions USING (uid);"
);

pub const VSCODE_DISCOVERY: &str = "SELECT 1 FROM osquery_registry WHERE active = true \
     AND registry = 'table' AND name = 'vscode_extensions'";
