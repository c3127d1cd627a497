//! The per-OS package pool the hosts draw their software from.
//!
//! A pool is a list of titles (a package name of one source, with the versions the pool holds).
//! It has three parts, in this order:
//!
//! 1. the pinned titles: packages every host of the OS carries, at a known-vulnerable version
//!    on some hosts and at a fixed one on the rest ([`KNOWN_VULNERABLE`]);
//! 2. the real titles of the catalog (`catalog.txt`) for the OS's sources;
//! 3. a long tail of synthetic but plausible titles (`libmeshpixel1`, `cairo-sync`, ...) with
//!    versions shaped like their ecosystem's, generated from the title's index alone.
//!
//! Titles are taken in that order until the pool holds the requested number of distinct
//! (name, version) pairs; the pinned titles stay even when the number is smaller. The same
//! template and size always give the same pool, whatever the hosts or the seed.

use super::Source;
use super::catalog::Catalog;
use crate::host::fnv1a;
use crate::template::OsTemplate;

/// A package some hosts carry at a known-vulnerable version, and the advisory naming it.
///
/// Packages of one `group` come from one source package (`openssl` and `libssl3`) and are
/// upgraded together: a host has all of a group vulnerable, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownVulnerable {
    /// The templates whose hosts all carry the package.
    pub templates: &'static [OsTemplate],
    /// The osquery table it is reported from.
    pub source: Source,
    /// Package name as osquery reports it.
    pub name: &'static str,
    /// `deb`/`rpm` architecture, empty otherwise.
    pub arch: &'static str,
    /// The vulnerable version (`version-release` for rpm).
    pub vulnerable: &'static str,
    /// The version the other hosts carry (`version-release` for rpm): at or after `fixed_in`.
    pub fixed: &'static str,
    /// The first version not affected (the range's `fixed` event).
    pub fixed_in: &'static str,
    /// Hosts draw vulnerable or fixed once per group.
    pub group: &'static str,
    /// OSV record id.
    pub id: &'static str,
    /// The CVE the record is about (its alias, or its id).
    pub cve: &'static str,
    /// OSV ecosystem string.
    pub ecosystem: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// CVSS v3.1 vector.
    pub cvss: &'static str,
    /// Publication date of the record (RFC 3339).
    pub published: &'static str,
    /// Whether CISA's KEV catalogue lists the CVE in the fixture.
    pub kev: bool,
}

const LINUX: &[OsTemplate] = &[OsTemplate::Ubuntu, OsTemplate::Rocky];
const UBUNTU: &[OsTemplate] = &[OsTemplate::Ubuntu];
const ROCKY: &[OsTemplate] = &[OsTemplate::Rocky];
const EVERY_OS: &[OsTemplate] = &OsTemplate::ALL;

/// The share of hosts (per mille) with a group's vulnerable versions.
pub const VULNERABLE_PER_MILLE: u64 = 300;

