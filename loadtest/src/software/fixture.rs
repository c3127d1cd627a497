//! An OSV vulnerability feed for the simulated fleet's packages, written by
//! `flotilla-loadtest write-osv-fixture DIR`.
//!
//! The directory gets:
//!
//! * `osv/<id>.json`: one OSV record per known-vulnerable (ecosystem, package) of the pools
//!   ([`KNOWN_VULNERABLE`]): Ubuntu notices (`USN-…`), Rocky advisories (`RLSA-…`), GitHub
//!   advisories (`GHSA-…` with a `CVE-` alias) and records named by their CVE. Each has an
//!   `ECOSYSTEM` range `introduced: "0"`, `fixed: <first fixed version>`, so the pool's
//!   vulnerable version is inside and its fixed version outside. Beside them a Debian 12
//!   advisory no simulated host matches (there is no Debian template), and one withdrawn record
//!   that would match hosts if it were not withdrawn.
//! * `osv-padded.json.gz` (with `--records N`, N > 0): one gzipped JSON array of N synthetic
//!   records for the synthetic tail of the pools (`Ubuntu:22.04:LTS`, `Rocky Linux:9`, `PyPI`,
//!   `npm`). About one in ten of those whose package is in a pool affects the package's oldest
//!   pool version; the rest are fixed below every pool version or name packages beyond the
//!   pool, so a matcher has many candidates to reject.
//! * `known_exploited_vulnerabilities.json`: CISA's KEV catalogue shape, naming the CVEs of the
//!   known-vulnerable records marked `kev`.
//! * `epss_scores-2024-07-10.csv`: FIRST's EPSS shape, one row per CVE of the feed.
//!
//! Everything is a function of `--software-pool` and `--records`: the same arguments write the
//! same bytes (dates are fixed, not today's).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Source;
use super::pool::{KNOWN_VULNERABLE, KnownVulnerable, Pool, after_all, below_all, synthetic_title};
use crate::clock::rfc3339;
use crate::host::fnv1a;
use crate::template::OsTemplate;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixtureOptions {
    /// The pools' size (`--software-pool` of the runs the feed is for).
    pub pool_size: usize,
    /// Synthetic records to add (`--records`).
    pub records: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FixtureSummary {
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// Records written, withdrawn and padded ones included.
    pub records: usize,
    /// Real-looking records (individual files), the withdrawn one included.
    pub named_records: usize,
    /// Synthetic records in the gzipped array.
    pub padded_records: usize,
    /// Distinct (source, name, version) packages across the pools.
    pub pool_packages: usize,
    /// Of those, how many some (not withdrawn) record affects.
    pub vulnerable_pool_packages: usize,
    /// CVEs in the KEV file.
    pub kev_cves: usize,
    /// Rows of the EPSS file.
    pub epss_rows: usize,
}

/// The date the KEV and EPSS files claim to be from.
const FEED_DATE: &str = "2024-07-10";

/// One synthetic record, before it becomes JSON; tests read these to check the ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedRecord {
    /// OSV id.
    pub id: String,
    /// The CVE.
    pub cve: String,
    /// Source of the package (its ecosystem follows).
    pub source: Source,
    /// Package name.
    pub name: String,
    /// The range's `fixed` event (`introduced` is `"0"`).
    pub fixed: String,
    /// The pool version the record affects, if any.
    pub affects: Option<String>,
    /// Unix time of publication.
    pub published: u64,
}

/// The OSV ecosystem of a source's synthetic tail packages.
fn ecosystem(source: Source) -> &'static str {
    match source {
        Source::Deb => "Ubuntu:22.04:LTS",
        Source::Rpm => "Rocky Linux:9",
        Source::Python => "PyPI",
        Source::Npm => "npm",
        _ => unreachable!("no OSV ecosystem for {source:?} in the fixture"),
    }
}

