//! The real package names the simulated hosts carry, read from `catalog.txt`.
//!
//! The text file is compiled into the binary and parsed once, on first use. Its sections name a
//! software source (`[deb]`, `[rpm]`, `[pypi]`, ...); each line gives a package name, one
//! source-specific field where the source has one (architecture, bundle identifier, publisher)
//! and the versions the pool offers, oldest first. A line with a single version gets two later
//! ones derived in the style of its ecosystem: an Ubuntu security update (`5.1-6ubuntu1` →
//! `5.1-6ubuntu1.1`), an rpm rebuild (`6.el9` → `7.el9`), or the next patch release
//! (`2.31.0` → `2.31.1`).

use std::sync::OnceLock;

use super::Source;

const CATALOG_TEXT: &str = include_str!("catalog.txt");

/// One package of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Package name as osquery reports it.
    pub name: String,
    /// `deb`/`rpm`: the architecture; `apps`: the bundle identifier; `programs` and `vscode`:
    /// the publisher. Empty for the other sources.
    pub extra: String,
    /// Versions, oldest first. For rpm packages `version-release`, without an epoch.
    pub versions: Vec<String>,
}

/// Every section of the catalog.
#[derive(Debug)]
pub struct Catalog {
    sections: Vec<(Source, Vec<CatalogEntry>)>,
}

impl Catalog {
    /// The parsed catalog (parsed on first use).
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| Catalog::parse(CATALOG_TEXT))
    }

    /// The entries of one source, in file order (empty if the file has no such section).
    pub fn entries(&self, source: Source) -> &[CatalogEntry] {
        self.sections
            .iter()
            .find(|(s, _)| *s == source)
            .map_or(&[], |(_, e)| e.as_slice())
    }

    /// Parses catalog text; panics on a malformed line (the text is part of the binary, and a
    /// unit test parses it).
    fn parse(text: &str) -> Catalog {
        let mut sections: Vec<(Source, Vec<CatalogEntry>)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let source = section_source(section)
                    .unwrap_or_else(|| panic!("catalog.txt:{}: unknown section", number + 1));
                sections.push((source, Vec::new()));
                continue;
            }
            let (source, entries) = sections
                .last_mut()
                .unwrap_or_else(|| panic!("catalog.txt:{}: line before a section", number + 1));
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let (name, extra, versions) = match (has_extra(*source), fields.as_slice()) {
                (true, [name, extra, versions]) => (*name, *extra, *versions),
                (false, [name, versions]) => (*name, "", *versions),
                _ => panic!("catalog.txt:{}: wrong number of fields", number + 1),
            };
            let mut versions: Vec<String> = versions
                .split_whitespace()
                .map(|v| match source {
                    Source::Rpm => strip_epoch(v).to_string(),
                    _ => v.to_string(),
                })
                .collect();
            assert!(
                !versions.is_empty(),
                "catalog.txt:{}: no version",
                number + 1
            );
            if versions.len() == 1 {
                let first = versions[0].clone();
                versions.extend((1..=2).map(|n| later_version(*source, &first, n)));
            }
            entries.push(CatalogEntry {
                name: name.to_string(),
                extra: extra.to_string(),
                versions,
            });
        }
        Catalog { sections }
    }
}

fn section_source(section: &str) -> Option<Source> {
    Some(match section {
        "deb" => Source::Deb,
        "rpm" => Source::Rpm,
        "pypi" => Source::Python,
        "npm" => Source::Npm,
        "apps" => Source::Apps,
        "homebrew" => Source::Homebrew,
        "programs" => Source::Programs,
        "chocolatey" => Source::Chocolatey,
        "vscode" => Source::VscodeExtensions,
        _ => return None,
    })
}

fn has_extra(source: Source) -> bool {
    matches!(
        source,
        Source::Deb | Source::Rpm | Source::Apps | Source::Programs | Source::VscodeExtensions
    )
}

/// `1:1.44.0-3.el9` → `1.44.0-3.el9`: osquery's `rpm_packages.version` has no epoch.
fn strip_epoch(version: &str) -> &str {
    match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => version,
    }
}

/// Adds `by` to the last run of digits in `text` (`2.31.0` + 1 → `2.31.1`); `text` unchanged
/// when it has no digits.
pub(crate) fn bump_last_number(text: &str, by: u64) -> String {
    let bytes = text.as_bytes();
    let Some(end) = bytes.iter().rposition(u8::is_ascii_digit).map(|i| i + 1) else {
        return text.to_string();
    };
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let n: u64 = text[start..end].parse().unwrap_or(0);
    format!("{}{}{}", &text[..start], n + by, &text[end..])
}

/// The `n`-th later version of `version` (n ≥ 1) in the style of `source`'s ecosystem.
fn later_version(source: Source, version: &str, n: u64) -> String {
    match source {
        Source::Deb => match version.rsplit_once('-') {
            // An Ubuntu update appends `.N` to the Debian revision, or bumps an existing one.
            Some((_, revision)) if !revision.contains('.') => format!("{version}.{n}"),
            _ => bump_last_number(version, n),
        },
        Source::Rpm => match version.rsplit_once('-') {
            // A rebuild bumps the leading number of the release: `6.el9` → `7.el9`.
            Some((upstream, release)) => {
                let digits = release.bytes().take_while(u8::is_ascii_digit).count();
                let r: u64 = release[..digits].parse().unwrap_or(0);
                format!("{upstream}-{}{}", r + n, &release[digits..])
            }
            None => bump_last_number(version, n),
        },
        _ => bump_last_number(version, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_parses_with_real_names() {
        let c = Catalog::get();
        let names =
            |s: Source| -> Vec<&str> { c.entries(s).iter().map(|e| e.name.as_str()).collect() };
        for n in ["bash", "coreutils", "git", "vim", "systemd", "python3.10"] {
            assert!(names(Source::Deb).contains(&n), "{n}");
        }
        assert!(names(Source::Rpm).contains(&"glibc"));
        assert!(names(Source::Python).contains(&"cryptography"));
        assert!(names(Source::Python).contains(&"PyYAML"));
        assert!(names(Source::Apps).contains(&"Google Chrome.app"));
        assert!(names(Source::Programs).contains(&"Google Chrome"));
        assert!(c.entries(Source::Deb).len() >= 250);
        assert!(c.entries(Source::Rpm).len() >= 150);
        for (_, entries) in &c.sections {
            for e in entries {
                assert!(e.versions.len() >= 2, "{}", e.name);
            }
        }
        let chrome = &c.entries(Source::Apps)[0];
        assert_eq!(chrome.extra, "com.google.Chrome");
    }

    #[test]
    fn derived_versions_follow_each_ecosystem() {
        assert_eq!(
            later_version(Source::Deb, "5.1-6ubuntu1", 1),
            "5.1-6ubuntu1.1"
        );
        assert_eq!(
            later_version(Source::Deb, "1.6-2.1ubuntu3", 2),
            "1.6-2.1ubuntu5"
        );
        assert_eq!(
            later_version(Source::Rpm, "5.1.8-6.el9_1", 1),
            "5.1.8-7.el9_1"
        );
        assert_eq!(later_version(Source::Python, "2.31.0", 2), "2.31.2");
        assert_eq!(strip_epoch("32:9.16.23-14.el9_3"), "9.16.23-14.el9_3");
        assert_eq!(bump_last_number("no digits", 1), "no digits");
    }
}