/// The packages that some hosts carry at known-vulnerable versions. Ids, CVEs and versions are
/// shaped like the real advisories' (and mostly taken from them), but this is load-test data,
/// not a source of security information.
pub const KNOWN_VULNERABLE: &[KnownVulnerable] = &[
    KnownVulnerable {
        templates: UBUNTU,
        source: Source::Deb,
        name: "openssl",
        arch: "amd64",
        vulnerable: "3.0.2-0ubuntu1.10",
        fixed: "3.0.2-0ubuntu1.15",
        fixed_in: "3.0.2-0ubuntu1.12",
        group: "ubuntu-openssl",
        id: "USN-6450-1",
        cve: "CVE-2023-5363",
        ecosystem: "Ubuntu:22.04:LTS",
        summary: "openssl vulnerabilities",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        published: "2023-10-24T15:04:41Z",
        kev: false,
    },
    KnownVulnerable {
        templates: UBUNTU,
        source: Source::Deb,
        name: "libssl3",
        arch: "amd64",
        vulnerable: "3.0.2-0ubuntu1.10",
        fixed: "3.0.2-0ubuntu1.15",
        fixed_in: "3.0.2-0ubuntu1.12",
        group: "ubuntu-openssl",
        id: "CVE-2023-5363",
        cve: "CVE-2023-5363",
        ecosystem: "Ubuntu:22.04:LTS",
        summary: "Incorrect cipher key and IV length processing",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        published: "2023-10-25T18:17:43Z",
        kev: false,
    },
    KnownVulnerable {
        templates: UBUNTU,
        source: Source::Deb,
        name: "curl",
        arch: "amd64",
        vulnerable: "7.81.0-1ubuntu1.13",
        fixed: "7.81.0-1ubuntu1.15",
        fixed_in: "7.81.0-1ubuntu1.14",
        group: "ubuntu-curl",
        id: "USN-6429-1",
        cve: "CVE-2023-38545",
        ecosystem: "Ubuntu:22.04:LTS",
        summary: "curl vulnerabilities",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        published: "2023-10-11T14:02:17Z",
        kev: true,
    },
    KnownVulnerable {
        templates: UBUNTU,
        source: Source::Deb,
        name: "libcurl4",
        arch: "amd64",
        vulnerable: "7.81.0-1ubuntu1.13",
        fixed: "7.81.0-1ubuntu1.15",
        fixed_in: "7.81.0-1ubuntu1.14",
        group: "ubuntu-curl",
        id: "CVE-2023-38545",
        cve: "CVE-2023-38545",
        ecosystem: "Ubuntu:22.04:LTS",
        summary: "SOCKS5 heap buffer overflow",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        published: "2023-10-18T04:15:11Z",
        kev: true,
    },
    KnownVulnerable {
        templates: UBUNTU,
        source: Source::Deb,
        name: "openssh-server",
        arch: "amd64",
        vulnerable: "1:8.9p1-3ubuntu0.6",
        fixed: "1:8.9p1-3ubuntu0.11",
        fixed_in: "1:8.9p1-3ubuntu0.10",
        group: "ubuntu-openssh",
        id: "USN-6859-1",
        cve: "CVE-2024-6387",
        ecosystem: "Ubuntu:22.04:LTS",
        summary: "OpenSSH vulnerability",
        cvss: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
        published: "2024-07-01T11:38:52Z",
        kev: true,
    },
    KnownVulnerable {
        templates: ROCKY,
        source: Source::Rpm,
        name: "openssl",
        arch: "x86_64",
        vulnerable: "3.0.7-24.el9",
        fixed: "3.0.7-27.el9",
        fixed_in: "3.0.7-25.el9_3",
        group: "rocky-openssl",
        id: "RLSA-2024:0310",
        cve: "CVE-2023-5678",
        ecosystem: "Rocky Linux:9",
        summary: "Moderate: openssl security update",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
        published: "2024-01-25T10:12:31Z",
        kev: false,
    },
    KnownVulnerable {
        templates: ROCKY,
        source: Source::Rpm,
        name: "openssl-libs",
        arch: "x86_64",
        vulnerable: "3.0.7-24.el9",
        fixed: "3.0.7-27.el9",
        fixed_in: "3.0.7-25.el9_3",
        group: "rocky-openssl",
        id: "CVE-2023-5678",
        cve: "CVE-2023-5678",
        ecosystem: "Rocky Linux:9",
        summary: "Excessive time spent in DH check / generation with large Q parameter value",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
        published: "2023-11-06T16:15:42Z",
        kev: false,
    },
    KnownVulnerable {
        templates: ROCKY,
        source: Source::Rpm,
        name: "curl",
        arch: "x86_64",
        vulnerable: "7.76.1-26.el9",
        fixed: "7.76.1-26.el9_3.3",
        fixed_in: "7.76.1-26.el9_3.2",
        group: "rocky-curl",
        id: "RLSA-2024:1601",
        cve: "CVE-2023-38546",
        ecosystem: "Rocky Linux:9",
        summary: "Moderate: curl security and bug fix update",
        cvss: "CVSS:3.1/AV:L/AC:H/PR:N/UI:N/S:U/C:N/I:L/A:N",
        published: "2024-04-02T09:41:08Z",
        kev: false,
    },
    KnownVulnerable {
        templates: EVERY_OS,
        source: Source::Python,
        name: "Jinja2",
        arch: "",
        vulnerable: "3.1.2",
        fixed: "3.1.4",
        fixed_in: "3.1.3",
        group: "pypi-jinja2",
        id: "GHSA-h5c8-rqwp-cp95",
        cve: "CVE-2024-22195",
        ecosystem: "PyPI",
        summary: "Jinja vulnerable to HTML attribute injection when passing user input as keys to xmlattr filter",
        cvss: "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N",
        published: "2024-01-11T15:20:48Z",
        kev: false,
    },
    KnownVulnerable {
        templates: EVERY_OS,
        source: Source::Python,
        name: "requests",
        arch: "",
        vulnerable: "2.31.0",
        fixed: "2.32.3",
        fixed_in: "2.32.0",
        group: "pypi-requests",
        id: "GHSA-9wx4-h78v-vm56",
        cve: "CVE-2024-35195",
        ecosystem: "PyPI",
        summary: "Requests `Session` object does not verify requests after making first request with verify=False",
        cvss: "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N",
        published: "2024-05-20T20:15:00Z",
        kev: false,
    },
    KnownVulnerable {
        templates: LINUX,
        source: Source::Python,
        name: "urllib3",
        arch: "",
        vulnerable: "1.26.5",
        fixed: "1.26.18",
        fixed_in: "1.26.17",
        group: "pypi-urllib3",
        id: "GHSA-v845-jxx5-vc9f",
        cve: "CVE-2023-43804",
        ecosystem: "PyPI",
        summary: "`Cookie` HTTP header isn't stripped on cross-origin redirects",
        cvss: "CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N",
        published: "2023-10-02T23:32:36Z",
        kev: false,
    },
];