fn purl(source: Source, name: &str) -> String {
    match source {
        Source::Deb => format!("pkg:deb/ubuntu/{name}?arch=source&distro=jammy"),
        Source::Rpm => format!("pkg:rpm/rocky-linux/{name}?distro=rocky-linux-9"),
        Source::Python => format!("pkg:pypi/{}", name.to_ascii_lowercase()),
        Source::Npm => format!("pkg:npm/{}", name.replace('@', "%40")),
        _ => String::new(),
    }
}

/// The sources the padded records are about, in turn.
const PADDED_SOURCES: [Source; 4] = [Source::Deb, Source::Rpm, Source::Python, Source::Npm];

/// For each padded source: how many synthetic titles of it the pools use (the largest count
/// of any one pool, as the k-th title of a source is the same in every pool).
fn tail_counts(pools: &[Pool]) -> BTreeMap<Source, usize> {
    let mut counts = BTreeMap::new();
    for pool in pools {
        let mut per_pool: BTreeMap<Source, usize> = BTreeMap::new();
        for t in pool.tail() {
            *per_pool.entry(t.source).or_default() += 1;
        }
        for (s, n) in per_pool {
            let c = counts.entry(s).or_insert(0);
            *c = (*c).max(n);
        }
    }
    counts
}

/// A GitHub-advisory-shaped id for record `n`: distinct `n` (below 20^12) give distinct ids.
fn ghsa_id(n: u64) -> String {
    const ALPHABET: &[u8] = b"23456789cfghjmpqrvwx";
    const SPACE: u128 = 20u128.pow(12);
    // Multiplying by a number coprime to 20 permutes 0..20^12: distinct, scattered-looking.
    const MULTIPLIER: u128 = 3_141_592_653_589_793;
    let mut x = (u128::from(n) * MULTIPLIER % SPACE) as u64;
    let mut chars = [0u8; 12];
    for c in chars.iter_mut() {
        *c = ALPHABET[(x % 20) as usize];
        x /= 20;
    }
    let s = String::from_utf8(chars.to_vec()).expect("ascii");
    format!("GHSA-{}-{}-{}", &s[..4], &s[4..8], &s[8..])
}

/// The synthetic records, in order. Record `j` is about source `PADDED_SOURCES[j % 4]`.
pub fn padded_records(options: FixtureOptions) -> Vec<PaddedRecord> {
    let pools: Vec<Pool> = OsTemplate::ALL
        .iter()
        .map(|&t| Pool::build(t, options.pool_size))
        .collect();
    let used = tail_counts(&pools);
    // 2019-01-01T00:00:00Z.
    const START: u64 = 1_546_300_800;
    (0..options.records)
        .map(|j| {
            let source = PADDED_SOURCES[j % PADDED_SOURCES.len()];
            let h = fnv1a(&format!("padded-record:{j}"));
            let in_use = used.get(&source).copied().unwrap_or(0);
            let k = (h % (in_use.max(1) as u64 * 2)) as usize;
            let title = synthetic_title(source, k);
            let affecting = k < in_use && (h >> 32).is_multiple_of(10);
            let (fixed, affects) = if affecting {
                let fixed = title
                    .versions
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| after_all(source, &title.name));
                (fixed, Some(title.versions[0].clone()))
            } else {
                (below_all(source, &title.name), None)
            };
            let year = 2019 + (j % 6) as u64;
            let number = 40_000 + j / 6;
            let cve = format!("CVE-{year}-{number}");
            let id = match source {
                Source::Deb => format!("UBUNTU-{cve}"),
                Source::Rpm => format!("RLSA-{year}:{number}"),
                _ => ghsa_id(j as u64 + 1),
            };
            let published = START + (year - 2019) * 365 * 86_400 + (h >> 8) % (360 * 86_400);
            PaddedRecord {
                id,
                cve,
                source,
                name: title.name,
                fixed,
                affects,
                published,
            }
        })
        .collect()
}

const CVSS_VECTORS: [&str; 5] = [
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
];

const WEAKNESSES: [&str; 6] = [
    "a heap buffer overflow when parsing crafted input",
    "an out-of-bounds read in the decoder",
    "a use-after-free when a connection is closed early",
    "uncontrolled recursion on deeply nested documents",
    "an integer overflow in a length calculation",
    "improper certificate validation",
];

