//! Software inventory: what the `software_*` detail queries report, as one host's set.
//!
//! A host's answer becomes an [`Inventory`]: its packages, each once, in a fixed order, with a
//! fingerprint of the whole set. The host actor compares the fingerprint with the one it last
//! sent and hands the writer only a set that changed, so an unchanged inventory (nearly every
//! detail round) costs one hash and no write. The store interns each distinct [`Software`] once
//! for the whole fleet and keeps a host's set as references to those rows.

use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3;

use crate::row::Row;

pub use crate::text::MAX_TEXT;
/// Most paths kept per package on one host.
pub const MAX_PATHS: usize = 16;
/// Most packages kept per host: a host reporting more is cut, not refused.
pub const MAX_PACKAGES: usize = 20_000;

/// One distinct piece of software: the columns that make it itself. Two hosts with the same
/// values hold the same software.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Software {
    pub name: Box<str>,
    pub version: Box<str>,
    /// osquery's table: `deb_packages`, `rpm_packages`, `apps`, `programs`, `python_packages`…
    pub source: Box<str>,
    pub bundle_identifier: Box<str>,
    pub extension_id: Box<str>,
    pub browser: Box<str>,
    pub release: Box<str>,
    pub vendor: Box<str>,
    pub arch: Box<str>,
}

impl Software {
    /// The identity columns in a fixed order, for hashing and storage.
    pub fn fields(&self) -> [&str; 9] {
        [
            &self.name,
            &self.version,
            &self.source,
            &self.bundle_identifier,
            &self.extension_id,
            &self.browser,
            &self.release,
            &self.vendor,
            &self.arch,
        ]
    }

    /// A 128-bit digest of the identity columns: the key a store interns the software under.
    pub fn checksum(&self) -> [u8; 16] {
        let mut hasher = Xxh3::new();
        for field in self.fields() {
            hash_field(&mut hasher, field);
        }
        hasher.digest128().to_be_bytes()
    }

    /// The digest of the title the software is a version of: the same product across
    /// versions (name, source, browser, and the bundle id of a macOS app).
    pub fn title_checksum(&self) -> [u8; 16] {
        let mut hasher = Xxh3::new();
        for field in [
            &*self.name,
            &*self.source,
            &*self.browser,
            &*self.bundle_identifier,
        ] {
            hash_field(&mut hasher, field);
        }
        hasher.digest128().to_be_bytes()
    }

    /// Whether the software comes from the OS's package manager, so that which distribution
    /// release it was seen on matters for matching.
    pub fn is_os_package(&self) -> bool {
        matches!(
            &*self.source,
            "deb_packages" | "rpm_packages" | "portage_packages"
        )
    }
}

/// A piece of software as one host has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub software: Software,
    /// Unix seconds the host last opened it (macOS apps), if reported.
    pub last_opened_at: Option<i64>,
    /// Where it is installed, sorted, at most [`MAX_PATHS`].
    pub installed_paths: Vec<Box<str>>,
}

/// A host's whole software set, as one detail round reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// Sorted by software; each software once.
    pub items: Vec<Installed>,
    /// Digest of everything in `items`: equal fingerprints, equal sets.
    pub fingerprint: u64,
    /// The host's platform and OS when it reported (distribution packages are matched
    /// against their distribution's advisories).
    pub platform: Box<str>,
    pub os_version: Box<str>,
}

fn hash_field(hasher: &mut Xxh3, field: &str) {
    hasher.update(&(field.len() as u64).to_le_bytes());
    hasher.update(field.as_bytes());
}

fn clip(value: &str) -> Box<str> {
    crate::text::clip(value).into()
}

fn column<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or("")
}

/// osquery reports `last_opened_time` as fractional Unix seconds, and -1 or 0 for never.
fn opened_at(row: &Row) -> Option<i64> {
    let raw = column(row, "last_opened_at");
    let seconds: f64 = raw.trim().parse().ok()?;
    (1.0..1e12).contains(&seconds).then_some(seconds as i64)
}

/// One row of a software query, or `None` for a row without a name or source (osquery sends
/// those for broken package databases; Fleet skips them too).
pub fn software_of(row: &Row) -> Option<Installed> {
    let name = clip(column(row, "name"));
    let source = clip(column(row, "source"));
    if name.is_empty() || source.is_empty() {
        return None;
    }
    let path = clip(column(row, "installed_path"));
    Some(Installed {
        software: Software {
            name,
            version: clip(column(row, "version")),
            source,
            bundle_identifier: clip(column(row, "bundle_identifier")),
            extension_id: clip(column(row, "extension_id")),
            browser: clip(column(row, "browser")),
            release: clip(column(row, "release")),
            vendor: clip(column(row, "vendor")),
            arch: clip(column(row, "arch")),
        },
        last_opened_at: opened_at(row),
        installed_paths: if path.is_empty() {
            Vec::new()
        } else {
            vec![path]
        },
    })
}