/// One package name of one source in a pool, with the versions the pool holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title {
    /// The osquery table it is reported from.
    pub source: Source,
    /// Package name.
    pub name: String,
    /// `deb`/`rpm` architecture, the app's bundle identifier, or the program's publisher.
    pub extra: String,
    /// Versions, oldest first (`version-release` for rpm).
    pub versions: Vec<String>,
    /// Index into [`KNOWN_VULNERABLE`] for a pinned title.
    pub pinned: Option<usize>,
}

/// The titles of one OS: pinned ones first, then the catalog's, then the synthetic tail.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Which OS.
    pub template: OsTemplate,
    /// Every title; `titles[..pinned]` are pinned, `titles[pinned..tail_start]` real.
    pub titles: Vec<Title>,
    /// How many titles are pinned.
    pub pinned: usize,
    /// Index of the first synthetic title.
    pub tail_start: usize,
}

/// The sources of the catalog each OS draws from.
fn catalog_sources(t: OsTemplate) -> &'static [Source] {
    match t {
        OsTemplate::Ubuntu => &[Source::Deb, Source::Python, Source::Npm],
        OsTemplate::Rocky => &[Source::Rpm, Source::Python, Source::Npm],
        OsTemplate::MacOs => &[Source::Apps, Source::Homebrew, Source::Python],
        OsTemplate::Windows => &[Source::Programs, Source::Chocolatey, Source::Python],
    }
}

/// The source of each synthetic title, cycling: mostly the OS's own package manager.
fn tail_schedule(t: OsTemplate) -> &'static [Source] {
    use Source::*;
    match t {
        OsTemplate::Ubuntu => &[Deb, Deb, Python, Deb, Deb, Npm, Deb, Deb, Python, Deb],
        OsTemplate::Rocky => &[Rpm, Rpm, Python, Rpm, Rpm, Npm, Rpm, Rpm, Python, Rpm],
        OsTemplate::MacOs => &[
            Homebrew, Apps, Python, Homebrew, Npm, Homebrew, Apps, Python, Homebrew, Python,
        ],
        OsTemplate::Windows => &[
            Programs, Chocolatey, Python, Programs, Programs, Python, Chocolatey, Programs, Python,
            Programs,
        ],
    }
}