fn padded_json(r: &PaddedRecord) -> Value {
    let h = fnv1a(&r.id);
    let weakness = WEAKNESSES[(h % WEAKNESSES.len() as u64) as usize];
    let published = rfc3339(r.published);
    let modified = rfc3339(r.published + 86_400 * (1 + (h >> 16) % 90));
    let aliases: Vec<&str> = if r.id == r.cve { vec![] } else { vec![&r.cve] };
    json!({
        "schema_version": "1.6.0",
        "id": r.id,
        "modified": modified,
        "published": published,
        "aliases": aliases,
        "summary": format!("{}: {weakness}", r.name),
        "details": format!(
            "{} before {} has {weakness}, which a remote attacker may use to crash the \
             process or run code.",
            r.name, r.fixed
        ),
        "severity": [{"type": "CVSS_V3", "score": CVSS_VECTORS[((h >> 8) % 5) as usize]}],
        "affected": [{
            "package": {
                "ecosystem": ecosystem(r.source),
                "name": r.name,
                "purl": purl(r.source, &r.name),
            },
            "ranges": [{
                "type": "ECOSYSTEM",
                "events": [{"introduced": "0"}, {"fixed": r.fixed}],
            }],
        }],
        "references": [
            {"type": "ADVISORY", "url": format!("https://nvd.nist.gov/vuln/detail/{}", r.cve)},
        ],
    })
}

fn advisory_url(k: &KnownVulnerable) -> String {
    let id = k.id;
    if id.starts_with("USN-") {
        format!("https://ubuntu.com/security/notices/{id}")
    } else if id.starts_with("RLSA-") {
        format!("https://errata.rockylinux.org/{id}")
    } else if id.starts_with("GHSA-") {
        format!("https://github.com/advisories/{id}")
    } else {
        format!("https://nvd.nist.gov/vuln/detail/{id}")
    }
}

/// The record of a known-vulnerable package.
pub fn known_record(k: &KnownVulnerable) -> Value {
    // A notice (USN, RLSA) names its CVEs as upstream vulnerabilities, a GitHub advisory as an
    // alias, a CVE record names itself.
    let (aliases, upstream): (Vec<&str>, Vec<&str>) = if k.id == k.cve {
        (vec![], vec![])
    } else if k.id.starts_with("GHSA-") {
        (vec![k.cve], vec![])
    } else {
        (vec![], vec![k.cve])
    };
    let version_key = if k.source == Source::Rpm {
        "version-release"
    } else {
        "version"
    };
    json!({
        "schema_version": "1.6.0",
        "id": k.id,
        "modified": k.published,
        "published": k.published,
        "aliases": aliases,
        "upstream": upstream,
        "summary": k.summary,
        "details": format!(
            "{} ({}) is affected by {}. Versions before {} are vulnerable; the simulated \
             fleet carries {} ({version_key}) on some hosts.",
            k.name, k.ecosystem, k.cve, k.fixed_in, k.vulnerable
        ),
        "severity": [{"type": "CVSS_V3", "score": k.cvss}],
        "affected": [{
            "package": {
                "ecosystem": k.ecosystem,
                "name": k.name,
                "purl": purl(k.source, k.name),
            },
            "ranges": [{
                "type": "ECOSYSTEM",
                "events": [{"introduced": "0"}, {"fixed": k.fixed_in}],
            }],
        }],
        "references": [
            {"type": "ADVISORY", "url": advisory_url(k)},
            {"type": "REPORT", "url": format!("https://www.cve.org/CVERecord?id={}", k.cve)},
        ],
    })
}

