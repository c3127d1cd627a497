//! `Vitals`: what Flotilla knows about a host's machine, filled from `host_details` at enrollment
//! and from detail-query answers afterwards. Every field is optional: `None` means "this report
//! did not say", so merging a partial report never erases what an earlier one said.

use crate::row::Row;

/// The intervals a host really runs with, as its `osquery_flags` report them. They decide when
/// the host counts as online.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Intervals {
    /// `distributed_interval` in seconds; 0 when unknown.
    pub distributed: u32,
    /// `config_refresh` (alias `config_tls_refresh`) in seconds; 0 means "never refreshes".
    pub config_refresh: u32,
    /// `logger_tls_period` in seconds; 0 when unknown.
    pub logger: u32,
}

/// A host's hardware and software facts. Field names follow Fleet's host object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vitals {
    pub hostname: Option<String>,
    pub computer_name: Option<String>,
    pub uuid: Option<String>,
    pub platform: Option<String>,
    pub platform_like: Option<String>,
    /// Display name of the operating system with its version, e.g. `Ubuntu 22.04.4 LTS`.
    pub os_version: Option<String>,
    pub build: Option<String>,
    pub code_name: Option<String>,
    pub osquery_version: Option<String>,
    pub cpu_type: Option<String>,
    pub cpu_brand: Option<String>,
    pub cpu_physical_cores: Option<i64>,
    pub cpu_logical_cores: Option<i64>,
    /// Physical memory in bytes.
    pub memory: Option<i64>,
    pub hardware_vendor: Option<String>,
    pub hardware_model: Option<String>,
    pub hardware_version: Option<String>,
    pub hardware_serial: Option<String>,
    pub primary_ip: Option<String>,
    pub primary_mac: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub distributed_interval: Option<u32>,
    pub config_tls_refresh: Option<u32>,
    pub logger_tls_period: Option<u32>,
    /// What orbit's `orbit_info` table reported.
    pub orbit: Option<OrbitInfo>,
}

/// The row of orbit's `orbit_info` table Flotilla keeps: the agent versions and whether orbit
/// runs scripts. (Its `device_auth_token` column is ignored: the token comes only through
/// `POST /api/fleet/orbit/device_token`.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrbitInfo {
    pub version: String,
    pub desktop_version: Option<String>,
    pub scripts_enabled: Option<bool>,
}

