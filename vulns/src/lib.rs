//! Offline vulnerability matching for Flotilla.
//!
//! This crate answers one question: which known vulnerabilities affect this
//! package at this version? It reads everything from a directory that an
//! operator (or a cron job) fills with downloaded data, and never touches the
//! network or a database.
//!
//! # What goes in the directory
//!
//! * OSV records (<https://ossf.github.io/osv-schema/>): any `*.json` file
//!   holding one record or a JSON array of records, the same gzipped as
//!   `*.json.gz`, and osv.dev's per-ecosystem `all.zip` dumps (a zip of
//!   one-record `*.json` files). Subdirectories are searched too.
//! * Optionally CISA's Known Exploited Vulnerabilities catalogue, as
//!   `known_exploited_vulnerabilities.json`, which marks CVEs as exploited.
//! * Optionally FIRST's EPSS scores, as `epss_scores*.csv` or
//!   `epss_scores*.csv.gz`, which give each CVE a probability of being
//!   exploited in the next 30 days.
//!
//! A file that cannot be read (bad JSON, a broken gzip stream, a bad entry in
//! a zip) is named in the [`LoadReport`] with its error and skipped; the rest
//! loads. Records that are withdrawn are skipped and counted. Ecosystems the
//! crate does not match in are counted by name.
//!
//! # Matching
//!
//! [`Feed::matches`] looks the package up by ecosystem and name (names
//! compared the way the ecosystem does, see [`Ecosystem::normalize_name`]),
//! then checks the version against each record's ranges and explicit version
//! lists, with the ecosystem's own version ordering (see [`compare_versions`]).
//! Range bounds are parsed once at load time, so a match costs one parse of
//! the host's version plus comparisons.
//!
//! OSV range semantics are followed: `introduced` is inclusive (`"0"` means
//! every version), `fixed` is exclusive, `last_affected` is inclusive, and a
//! `limit` caps the range; one range may hold several introduced/fixed pairs.
//! `GIT` ranges are commit hashes and cannot be compared with an installed
//! version, so they are ignored. `SEMVER` and `ECOSYSTEM` ranges are both
//! compared in the ecosystem's ordering (for the SemVer ecosystems these are
//! the same thing).
//!
//! Each vulnerability is reported once per package under its CVE, even when
//! several records name it (a Debian advisory, an Ubuntu notice and a GitHub
//! advisory for the same CVE). [`Feed::cve`] gives the merged metadata.
//!
//! A note for callers matching Debian and Ubuntu packages: OSV names the
//! *source* package there (`openssl`, not `libssl3`). Ubuntu's records also
//! list the binary packages built from it (`ecosystem_specific.binaries`),
//! and those names are indexed too; Debian's records do not, so where the
//! host reports a binary package's source, query with that name as well.

//!
//! And one for the rpm family: records carry the epoch (`1:3.0.7-25.el9_3`
//! for Rocky's openssl), while osquery's `rpm_packages` rows as Fleet
//! collects them do not. An epoch written on one side only is therefore not
//! compared (as rpm treats a missing release); pass the epoch to
//! [`host_version`] when the host reports it, and it is.

mod ecosystem;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod load;
mod osv;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

pub use ecosystem::{Ecosystem, host_version};
pub use version::{compare_versions, rpmvercmp};

use version::{Parsed, Scheme};

/// One package installed on a host, as it is to be matched.
#[derive(Clone, Copy, Debug)]
pub struct Package<'a> {
    /// Where the package comes from; see [`Ecosystem::for_software`].
    pub ecosystem: &'a Ecosystem,
    /// Its name as the host reports it (normalised by the ecosystem's rules).
    pub name: &'a str,
    /// Its version; for the rpm family `[epoch:]version-release`, see
    /// [`host_version`].
    pub version: &'a str,
}

/// A vulnerability affecting a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The CVE the vulnerability is shown as (or the OSV id when no record
    /// gives it a CVE).
    pub cve: String,
    /// The OSV record that matched (the first one, when several did).
    pub osv_id: String,
    /// The version that fixes it: the `fixed` event of the range that
    /// matched. `None` when the range ends with `last_affected`, has no end,
    /// or the match came from an explicit version list only.
    pub resolved_in_version: Option<String>,
}

/// What is known about one CVE, merged from every record that names it and
/// from the KEV and EPSS files.
#[derive(Clone, Debug, PartialEq)]
pub struct CveMeta {
    /// The CVE id (upper case), or the OSV id for records without a CVE.
    pub cve: String,
    /// The highest CVSS base score any record gives (v2, v3 or v4 vector).
    pub cvss_score: Option<f64>,
    /// The EPSS probability, if an EPSS file lists the CVE.
    pub epss_probability: Option<f64>,
    /// Whether CISA's KEV catalogue lists the CVE.
    pub cisa_known_exploit: bool,
    /// The earliest `published` date of any record.
    pub published: Option<DateTime<Utc>>,
    /// The first non-empty `summary` of any record, else the first non-empty
    /// `details`.
    pub description: Option<String>,
}

/// How one input file loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// The path relative to the loaded directory.
    pub name: String,
    /// For a problem with one entry of a zip, that entry's name.
    pub entry: Option<String>,
    /// Records (or KEV/EPSS rows) read from it.
    pub records: usize,
    /// Why it (or the entry) was skipped.
    pub error: Option<String>,
}

/// What [`Feed::load_dir`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// OSV records loaded (withdrawn ones not included).
    pub records: usize,
    /// Withdrawn records skipped.
    pub withdrawn: usize,
    /// One line per input file, plus one per bad zip entry.
    pub files: Vec<FileReport>,
    /// `affected[]` entries in ecosystems not matched, by OSV ecosystem name.
    pub unknown_ecosystems: BTreeMap<String, usize>,
    /// CVEs in the KEV catalogue.
    pub kev: usize,
    /// CVEs with an EPSS score.
    pub epss: usize,
}