impl Inventory {
    /// The set the rows describe: duplicates (one package found in two places) merged, paths
    /// joined, the latest open time kept.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = &'a Row>,
        platform: &str,
        os_version: &str,
    ) -> Inventory {
        let mut items: Vec<Installed> = rows.into_iter().filter_map(software_of).collect();
        items.sort_by(|a, b| a.software.cmp(&b.software));
        let mut merged: Vec<Installed> = Vec::with_capacity(items.len());
        for item in items {
            match merged.last_mut() {
                Some(last) if last.software == item.software => {
                    last.last_opened_at = last.last_opened_at.max(item.last_opened_at);
                    last.installed_paths.extend(item.installed_paths);
                }
                _ => merged.push(item),
            }
        }
        merged.truncate(MAX_PACKAGES);
        let mut hasher = Xxh3::new();
        for item in &mut merged {
            item.installed_paths.sort();
            item.installed_paths.dedup();
            item.installed_paths.truncate(MAX_PATHS);
            for field in item.software.fields() {
                hash_field(&mut hasher, field);
            }
            hasher.update(&item.last_opened_at.unwrap_or(0).to_le_bytes());
            for path in &item.installed_paths {
                hash_field(&mut hasher, path);
            }
            hasher.update(b"\n");
        }
        Inventory {
            items: merged,
            fingerprint: hasher.digest(),
            platform: platform.into(),
            os_version: os_version.into(),
        }
    }
}

/// The names of the software detail queries (without `fleet_detail_query_`) and how their
/// answers combine: the platform's main query replaces the host's set; the VS Code extensions
/// query only adds to it, so its answer alone changes nothing.
pub fn is_main_query(suffix: &str) -> bool {
    matches!(
        suffix,
        "software_macos" | "software_linux" | "software_windows" | "software_chrome"
    )
}

/// Whether `suffix` is one of the software detail queries.
pub fn is_software_query(suffix: &str) -> bool {
    is_main_query(suffix) || suffix == "software_vscode_extensions"
}

/// A shared inventory, as the writer keeps it.
pub type SharedInventory = Arc<Inventory>;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn deb(name: &str, version: &str) -> Row {
        row(&[
            ("name", name),
            ("version", version),
            ("source", "deb_packages"),
            ("arch", "amd64"),
        ])
    }

    #[test]
    fn the_same_packages_in_any_order_give_the_same_fingerprint() {
        let a = [
            deb("curl", "7.81.0-1ubuntu1.15"),
            deb("bash", "5.1-6ubuntu1"),
        ];
        let b = [
            deb("bash", "5.1-6ubuntu1"),
            deb("curl", "7.81.0-1ubuntu1.15"),
        ];
        let one = Inventory::from_rows(&a, "ubuntu", "Ubuntu 22.04.4 LTS");
        let two = Inventory::from_rows(&b, "ubuntu", "Ubuntu 22.04.4 LTS");
        assert_eq!(one.fingerprint, two.fingerprint);
        assert_eq!(one.items, two.items);
        assert_eq!(&*one.items[0].software.name, "bash");
    }

    #[test]
    fn an_upgrade_or_a_new_open_time_changes_the_fingerprint() {
        let before = Inventory::from_rows(&[deb("curl", "7.81.0-1ubuntu1.15")], "ubuntu", "");
        let after = Inventory::from_rows(&[deb("curl", "7.81.0-1ubuntu1.16")], "ubuntu", "");
        assert_ne!(before.fingerprint, after.fingerprint);
        let app = |opened: &str| {
            row(&[
                ("name", "Slack.app"),
                ("version", "4.36"),
                ("source", "apps"),
                ("last_opened_at", opened),
            ])
        };
        let closed = Inventory::from_rows(&[app("1700000000.5")], "darwin", "");
        let opened = Inventory::from_rows(&[app("1700003600.0")], "darwin", "");
        assert_ne!(closed.fingerprint, opened.fingerprint);
        assert_eq!(opened.items[0].last_opened_at, Some(1_700_003_600));
    }

    #[test]
    fn duplicates_merge_their_paths_and_rows_without_name_or_source_are_dropped() {
        let pip = |path: &str| {
            row(&[
                ("name", "requests"),
                ("version", "2.31.0"),
                ("source", "python_packages"),
                ("installed_path", path),
            ])
        };
        let rows = [
            pip("/usr/lib/python3/dist-packages"),
            pip("/home/a/.local/lib/python3.10/site-packages"),
            pip("/usr/lib/python3/dist-packages"),
            row(&[("name", ""), ("version", "1"), ("source", "deb_packages")]),
            row(&[("name", "orphan"), ("version", "1")]),
        ];
        let inventory = Inventory::from_rows(&rows, "ubuntu", "");
        assert_eq!(inventory.items.len(), 1);
        assert_eq!(
            inventory.items[0].installed_paths,
            vec![
                Box::from("/home/a/.local/lib/python3.10/site-packages"),
                Box::from("/usr/lib/python3/dist-packages")
            ]
        );
        assert_eq!(inventory.items[0].last_opened_at, None);
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_the_checksum_is_stable() {
        let long = "é".repeat(300);
        let rows = [row(&[
            ("name", &long),
            ("version", "1"),
            ("source", "apps"),
        ])];
        let inventory = Inventory::from_rows(&rows, "darwin", "");
        assert_eq!(inventory.items[0].software.name.chars().count(), MAX_TEXT);
        // Fields are length-prefixed: moving text between columns makes other software.
        let a = Inventory::from_rows(
            &[row(&[("name", "ab"), ("version", "c"), ("source", "apps")])],
            "",
            "",
        );
        let b = Inventory::from_rows(
            &[row(&[("name", "a"), ("version", "bc"), ("source", "apps")])],
            "",
            "",
        );
        assert_ne!(
            a.items[0].software.checksum(),
            b.items[0].software.checksum()
        );
        assert_eq!(
            a.items[0].software.checksum(),
            a.items[0].software.clone().checksum()
        );
    }

    #[test]
    fn only_the_platform_queries_replace_the_set() {
        assert!(is_main_query("software_linux"));
        assert!(!is_main_query("software_vscode_extensions"));
        assert!(is_software_query("software_vscode_extensions"));
        assert!(!is_software_query("os_version"));
    }
}
