//! Detail queries: the fixed set of osquery queries that fill a host's [`Vitals`].
//!
//! They go out in distributed reads as `fleet_detail_query_<name>` when a host's details are due
//! (right after enrollment, then hourly with a per-host jitter) and come back in distributed
//! writes, where [`ingest`] turns their rows into vitals.

use std::sync::{Arc, OnceLock};

use crate::software_queries as software;
use crate::vitals::Vitals;

pub use crate::row::Row;

/// Prefix of every detail query's name in distributed reads and writes.
pub const DETAIL_PREFIX: &str = "fleet_detail_query_";

/// Which platforms a detail query applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platforms {
    All,
    /// Everything but Windows: Linux distributions, macOS, the BSDs.
    Unix,
    Windows,
    /// The Linux distributions (every platform osquery names but macOS, Windows, ChromeOS and
    /// FreeBSD); never a host whose platform is not known yet.
    Linux,
    Darwin,
    /// macOS, Windows and Linux; never a host whose platform is not known yet.
    Desktop,
    /// ChromeOS, where fleetd's Chrome extension plays osquery.
    Chrome,
    /// Windows once the platform is known (unlike [`Platforms::Windows`], which also takes
    /// a host whose platform is not known yet).
    WindowsKnown,
}

impl Platforms {
    fn discovery(self) -> &'static str {
        match self {
            Platforms::All => "SELECT 1",
            Platforms::Unix => "SELECT 1 FROM os_version WHERE platform != 'windows'",
            Platforms::Windows => "SELECT 1 FROM os_version WHERE platform = 'windows'",
            Platforms::Linux => {
                "SELECT 1 FROM os_version WHERE platform NOT IN \
                 ('darwin', 'windows', 'chrome', 'freebsd')"
            }
            Platforms::Darwin => "SELECT 1 FROM os_version WHERE platform = 'darwin'",
            Platforms::Desktop => "SELECT 1 FROM os_version WHERE platform NOT IN ('chrome')",
            Platforms::Chrome => "SELECT 1 FROM os_version WHERE platform = 'chrome'",
            Platforms::WindowsKnown => "SELECT 1 FROM os_version WHERE platform = 'windows'",
        }
    }

    fn includes(self, platform: &str) -> bool {
        match self {
            Platforms::All => true,
            // An unknown platform (just enrolled, details not in yet) gets both variants; osquery
            // reports an error for the table it lacks and the other one fills the vitals.
            Platforms::Unix => platform != "windows",
            Platforms::Windows => platform == "windows" || platform.is_empty(),
            Platforms::Linux => is_linux(platform),
            Platforms::Darwin => platform == "darwin",
            Platforms::Desktop => {
                platform == "darwin" || platform == "windows" || is_linux(platform)
            }
            Platforms::Chrome => platform == "chrome",
            Platforms::WindowsKnown => platform == "windows",
        }
    }
}

/// Whether osquery's `platform` names a Linux distribution (`ubuntu`, `rhel`, `debian`,
/// `amzn`, `rocky`, …: osquery reports the distribution, not `linux`).
pub fn is_linux(platform: &str) -> bool {
    !matches!(platform, "" | "darwin" | "windows" | "chrome" | "freebsd")
}

/// A detail query: its wire name (`fleet_detail_query_<suffix>`), its SQL, where it runs.
#[derive(Debug)]
pub struct DetailQuery {
    pub name: Arc<str>,
    pub sql: Arc<str>,
    /// Discovery SQL: lets a host whose platform is not known yet skip the variant it lacks.
    pub discovery: Arc<str>,
    pub platforms: Platforms,
    /// One of the software inventory queries, sent only while the inventory is on
    /// (`features.enable_software_inventory`).
    pub software: bool,
}

/// Discovery of the `orbit_info` table, which only hosts running orbit have (it is orbit's
/// osquery extension).
const ORBIT_INFO_DISCOVERY: &str = "SELECT 1 FROM osquery_registry WHERE active = true \
     AND registry = 'table' AND name = 'orbit_info'";