impl Pool {
    /// The pool of `template` with `size` distinct (name, version) pairs (more when the pinned
    /// titles alone have more).
    pub fn build(template: OsTemplate, size: usize) -> Pool {
        let mut titles: Vec<Title> = KNOWN_VULNERABLE
            .iter()
            .enumerate()
            .filter(|(_, k)| k.templates.contains(&template))
            .map(|(i, k)| Title {
                source: k.source,
                name: k.name.to_string(),
                extra: k.arch.to_string(),
                versions: vec![k.vulnerable.to_string(), k.fixed.to_string()],
                pinned: Some(i),
            })
            .collect();
        let pinned = titles.len();
        let mut pairs: usize = titles.iter().map(|t| t.versions.len()).sum();
        let is_pinned = |source: Source, name: &str| {
            KNOWN_VULNERABLE
                .iter()
                .any(|k| k.source == source && k.name.eq_ignore_ascii_case(name))
        };
        let catalog = Catalog::get();
        'real: for &source in catalog_sources(template) {
            for e in catalog.entries(source) {
                if pairs >= size {
                    break 'real;
                }
                if is_pinned(source, &e.name) {
                    continue;
                }
                let mut versions = e.versions.clone();
                versions.truncate(size - pairs);
                pairs += versions.len();
                titles.push(Title {
                    source,
                    name: e.name.clone(),
                    extra: e.extra.clone(),
                    versions,
                    pinned: None,
                });
            }
        }
        let tail_start = titles.len();
        let schedule = tail_schedule(template);
        let mut counters = [0usize; Source::COUNT];
        let mut i = 0;
        while pairs < size {
            let source = schedule[i % schedule.len()];
            i += 1;
            let k = counters[source as usize];
            counters[source as usize] += 1;
            let mut title = synthetic_title(source, k);
            title.versions.truncate(size - pairs);
            pairs += title.versions.len();
            titles.push(title);
        }
        Pool {
            template,
            titles,
            pinned,
            tail_start,
        }
    }

    /// Distinct (name, version) pairs of the pool.
    pub fn pairs(&self) -> usize {
        self.titles.iter().map(|t| t.versions.len()).sum()
    }

    /// The synthetic titles.
    pub fn tail(&self) -> &[Title] {
        &self.titles[self.tail_start..]
    }
}

/// Words the synthetic names are made of.
const WORDS: [&str; 64] = [
    "cairo", "mesh", "pixel", "sound", "wire", "grid", "font", "glyph", "pango", "xml", "yaml",
    "zlog", "tiff", "jpeg", "web", "dav", "ldap", "sasl", "krb", "gss", "pam", "udev", "usb",
    "hid", "input", "evdev", "drm", "gbm", "egl", "vk", "opus", "vorbis", "flac", "speex", "pulse",
    "pipe", "sync", "bus", "gobj", "atk", "gtk", "qt", "kde", "avahi", "cups", "sane", "snmp",
    "net", "link", "route", "tun", "ssh", "tls", "crypt", "hash", "json", "proto", "rpc", "cache",
    "queue", "stream", "event", "trace", "metric",
];

const PROGRAM_KINDS: [&str; 6] = ["Client", "Agent", "Studio", "Toolkit", "Viewer", "Runtime"];

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The `k`-th synthetic title of `source`: a pure function of the two, so the same title has
/// the same name and versions in every pool (PyPI and npm names are shared between OSes).
pub fn synthetic_title(source: Source, k: usize) -> Title {
    let w1 = WORDS[k % WORDS.len()];
    let w2 = WORDS[(k / WORDS.len() + k) % WORDS.len()];
    let generation = k / (WORDS.len() * WORDS.len());
    let g = generation + 1;
    let suffix = if generation == 0 {
        String::new()
    } else {
        g.to_string()
    };
    let (name, extra) = match source {
        Source::Deb if k % 5 == 4 => (format!("{w1}{w2}{suffix}-common"), "all".to_string()),
        Source::Deb => (format!("lib{w1}{w2}{g}"), "amd64".to_string()),
        Source::Rpm if k % 5 == 4 => (format!("{w1}-{w2}{suffix}-data"), "noarch".to_string()),
        Source::Rpm => (format!("lib{w1}{w2}{suffix}"), "x86_64".to_string()),
        Source::Python => (format!("{w1}-{w2}{suffix}"), String::new()),
        Source::Npm => (format!("@{w1}/{w2}{suffix}"), String::new()),
        Source::Homebrew | Source::Chocolatey => (format!("{w1}{w2}{suffix}"), String::new()),
        Source::Apps => (
            format!("{} {}{suffix}.app", capitalised(w1), capitalised(w2)),
            format!("io.{w1}.{w2}{suffix}"),
        ),
        Source::Programs => (
            format!(
                "{}{} {}{}",
                capitalised(w1),
                capitalised(w2),
                PROGRAM_KINDS[k % PROGRAM_KINDS.len()],
                if generation == 0 {
                    String::new()
                } else {
                    format!(" {g}")
                }
            ),
            format!("{} Software Inc.", capitalised(w1)),
        ),
        Source::VscodeExtensions => (format!("{w1}.{w2}{suffix}"), capitalised(w1)),
    };
    let versions = synthetic_versions(source, &name);
    Title {
        source,
        name,
        extra,
        versions,
        pinned: None,
    }
}

