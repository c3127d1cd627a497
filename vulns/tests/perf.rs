//! How long loading and matching take at fleet scale: 50,000 synthetic OSV
//! records and 30,000 distinct packages. It prints timings and asserts only
//! that matching found what it should, not how fast it was.
//!
//! Run with `cargo test -p flotilla-vulns --release --test perf -- --ignored --nocapture`.

use std::time::Instant;

use flotilla_vulns::{Ecosystem, Feed, Package};

const RECORDS: usize = 50_000;
const PACKAGES: usize = 30_000;

/// Ecosystem string in OSV, the matching ecosystem, and a version maker
/// (`i` picks the package, `k` the step) in that ecosystem's style.
type VersionMaker = fn(usize, usize) -> String;

fn ecosystems() -> Vec<(&'static str, Ecosystem, VersionMaker)> {
    vec![
        (
            "Debian:12",
            Ecosystem::Debian {
                release: "12".into(),
            },
            |i, k| format!("{}.{}.{}-{}~deb12u{}", i % 7, i % 13, k, k + 1, k),
        ),
        (
            "Ubuntu:22.04:LTS",
            Ecosystem::Ubuntu {
                release: "22.04".into(),
            },
            |i, k| format!("{}.{}-0ubuntu1.{}", i % 5, k, k + 2),
        ),
        ("Rocky Linux:9", Ecosystem::Rocky { major: 9 }, |i, k| {
            format!(
                "{}:{}.{}.{}-{}.el9_{}",
                i % 2,
                i % 9,
                k,
                i % 4,
                k + 10,
                k % 4
            )
        }),
        ("PyPI", Ecosystem::PyPI, |i, k| {
            format!("{}.{}.{}", i % 4, k, i % 10)
        }),
        ("npm", Ecosystem::Npm, |i, k| {
            format!("{}.{}.{}", i % 6, k, i % 3)
        }),
    ]
}

#[test]
#[ignore = "timing run; prints numbers, use --ignored --nocapture"]
fn fifty_thousand_records_thirty_thousand_packages() {
    let ecos = ecosystems();
    let dir = tempfile::tempdir().unwrap();

    // 50,000 records over 20,000 package names (so some names have several
    // records), written as arrays of 5,000.
    let names = 20_000;
    let t = Instant::now();
    let mut batch = Vec::new();
    for r in 0..RECORDS {
        let i = r % names;
        let (osv_eco, _, ver) = &ecos[i % ecos.len()];
        let k = r / names + 1;
        let rec = serde_json::json!({
            "id": format!("OSV-2024-{r}"),
            "aliases": [format!("CVE-2024-{}", 10_000 + r)],
            "published": "2024-01-01T00:00:00Z",
            "summary": format!("synthetic advisory {r}"),
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
            "affected": [{
                "package": {"ecosystem": osv_eco, "name": format!("pkg-{i}")},
                "ranges": [{"type": "ECOSYSTEM", "events": [
                    {"introduced": "0"}, {"fixed": ver(i, k)},
                    {"introduced": ver(i, k + 3)}, {"fixed": ver(i, k + 4)}
                ]}],
                "versions": [ver(i, k + 3)]
            }]
        });
        batch.push(rec);
        if batch.len() == 5_000 {
            let path = dir.path().join(format!("batch-{r}.json"));
            std::fs::write(path, serde_json::to_vec(&batch).unwrap()).unwrap();
            batch.clear();
        }
    }
    println!("wrote {RECORDS} records in {:?}", t.elapsed());

    let t = Instant::now();
    let (feed, report) = Feed::load_dir(dir.path());
    let load = t.elapsed();
    assert_eq!(report.records, RECORDS);
    assert_eq!(report.errors().count(), 0);
    println!(
        "loaded {} records ({} CVEs) in {load:?}",
        report.records,
        feed.cve_count()
    );

    // 30,000 distinct packages: the 20,000 names the feed knows at an old
    // version (affected), plus 10,000 names it has never heard of.
    let pkgs: Vec<(Ecosystem, String, String)> = (0..PACKAGES)
        .map(|p| {
            let i = p % names;
            let (_, eco, ver) = &ecos[i % ecos.len()];
            let name = if p < names {
                format!("pkg-{i}")
            } else {
                format!("unknown-{p}")
            };
            (eco.clone(), name, ver(i, 0))
        })
        .collect();
    let t = Instant::now();
    let mut found = 0usize;
    for (eco, name, version) in &pkgs {
        found += feed
            .matches(&Package {
                ecosystem: eco,
                name,
                version,
            })
            .len();
    }
    let matching = t.elapsed();
    println!(
        "matched {PACKAGES} packages in {matching:?} ({:?} per 1,000), {found} matches",
        matching / (PACKAGES as u32 / 1_000)
    );
    // Every known name has at least one record, and version k=0 is below
    // every record's first fix.
    assert!(found >= names, "{found}");
}