/// Each detail query: name suffix, SQL, platforms, and a discovery of its own when the platform's
/// is not enough.
fn catalog_entries() -> [(&'static str, &'static str, Platforms, Option<&'static str>); 13] {
    [
        (
            "os_version",
            "SELECT * FROM os_version LIMIT 1;",
            Platforms::All,
            None,
        ),
        (
            "osquery_info",
            "SELECT * FROM osquery_info LIMIT 1;",
            Platforms::All,
            None,
        ),
        (
            "system_info",
            "SELECT * FROM system_info LIMIT 1;",
            Platforms::All,
            None,
        ),
        (
            "network_interface_unix",
            "SELECT ia.address, id.mac, ia.interface FROM interface_addresses ia \
             JOIN interface_details id ON id.interface = ia.interface \
             JOIN routes r ON r.interface = ia.interface \
             WHERE r.type = 'gateway' AND (r.destination = '0.0.0.0' OR r.destination = '::') \
             AND ia.address NOT LIKE 'fe80:%' \
             ORDER BY r.metric ASC, (ia.address LIKE '%.%') DESC LIMIT 1;",
            Platforms::Unix,
            None,
        ),
        (
            "network_interface_windows",
            "SELECT ia.address, id.mac, ia.interface FROM interface_addresses ia \
             JOIN interface_details id ON id.interface = ia.interface \
             WHERE ia.address NOT LIKE '127.%' AND ia.address NOT LIKE '169.254.%' \
             AND ia.address NOT LIKE 'fe80:%' AND ia.address <> '::1' \
             ORDER BY id.physical_adapter DESC, (ia.address LIKE '%.%') DESC LIMIT 1;",
            Platforms::Windows,
            None,
        ),
        (
            "uptime",
            "SELECT total_seconds FROM uptime LIMIT 1;",
            Platforms::All,
            None,
        ),
        (
            "osquery_flags",
            "SELECT name, value FROM osquery_flags WHERE name IN \
             ('distributed_interval', 'config_tls_refresh', 'config_refresh', 'logger_tls_period');",
            Platforms::All,
            None,
        ),
        (
            "orbit_info",
            "SELECT * FROM orbit_info;",
            Platforms::All,
            Some(ORBIT_INFO_DISCOVERY),
        ),
        (
            "software_linux",
            software::SOFTWARE_LINUX,
            Platforms::Linux,
            None,
        ),
        (
            "software_macos",
            software::SOFTWARE_MACOS,
            Platforms::Darwin,
            None,
        ),
        (
            "software_windows",
            software::SOFTWARE_WINDOWS,
            Platforms::WindowsKnown,
            None,
        ),
        (
            "software_chrome",
            software::SOFTWARE_CHROME,
            Platforms::Chrome,
            None,
        ),
        (
            "software_vscode_extensions",
            software::SOFTWARE_VSCODE_EXTENSIONS,
            Platforms::Desktop,
            Some(software::VSCODE_DISCOVERY),
        ),
    ]
}

/// The whole catalog, built once; names and SQL are shared by every host's reply.
pub fn catalog() -> &'static [DetailQuery] {
    static CATALOG: OnceLock<Vec<DetailQuery>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        catalog_entries()
            .into_iter()
            .map(|(suffix, sql, platforms, discovery)| DetailQuery {
                name: format!("{DETAIL_PREFIX}{suffix}").into(),
                sql: sql.into(),
                discovery: discovery.unwrap_or(platforms.discovery()).into(),
                platforms,
                software: crate::software::is_software_query(suffix),
            })
            .collect()
    })
}

/// The detail queries a host on `platform` should run.
pub fn for_platform(platform: &str) -> impl Iterator<Item = &'static DetailQuery> {
    catalog()
        .iter()
        .filter(move |q| q.platforms.includes(platform))
}