/// The numbers a synthetic title's versions are made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionSeed {
    major: u64,
    minor: u64,
    /// Always ≥ 1, so a version below every pool version exists (see [`below_all`]).
    patch: u64,
    revision: u64,
    count: u64,
}

pub(crate) fn version_seed(source: Source, name: &str) -> VersionSeed {
    let h = fnv1a(name) ^ (source as u64).rotate_left(29);
    VersionSeed {
        major: h % 5,
        minor: (h >> 8) % 20,
        patch: 1 + (h >> 16) % 9,
        revision: 1 + (h >> 24) % 30,
        count: 1 + (h >> 40) % 4,
    }
}

/// The `i`-th version (0-based) of a synthetic title, in its ecosystem's shape; increasing in
/// `i` in that ecosystem's order.
pub(crate) fn synthetic_version(source: Source, s: VersionSeed, i: u64) -> String {
    let VersionSeed {
        major,
        minor,
        patch,
        revision,
        ..
    } = s;
    match source {
        Source::Deb => format!(
            "{major}.{minor}.{patch}-{}ubuntu0.{}",
            1 + revision % 3,
            i + 1
        ),
        Source::Rpm => format!("{major}.{minor}.{patch}-{}.el9", revision + i),
        Source::Apps => format!("{}.{minor}.{}", major + 1, patch + i),
        Source::Programs => format!("{}.{minor}.{}.0", major + 1, patch * 100 + i),
        _ => format!("{major}.{minor}.{}", patch + i),
    }
}

fn synthetic_versions(source: Source, name: &str) -> Vec<String> {
    let s = version_seed(source, name);
    (0..s.count)
        .map(|i| synthetic_version(source, s, i))
        .collect()
}

/// A version of the synthetic title `name` lower than all of its versions: the previous
/// upstream patch release (`1.2.3-1ubuntu0.1` → `1.2.2-1`).
pub(crate) fn below_all(source: Source, name: &str) -> String {
    let VersionSeed {
        major,
        minor,
        patch,
        ..
    } = version_seed(source, name);
    let p = patch - 1;
    match source {
        Source::Deb => format!("{major}.{minor}.{p}-1"),
        Source::Rpm => format!("{major}.{minor}.{p}-1.el9"),
        Source::Apps => format!("{}.{minor}.{p}", major + 1),
        Source::Programs => format!("{}.{minor}.{}.0", major + 1, p * 100),
        _ => format!("{major}.{minor}.{p}"),
    }
}

/// The version after the last one of the synthetic title `name`.
pub(crate) fn after_all(source: Source, name: &str) -> String {
    let s = version_seed(source, name);
    synthetic_version(source, s, s.count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_have_the_requested_size_and_pinned_titles_first() {
        for t in OsTemplate::ALL {
            let p = Pool::build(t, 10_000);
            assert_eq!(p.pairs(), 10_000, "{t}");
            assert!(p.pinned >= 2, "{t}");
            assert!(p.titles[..p.pinned].iter().all(|t| t.pinned.is_some()));
            assert!(p.tail().len() > 1_000, "{t}: {}", p.tail().len());
            let small = Pool::build(t, 5);
            assert_eq!(small.pinned, p.pinned);
            assert_eq!(small.tail_start, small.titles.len());
        }
    }

    #[test]
    fn synthetic_names_are_unique_per_source() {
        for source in [Source::Deb, Source::Rpm, Source::Python, Source::Programs] {
            let names: std::collections::HashSet<String> = (0..10_000)
                .map(|k| synthetic_title(source, k).name)
                .collect();
            assert_eq!(names.len(), 10_000, "{source:?}");
        }
        let t = synthetic_title(Source::Deb, 0);
        assert!(t.name.starts_with("lib"), "{}", t.name);
        assert!(t.versions[0].contains("ubuntu0."), "{:?}", t.versions);
    }
}