/// A Debian 12 advisory: real-looking, but no simulated host runs Debian.
fn debian_record() -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": "DSA-5532-1",
        "modified": "2023-10-30T05:12:44Z",
        "published": "2023-10-24T00:00:00Z",
        "aliases": [],
        "upstream": ["CVE-2023-5363"],
        "summary": "openssl - security update",
        "details": "Incorrect cipher key and IV length processing in OpenSSL may result in \
                    loss of confidentiality for some symmetric cipher modes.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
        "affected": [{
            "package": {
                "ecosystem": "Debian:12",
                "name": "openssl",
                "purl": "pkg:deb/debian/openssl?arch=source",
            },
            "ranges": [{
                "type": "ECOSYSTEM",
                "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}],
            }],
        }],
        "references": [{"type": "ADVISORY", "url": "https://www.debian.org/security/2023/dsa-5532"}],
    })
}

/// A withdrawn advisory: it would affect PyYAML 5.4.1, which hosts carry, if a reader did not
/// skip withdrawn records.
pub const WITHDRAWN_ID: &str = "GHSA-q8r2-6h9c-x7wm";

fn withdrawn_record() -> Value {
    json!({
        "schema_version": "1.6.0",
        "id": WITHDRAWN_ID,
        "modified": "2024-03-02T09:00:00Z",
        "published": "2024-02-27T18:30:00Z",
        "withdrawn": "2024-03-02T09:00:00Z",
        "aliases": [],
        "summary": "Withdrawn: PyYAML arbitrary code execution in full_load",
        "details": "This advisory was withdrawn: it duplicated an older advisory and named \
                    versions that are not affected.",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": "PyPI", "name": "PyYAML", "purl": "pkg:pypi/pyyaml"},
            "ranges": [{
                "type": "ECOSYSTEM",
                "events": [{"introduced": "0"}, {"fixed": "6.0.1"}],
            }],
        }],
        "references": [{"type": "ADVISORY", "url": format!("https://github.com/advisories/{WITHDRAWN_ID}")}],
    })
}

/// KEV catalogue entries: (cve, vendorProject, product, vulnerabilityName, dateAdded).
fn kev_entry(cve: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    match cve {
        "CVE-2023-38545" => (
            "Haxx",
            "curl",
            "Haxx curl SOCKS5 Heap-Based Buffer Overflow Vulnerability",
            "2024-01-10",
        ),
        "CVE-2024-6387" => (
            "OpenBSD",
            "OpenSSH",
            "OpenSSH Signal Handler Race Condition Vulnerability",
            "2024-07-01",
        ),
        _ => (
            "Unknown",
            "Unknown",
            "Known Exploited Vulnerability",
            "2024-01-10",
        ),
    }
}

/// 21 days after `date` (`YYYY-MM-DD`), KEV's usual due date.
fn due_date(date: &str) -> String {
    let parse = |r: std::ops::Range<usize>| date[r].parse::<u64>().unwrap_or(1);
    let (y, m, d) = (parse(0..4), parse(5..7), parse(8..10));
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2 / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    rfc3339((days + 21) * 86_400)[..10].to_string()
}

fn kev_json(cves: &[&str]) -> Value {
    let vulnerabilities: Vec<Value> = cves
        .iter()
        .map(|&cve| {
            let (vendor, product, name, added) = kev_entry(cve);
            json!({
                "cveID": cve,
                "vendorProject": vendor,
                "product": product,
                "vulnerabilityName": name,
                "dateAdded": added,
                "shortDescription": format!("{product} contains a vulnerability ({cve}) that is known to be exploited."),
                "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product if mitigations are unavailable.",
                "dueDate": due_date(added),
                "knownRansomwareCampaignUse": "Unknown",
                "notes": "",
            })
        })
        .collect();
    json!({
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": FEED_DATE.replace('-', "."),
        "dateReleased": format!("{FEED_DATE}T15:00:00.000Z"),
        "count": vulnerabilities.len(),
        "vulnerabilities": vulnerabilities,
    })
}

/// EPSS (probability, percentile) of a CVE, derived from its name.
fn epss(cve: &str) -> (f64, f64) {
    let h = fnv1a(cve);
    // Most CVEs are unlikely to be exploited: square a uniform draw.
    let u = (h % 100_000) as f64 / 100_000.0;
    let p = (u * u * 0.97 + 0.0004).min(0.97);
    let percentile = (0.05 + u * 0.949).min(0.99999);
    (p, percentile)
}