/// Folds the rows of detail query `suffix` (the name without [`DETAIL_PREFIX`]) into `vitals`.
/// Returns false for a name this catalog does not know, which callers ignore.
pub fn ingest(suffix: &str, rows: &[Row], vitals: &mut Vitals) -> bool {
    let first = rows.first();
    match suffix {
        "os_version" => first.map(|r| vitals.ingest_os_version(r)).is_some(),
        "osquery_info" => first.map(|r| vitals.ingest_osquery_info(r)).is_some(),
        "system_info" => first.map(|r| vitals.ingest_system_info(r)).is_some(),
        "network_interface_unix" | "network_interface_windows" => {
            first.map(|r| vitals.ingest_network_interface(r)).is_some()
        }
        "uptime" => first.map(|r| vitals.ingest_uptime(r)).is_some(),
        // Exactly one row, as Fleet requires: anything else is not orbit's table.
        "orbit_info" => match rows {
            [row] => vitals.ingest_orbit_info(row),
            _ => false,
        },
        "osquery_flags" => {
            vitals.ingest_osquery_flags(rows);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(platform: &str) -> Vec<&'static str> {
        for_platform(platform).map(|q| &*q.name).collect()
    }

    #[test]
    fn platform_filters_pick_the_right_network_query() {
        assert!(names("ubuntu").contains(&"fleet_detail_query_network_interface_unix"));
        assert!(!names("ubuntu").contains(&"fleet_detail_query_network_interface_windows"));
        assert!(names("windows").contains(&"fleet_detail_query_network_interface_windows"));
        assert!(!names("windows").contains(&"fleet_detail_query_network_interface_unix"));
        // Unknown platform: both, so whichever table exists answers.
        let unknown = names("");
        assert!(unknown.contains(&"fleet_detail_query_network_interface_unix"));
        assert!(unknown.contains(&"fleet_detail_query_network_interface_windows"));
    }

    #[test]
    fn each_platform_gets_its_own_software_query_and_vscode_where_it_exists() {
        let software = |platform: &str| -> Vec<&'static str> {
            names(platform)
                .into_iter()
                .filter(|n| n.contains("software"))
                .collect()
        };
        assert_eq!(
            software("rocky"),
            [
                "fleet_detail_query_software_linux",
                "fleet_detail_query_software_vscode_extensions"
            ]
        );
        assert_eq!(software("darwin")[0], "fleet_detail_query_software_macos");
        assert_eq!(
            software("windows")[0],
            "fleet_detail_query_software_windows"
        );
        assert_eq!(software("chrome"), ["fleet_detail_query_software_chrome"]);
        // The heaviest queries wait for the platform (known from enrollment's host details).
        assert!(software("").is_empty());
        let vscode = catalog()
            .iter()
            .find(|q| q.name.ends_with("vscode_extensions"))
            .unwrap();
        assert!(vscode.discovery.contains("name = 'vscode_extensions'"));
        assert!(vscode.software);
        assert!(catalog().iter().filter(|q| q.software).count() == 5);
    }

    #[test]
    fn every_name_carries_the_prefix() {
        assert!(catalog().iter().all(|q| q.name.starts_with(DETAIL_PREFIX)));
    }

    #[test]
    fn ingest_fills_vitals_and_ignores_unknown_names() {
        let mut v = Vitals::default();
        let row: Row = [("total_seconds".to_string(), "3600".to_string())].into();
        assert!(ingest("uptime", &[row], &mut v));
        assert_eq!(v.uptime_seconds, Some(3600));
        assert!(!ingest("no_such_query", &[], &mut v));
        // An empty answer to a known query changes nothing.
        assert!(!ingest("system_info", &[], &mut v));
    }

    #[test]
    fn orbit_info_is_discovered_by_its_table_and_fills_the_agent_versions() {
        let orbit = catalog()
            .iter()
            .find(|q| &*q.name == "fleet_detail_query_orbit_info")
            .unwrap();
        assert!(orbit.discovery.contains("name = 'orbit_info'"));
        let row: Row = [
            ("version", "1.38.0"),
            ("desktop_version", "1.38.1"),
            ("scripts_enabled", "1"),
            ("device_auth_token", "ignored"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut v = Vitals::default();
        assert!(ingest("orbit_info", std::slice::from_ref(&row), &mut v));
        let info = v.orbit.clone().unwrap();
        assert_eq!(info.version, "1.38.0");
        assert_eq!(info.desktop_version.as_deref(), Some("1.38.1"));
        assert_eq!(info.scripts_enabled, Some(true));
        // Two rows, or none, are not orbit's answer.
        let mut untouched = Vitals::default();
        assert!(!ingest("orbit_info", &[row.clone(), row], &mut untouched));
        assert!(untouched.orbit.is_none());
    }
}