/// A column's text, trimmed and cut to [`crate::text::MAX_TEXT`]; `None` when empty.
fn text(row: &Row, column: &str) -> Option<String> {
    row.get(column)
        .map(|v| crate::text::clip(v))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn number(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(|v| v.trim().parse().ok())
}

impl Vitals {
    /// Takes every field `other` knows, keeping ours where it is silent.
    pub fn merge(&mut self, other: Vitals) {
        macro_rules! take {
            ($($field:ident),*) => { $( if other.$field.is_some() { self.$field = other.$field; } )* };
        }
        take!(
            hostname,
            computer_name,
            uuid,
            platform,
            platform_like,
            os_version,
            build,
            code_name,
            osquery_version,
            cpu_type,
            cpu_brand,
            cpu_physical_cores,
            cpu_logical_cores,
            memory,
            hardware_vendor,
            hardware_model,
            hardware_version,
            hardware_serial,
            primary_ip,
            primary_mac,
            uptime_seconds,
            distributed_interval,
            config_tls_refresh,
            logger_tls_period,
            orbit
        );
    }

    pub fn is_empty(&self) -> bool {
        *self == Vitals::default()
    }

    /// First row of osquery's `os_version` table (enrollment's `host_details.os_version` has the
    /// same columns).
    pub fn ingest_os_version(&mut self, row: &Row) {
        self.platform = text(row, "platform").or(self.platform.take());
        self.platform_like = text(row, "platform_like").or(self.platform_like.take());
        self.build = text(row, "build").or(self.build.take());
        self.code_name = text(row, "codename").or(self.code_name.take());
        if let Some(name) = text(row, "name") {
            let version = text(row, "version").unwrap_or_else(|| {
                let parts: Vec<String> = ["major", "minor", "patch"]
                    .iter()
                    .filter_map(|c| text(row, c))
                    .collect();
                parts.join(".")
            });
            self.os_version = Some(if version.is_empty() {
                name
            } else {
                crate::text::clip_owned(format!("{name} {version}"))
            });
        }
    }

    /// The one row of orbit's `orbit_info` table; false (and nothing kept) without a version.
    pub fn ingest_orbit_info(&mut self, row: &Row) -> bool {
        let Some(version) = text(row, "version") else {
            return false;
        };
        self.orbit = Some(OrbitInfo {
            version,
            desktop_version: text(row, "desktop_version"),
            scripts_enabled: number(row, "scripts_enabled").map(|n| n != 0),
        });
        true
    }

    /// First row of osquery's `osquery_info` table.
    pub fn ingest_osquery_info(&mut self, row: &Row) {
        self.osquery_version = text(row, "version").or(self.osquery_version.take());
    }

    /// First row of osquery's `system_info` table.
    pub fn ingest_system_info(&mut self, row: &Row) {
        self.hostname = text(row, "hostname").or(self.hostname.take());
        self.computer_name = text(row, "computer_name").or(self.computer_name.take());
        self.uuid = text(row, "uuid").or(self.uuid.take());
        self.cpu_type = text(row, "cpu_type").or(self.cpu_type.take());
        self.cpu_brand = text(row, "cpu_brand").or(self.cpu_brand.take());
        self.cpu_physical_cores = number(row, "cpu_physical_cores").or(self.cpu_physical_cores);
        self.cpu_logical_cores = number(row, "cpu_logical_cores").or(self.cpu_logical_cores);
        self.memory = number(row, "physical_memory").or(self.memory);
        self.hardware_vendor = text(row, "hardware_vendor").or(self.hardware_vendor.take());
        self.hardware_model = text(row, "hardware_model").or(self.hardware_model.take());
        self.hardware_version = text(row, "hardware_version").or(self.hardware_version.take());
        // Some virtual machines report "-1" or "0" for a serial they do not have.
        self.hardware_serial = text(row, "hardware_serial")
            .filter(|s| s != "-1" && s != "0")
            .or(self.hardware_serial.take());
    }

    /// The primary interface: one row with `address` and `mac`.
    pub fn ingest_network_interface(&mut self, row: &Row) {
        self.primary_ip = text(row, "address").or(self.primary_ip.take());
        self.primary_mac = text(row, "mac").or(self.primary_mac.take());
    }

    pub fn ingest_uptime(&mut self, row: &Row) {
        self.uptime_seconds = number(row, "total_seconds").or(self.uptime_seconds);
    }

    /// Rows of `name`/`value` pairs from `osquery_flags`.
    pub fn ingest_osquery_flags(&mut self, rows: &[Row]) {
        for row in rows {
            let (Some(name), Some(value)) = (row.get("name"), row.get("value")) else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u32>() else {
                continue;
            };
            match name.as_str() {
                "distributed_interval" => self.distributed_interval = Some(value),
                // Both names are reported; a non-zero one wins.
                "config_refresh" | "config_tls_refresh"
                    if value > 0 || self.config_tls_refresh.is_none() =>
                {
                    self.config_tls_refresh = Some(value);
                }
                "logger_tls_period" => self.logger_tls_period = Some(value),
                _ => {}
            }
        }
    }

    /// The intervals these vitals report, falling back to `previous` for those they don't.
    pub fn intervals_or(&self, previous: Intervals) -> Intervals {
        Intervals {
            distributed: self.distributed_interval.unwrap_or(previous.distributed),
            config_refresh: self.config_tls_refresh.unwrap_or(previous.config_refresh),
            logger: self.logger_tls_period.unwrap_or(previous.logger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn os_version_builds_display_name() {
        let mut v = Vitals::default();
        v.ingest_os_version(&row(&[
            ("name", "Ubuntu"),
            ("version", "22.04.4 LTS (Jammy Jellyfish)"),
            ("platform", "ubuntu"),
            ("platform_like", "debian"),
            ("codename", "jammy"),
        ]));
        assert_eq!(
            v.os_version.as_deref(),
            Some("Ubuntu 22.04.4 LTS (Jammy Jellyfish)")
        );
        assert_eq!(v.platform.as_deref(), Some("ubuntu"));
        assert_eq!(v.code_name.as_deref(), Some("jammy"));
    }

    #[test]
    fn merge_keeps_what_the_new_report_does_not_say() {
        let mut v = Vitals {
            hostname: Some("a".into()),
            memory: Some(5),
            ..Vitals::default()
        };
        v.merge(Vitals {
            hostname: Some("b".into()),
            ..Vitals::default()
        });
        assert_eq!(v.hostname.as_deref(), Some("b"));
        assert_eq!(v.memory, Some(5));
    }

    #[test]
    fn flags_set_intervals_and_ignore_garbage() {
        let mut v = Vitals::default();
        v.ingest_osquery_flags(&[
            row(&[("name", "distributed_interval"), ("value", "10")]),
            row(&[("name", "config_refresh"), ("value", "60")]),
            row(&[("name", "config_tls_refresh"), ("value", "0")]),
            row(&[("name", "logger_tls_period"), ("value", "x")]),
        ]);
        let i = v.intervals_or(Intervals {
            logger: 4,
            ..Intervals::default()
        });
        assert_eq!(
            i,
            Intervals {
                distributed: 10,
                config_refresh: 60,
                logger: 4
            }
        );
    }

    #[test]
    fn placeholder_serials_are_ignored() {
        let mut v = Vitals::default();
        v.ingest_system_info(&row(&[("hardware_serial", "-1"), ("hostname", "h")]));
        assert_eq!(v.hardware_serial, None);
        assert_eq!(v.hostname.as_deref(), Some("h"));
    }
}