fn write_json(path: &Path, value: &Value) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// The file name of a record: its id with `:` replaced (RLSA ids have one).
fn record_file_name(id: &str) -> String {
    format!("{}.json", id.replace(':', "-"))
}

/// Writes the fixture into `dir` (created if missing) and says what it wrote.
pub fn write_fixture(dir: &Path, options: FixtureOptions) -> io::Result<FixtureSummary> {
    let osv_dir = dir.join("osv");
    std::fs::create_dir_all(&osv_dir)?;
    let mut files = Vec::new();
    let mut cves: BTreeSet<String> = BTreeSet::new();

    let mut named: Vec<Value> = KNOWN_VULNERABLE.iter().map(known_record).collect();
    named.push(debian_record());
    named.push(withdrawn_record());
    for k in KNOWN_VULNERABLE {
        cves.insert(k.cve.to_string());
    }
    for record in &named {
        let id = record["id"].as_str().expect("records have ids");
        let path = osv_dir.join(record_file_name(id));
        write_json(&path, record)?;
        files.push(path);
    }

    let padded = padded_records(options);
    if !padded.is_empty() {
        let array = Value::Array(padded.iter().map(padded_json).collect());
        let path = dir.join("osv-padded.json.gz");
        let file = std::fs::File::create(&path)?;
        // No file name or time in the gzip header: the same records give the same bytes.
        let mut gz = flate2::GzBuilder::new().write(file, flate2::Compression::default());
        serde_json::to_writer(&mut gz, &array).map_err(io::Error::other)?;
        gz.finish()?.flush()?;
        files.push(path);
        cves.extend(padded.iter().map(|r| r.cve.clone()));
    }

    let kev: Vec<&str> = KNOWN_VULNERABLE
        .iter()
        .filter(|k| k.kev)
        .map(|k| k.cve)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let kev_path = dir.join("known_exploited_vulnerabilities.json");
    write_json(&kev_path, &kev_json(&kev))?;
    files.push(kev_path);

    let epss_path = dir.join(format!("epss_scores-{FEED_DATE}.csv"));
    let mut csv = format!("#model_version:v2023.03.01,score_date:{FEED_DATE}T00:00:00+0000\n");
    csv.push_str("cve,epss,percentile\n");
    for cve in &cves {
        let (p, pct) = epss(cve);
        csv.push_str(&format!("{cve},{p:.5},{pct:.5}\n"));
    }
    std::fs::write(&epss_path, csv)?;
    files.push(epss_path);

    let (pool_packages, vulnerable) = vulnerable_pool_packages(options.pool_size, &padded);
    Ok(FixtureSummary {
        files,
        records: named.len() + padded.len(),
        named_records: named.len(),
        padded_records: padded.len(),
        pool_packages,
        vulnerable_pool_packages: vulnerable,
        kev_cves: kev.len(),
        epss_rows: cves.len(),
    })
}

/// (distinct packages across the pools, how many of them a live record affects).
fn vulnerable_pool_packages(pool_size: usize, padded: &[PaddedRecord]) -> (usize, usize) {
    let mut all: BTreeSet<(Source, String, String)> = BTreeSet::new();
    for t in OsTemplate::ALL {
        for title in Pool::build(t, pool_size).titles {
            for v in title.versions {
                all.insert((title.source, title.name.clone(), v));
            }
        }
    }
    let mut vulnerable: BTreeSet<(Source, String, String)> = KNOWN_VULNERABLE
        .iter()
        .map(|k| (k.source, k.name.to_string(), k.vulnerable.to_string()))
        .collect();
    for r in padded {
        if let Some(v) = &r.affects {
            let key = (r.source, r.name.clone(), v.clone());
            if all.contains(&key) {
                vulnerable.insert(key);
            }
        }
    }
    (all.len(), vulnerable.len())
}