impl LoadReport {
    /// The files (and zip entries) that failed, with their errors.
    pub fn errors(&self) -> impl Iterator<Item = &FileReport> {
        self.files.iter().filter(|f| f.error.is_some())
    }
}

/// The end of one affected interval.
#[derive(Clone, Debug)]
enum End {
    /// No end: every later version is affected.
    Open,
    /// Affected below this version; the text is what the record says.
    Fixed(Parsed, String),
    /// Affected up to and including this version.
    LastAffected(Parsed),
}

#[derive(Clone, Debug)]
struct Interval {
    /// `None`: from the very first version.
    start: Option<Parsed>,
    end: End,
}

#[derive(Clone, Debug, Default)]
struct RangeSpec {
    intervals: Vec<Interval>,
    /// Versions at or above any limit are not affected by this range.
    limits: Vec<Parsed>,
}

/// One `affected[]` entry of one record, ready to match.
#[derive(Clone, Debug)]
struct Entry {
    record: u32,
    ranges: Vec<RangeSpec>,
    versions: Vec<(String, Option<Parsed>)>,
}

#[derive(Clone, Debug)]
struct RecordInfo {
    osv_id: String,
    cve: String,
}

/// Vulnerability data loaded from a directory, indexed by ecosystem and
/// package name.
#[derive(Debug, Default)]
pub struct Feed {
    /// Ecosystem → package name → indices into `entries`.
    index: HashMap<Ecosystem, HashMap<String, Vec<u32>>>,
    entries: Vec<Entry>,
    records: Vec<RecordInfo>,
    cves: HashMap<String, CveMeta>,
}

fn cmp_is(a: &Parsed, b: &Parsed, pred: impl Fn(std::cmp::Ordering) -> bool) -> bool {
    a.compare(b).is_some_and(pred)
}

impl Interval {
    fn contains(&self, v: &Parsed) -> bool {
        if let Some(start) = &self.start
            && !cmp_is(v, start, |o| o.is_ge())
        {
            return false;
        }
        match &self.end {
            End::Open => true,
            End::Fixed(fixed, _) => cmp_is(v, fixed, |o| o.is_lt()),
            End::LastAffected(last) => cmp_is(v, last, |o| o.is_le()),
        }
    }
}

impl Entry {
    /// `None` when not affected; `Some(fix)` when affected.
    fn affects(&self, version: &str, parsed: Option<&Parsed>) -> Option<Option<&str>> {
        if let Some(v) = parsed {
            for range in &self.ranges {
                if range.limits.iter().any(|l| cmp_is(v, l, |o| o.is_ge())) {
                    continue;
                }
                if let Some(iv) = range.intervals.iter().find(|iv| iv.contains(v)) {
                    return Some(match &iv.end {
                        End::Fixed(_, text) => Some(text.as_str()),
                        _ => None,
                    });
                }
            }
        }
        let listed = self.versions.iter().any(|(text, p)| {
            text == version
                || matches!((p, parsed), (Some(p), Some(v)) if cmp_is(p, v, |o| o.is_eq()))
        });
        listed.then_some(None)
    }
}

impl Feed {
    /// Loads every input file under `dir`. Never fails as a whole: problems
    /// are in the report (a missing directory is one error line).
    pub fn load_dir(dir: &Path) -> (Feed, LoadReport) {
        load::load_dir(dir)
    }

    /// The vulnerabilities affecting `pkg`, one per CVE, in the order the
    /// records were loaded.
    pub fn matches(&self, pkg: &Package<'_>) -> Vec<Match> {
        let Some(by_name) = self.index.get(pkg.ecosystem) else {
            return Vec::new();
        };
        let name = pkg.ecosystem.normalize_name(pkg.name);
        let Some(ids) = by_name.get(name.as_ref()) else {
            return Vec::new();
        };
        let version = pkg.version.trim();
        let parsed = Parsed::parse(Scheme::of(pkg.ecosystem), version);
        let mut out: Vec<Match> = Vec::new();
        for &id in ids {
            let entry = &self.entries[id as usize];
            let Some(fix) = entry.affects(version, parsed.as_ref()) else {
                continue;
            };
            let info = &self.records[entry.record as usize];
            match out.iter_mut().find(|m| m.cve == info.cve) {
                Some(seen) => {
                    if seen.resolved_in_version.is_none() {
                        seen.resolved_in_version = fix.map(str::to_string);
                    }
                }
                None => out.push(Match {
                    cve: info.cve.clone(),
                    osv_id: info.osv_id.clone(),
                    resolved_in_version: fix.map(str::to_string),
                }),
            }
        }
        out
    }

    /// Metadata for a CVE (or OSV id, for records without a CVE), ignoring
    /// case.
    pub fn cve(&self, cve: &str) -> Option<&CveMeta> {
        self.cves.get(&cve.trim().to_ascii_uppercase())
    }

    /// How many distinct CVEs (or CVE-less OSV ids) the loaded records name.
    pub fn cve_count(&self) -> usize {
        self.cves.len()
    }

    /// Every CVE's metadata, in no particular order.
    pub fn cves(&self) -> impl Iterator<Item = &CveMeta> {
        self.cves.values()
    }
}

/// What to watch to know when to reload: `(path, length, modification
/// time)` of every input file [`Feed::load_dir`] would read, sorted by path.
/// Poll it and reload when the list changes.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    load::input_files(dir)
        .into_iter()
        .filter_map(|(path, _)| {
            let m = std::fs::metadata(&path).ok()?;
            Some((
                path,
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ))
        })
        .collect()
}
