//! What a Fleet server sees of the simulated hosts' software, and the fixture that matches it.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use serde_json::Value;

use super::fixture::{FixtureOptions, padded_records, write_fixture};
use super::pool::{KNOWN_VULNERABLE, Pool};
use super::*;
use crate::answer::{AnswerContext, QueryAnswerer};
use crate::intervals::Intervals;
use crate::template_answerer::{LiveQueryProfile, TemplateAnswerer};
use crate::write::WriteBody;

const LINUX_DISCOVERY: &str =
    "SELECT 1 FROM os_version WHERE platform NOT IN ('darwin', 'windows', 'chrome', 'freebsd')";
const MACOS_DISCOVERY: &str = "SELECT 1 FROM os_version WHERE platform = 'darwin'";
const WINDOWS_DISCOVERY: &str = "SELECT 1 FROM os_version WHERE platform = 'windows'";
const VSCODE_DISCOVERY: &str = "SELECT 1 FROM osquery_registry WHERE active = true AND \
     registry = 'table' AND name = 'vscode_extensions'";
/// Stands in for Fleet's long query: the answerer goes by the name, not the SQL.
const FLEET_SQL: &str = "WITH cached_users AS (WITH cached_groups AS (select * from groups) \
     SELECT uid, username FROM users) SELECT name AS name, version AS version FROM deb_packages \
     UNION SELECT name, version FROM python_packages";

fn host(t: OsTemplate, id: &str) -> HostProfile {
    HostProfile::new(t, id, "5.23.1")
}

fn answerer(t: OsTemplate, id: &str, options: SoftwareOptions) -> TemplateAnswerer {
    TemplateAnswerer::new(host(t, id), LiveQueryProfile::default())
        .with_software(Arc::new(Software::new(options)))
}

fn rows_of(a: &TemplateAnswerer, name: &str) -> Vec<Row> {
    let iv = Intervals::default();
    a.answer(name, FLEET_SQL, &AnswerContext::new(&iv))
        .result
        .expect("software query succeeds")
}

fn columns(rows: &[Row]) -> Vec<&str> {
    rows[0].keys().map(String::as_str).collect()
}

fn sources(rows: &[Row]) -> BTreeSet<&str> {
    rows.iter().map(|r| r["source"].as_str()).collect()
}

#[test]
fn an_ubuntu_host_reports_its_deb_python_and_npm_packages_the_same_every_round() {
    let a = answerer(OsTemplate::Ubuntu, "web-01", SoftwareOptions::default());
    let rows = rows_of(&a, SOFTWARE_QUERY_LINUX);
    assert_eq!(rows.len(), DEFAULT_PER_HOST_LINUX);
    let mut expected = vec![
        "arch",
        "browser",
        "extension_id",
        "installed_path",
        "name",
        "release",
        "source",
        "vendor",
        "version",
    ];
    expected.sort();
    assert_eq!(columns(&rows), expected);
    assert_eq!(
        sources(&rows),
        BTreeSet::from(["deb_packages", "npm_packages", "python_packages"])
    );
    let find = |name: &str| rows.iter().find(|r| r["name"] == name);
    let openssl = find("openssl").expect("every Ubuntu host has openssl");
    assert_eq!(openssl["source"], "deb_packages");
    assert_eq!(openssl["arch"], "amd64");
    assert!(
        ["3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.15"].contains(&openssl["version"].as_str()),
        "{openssl:?}"
    );
    assert_eq!(
        find("libssl3").unwrap()["version"],
        openssl["version"],
        "openssl and libssl3 are upgraded together"
    );
    assert!(find("curl").is_some() && find("Jinja2").is_some() && find("requests").is_some());
    for r in &rows {
        match r["source"].as_str() {
            "deb_packages" => {
                assert!(["amd64", "all"].contains(&r["arch"].as_str()), "{r:?}");
                assert!(!r["version"].is_empty(), "{r:?}");
            }
            "python_packages" => {
                assert_eq!(r["installed_path"], "/usr/lib/python3/dist-packages")
            }
            "npm_packages" => assert!(r["installed_path"].starts_with("/usr/lib/node_modules/")),
            other => panic!("unexpected source {other}"),
        }
        assert!(r.values().all(|v| !v.contains('\n')));
    }
    // Most hosts have the catalog's real packages; each name appears once per source.
    let names: HashSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r["source"].as_str(), r["name"].as_str()))
        .collect();
    assert_eq!(names.len(), rows.len());
    assert!(find("bash").is_some() || find("coreutils").is_some());

    assert_eq!(
        rows_of(&a, SOFTWARE_QUERY_LINUX),
        rows,
        "same list next round"
    );
    let same_host = answerer(OsTemplate::Ubuntu, "web-01", SoftwareOptions::default());
    assert_eq!(rows_of(&same_host, SOFTWARE_QUERY_LINUX), rows);
    let other_host = answerer(OsTemplate::Ubuntu, "web-02", SoftwareOptions::default());
    assert_ne!(rows_of(&other_host, SOFTWARE_QUERY_LINUX), rows);
}

#[test]
fn rocky_macos_and_windows_hosts_report_their_own_sources() {
    let rocky = rows_of(
        &answerer(OsTemplate::Rocky, "db-01", SoftwareOptions::default()),
        SOFTWARE_QUERY_LINUX,
    );
    assert_eq!(
        sources(&rocky),
        BTreeSet::from(["npm_packages", "python_packages", "rpm_packages"])
    );
    let openssl = rocky
        .iter()
        .find(|r| r["name"] == "openssl" && r["source"] == "rpm_packages")
        .unwrap();
    assert_eq!(openssl["version"], "3.0.7");
    assert!(["24.el9", "27.el9"].contains(&openssl["release"].as_str()));
    for r in rocky.iter().filter(|r| r["source"] == "rpm_packages") {
        assert_eq!(r["vendor"], "Rocky Enterprise Software Foundation");
        assert!(["x86_64", "noarch"].contains(&r["arch"].as_str()), "{r:?}");
        // Rocky's own builds say `.el9`; third-party ones (osquery's `1.linux`) do not.
        assert!(
            r["release"].contains(".el9") || r["name"] == "osquery",
            "{r:?}"
        );
        assert!(
            !r["version"].contains(':'),
            "no epoch in the version: {r:?}"
        );
    }

    // Chrome is among the real titles most hosts have; look over a few hosts.
    let mac_rows: Vec<Row> = (0..10)
        .flat_map(|i| {
            rows_of(
                &answerer(
                    OsTemplate::MacOs,
                    &format!("mac-{i}"),
                    SoftwareOptions::default(),
                ),
                SOFTWARE_QUERY_MACOS,
            )
        })
        .collect();
    assert_eq!(
        sources(&mac_rows),
        BTreeSet::from([
            "apps",
            "homebrew_packages",
            "npm_packages",
            "python_packages"
        ])
    );
    assert!(columns(&mac_rows).contains(&"bundle_identifier"));
    assert!(columns(&mac_rows).contains(&"last_opened_at"));
    let chrome = mac_rows
        .iter()
        .find(|r| r["name"] == "Google Chrome.app")
        .expect("some Mac has Chrome");
    assert_eq!(chrome["bundle_identifier"], "com.google.Chrome");
    assert_eq!(chrome["installed_path"], "/Applications/Google Chrome.app");
    assert!(chrome["last_opened_at"].parse::<f64>().unwrap() > 1.0e9);
    let brew = mac_rows
        .iter()
        .find(|r| r["source"] == "homebrew_packages")
        .unwrap();
    assert!(brew["installed_path"].starts_with("/opt/homebrew/Cellar/"));

    let win_rows: Vec<Row> = (0..10)
        .flat_map(|i| {
            rows_of(
                &answerer(
                    OsTemplate::Windows,
                    &format!("win-{i}"),
                    SoftwareOptions::default(),
                ),
                SOFTWARE_QUERY_WINDOWS,
            )
        })
        .collect();
    let mut expected = vec![
        "browser",
        "extension_id",
        "installed_path",
        "name",
        "source",
        "vendor",
        "version",
    ];
    expected.sort();
    assert_eq!(columns(&win_rows), expected);
    assert_eq!(
        sources(&win_rows),
        BTreeSet::from(["chocolatey_packages", "programs", "python_packages"])
    );
    let chrome = win_rows
        .iter()
        .find(|r| r["name"] == "Google Chrome")
        .unwrap();
    assert_eq!(chrome["vendor"], "Google LLC");
    assert_eq!(chrome["source"], "programs");
}

#[test]
fn software_per_host_sets_the_number_of_packages() {
    let options = SoftwareOptions {
        per_host: Some(37),
        ..SoftwareOptions::default()
    };
    for (t, q) in [
        (OsTemplate::Ubuntu, SOFTWARE_QUERY_LINUX),
        (OsTemplate::MacOs, SOFTWARE_QUERY_MACOS),
    ] {
        assert_eq!(rows_of(&answerer(t, "h", options), q).len(), 37);
    }
    let defaults = SoftwareOptions::default();
    assert_eq!(
        rows_of(
            &answerer(OsTemplate::Windows, "h", defaults),
            SOFTWARE_QUERY_WINDOWS
        )
        .len(),
        DEFAULT_PER_HOST_DESKTOP
    );
}

#[test]
fn fleets_discovery_queries_pick_the_platform_query() {
    let iv = Intervals::default();
    let ctx = AnswerContext::new(&iv);
    let expect = [
        (OsTemplate::Ubuntu, [1, 0, 0]),
        (OsTemplate::Rocky, [1, 0, 0]),
        (OsTemplate::MacOs, [0, 1, 0]),
        (OsTemplate::Windows, [0, 0, 1]),
    ];
    for (t, counts) in expect {
        let a = answerer(t, "h", SoftwareOptions::default());
        let got: Vec<usize> = [LINUX_DISCOVERY, MACOS_DISCOVERY, WINDOWS_DISCOVERY]
            .iter()
            .map(|d| a.discover(d, &ctx).unwrap())
            .collect();
        assert_eq!(got, counts, "{t}");
    }
}

#[test]
fn the_vscode_query_runs_only_where_osquery_has_the_table() {
    let iv = Intervals::default();
    let ctx = AnswerContext::new(&iv);
    for t in [OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows] {
        let a = answerer(t, "dev-1", SoftwareOptions::default());
        assert_eq!(a.discover(VSCODE_DISCOVERY, &ctx), Ok(1), "{t}");
        let rows = rows_of(&a, SOFTWARE_QUERY_VSCODE);
        assert!((3..=8).contains(&rows.len()), "{t}: {}", rows.len());
        for r in &rows {
            assert_eq!(r["source"], "vscode_extensions");
            assert!(!r["vendor"].is_empty());
            assert!(uuid::Uuid::parse_str(&r["extension_id"]).is_ok(), "{r:?}");
            assert!(r["installed_path"].contains(".vscode"), "{r:?}");
        }
        // osquery's own table agrees with the software rows.
        let table = a
            .answer("q", "SELECT name, uuid FROM vscode_extensions", &ctx)
            .result
            .unwrap();
        assert_eq!(table.len(), rows.len());
    }
    let rocky = answerer(OsTemplate::Rocky, "db-1", SoftwareOptions::default());
    assert_eq!(rocky.discover(VSCODE_DISCOVERY, &ctx), Ok(0));
    assert!(rows_of(&rocky, SOFTWARE_QUERY_VSCODE).is_empty());
    // osquery before 5.11 has no vscode_extensions table.
    let old = TemplateAnswerer::new(
        HostProfile::new(OsTemplate::MacOs, "old", "5.10.2"),
        LiveQueryProfile::default(),
    );
    assert_eq!(old.discover(VSCODE_DISCOVERY, &ctx), Ok(0));
}

#[test]
fn software_fail_prob_one_makes_the_software_query_fail_with_status_1() {
    let failing = SoftwareOptions {
        fail_prob: 1.0,
        ..SoftwareOptions::default()
    };
    let iv = Intervals::default();
    let ctx = AnswerContext::new(&iv);
    let a = answerer(OsTemplate::Ubuntu, "h", failing);
    let answer = a.answer(SOFTWARE_QUERY_LINUX, FLEET_SQL, &ctx);
    assert_eq!(answer.result, Err(SOFTWARE_QUERY_ERROR.to_string()));
    let mut body = WriteBody::default();
    body.insert(SOFTWARE_QUERY_LINUX, answer);
    assert_eq!(body.statuses[SOFTWARE_QUERY_LINUX], 1);
    assert_eq!(body.messages[SOFTWARE_QUERY_LINUX], SOFTWARE_QUERY_ERROR);
    // Other detail queries still work, and so does the VS Code query.
    assert!(
        a.answer("d", "SELECT * FROM os_version", &ctx)
            .result
            .is_ok()
    );
    assert!(
        a.answer(SOFTWARE_QUERY_VSCODE, FLEET_SQL, &ctx)
            .result
            .is_ok()
    );
    let never = answerer(OsTemplate::Ubuntu, "h", SoftwareOptions::default());
    assert!((0..20).all(|_| {
        never
            .answer(SOFTWARE_QUERY_LINUX, FLEET_SQL, &ctx)
            .result
            .is_ok()
    }));
}

#[test]
fn two_thousand_hosts_with_the_defaults_have_thousands_of_distinct_packages() {
    let software = Software::new(SoftwareOptions::default());
    let os = [OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows];
    let mut distinct: HashSet<(Source, &str, &str)> = HashSet::new();
    for i in 0..2_000 {
        let profile = host(os[i % os.len()], &host_identifier(7, i));
        // Packages borrow from the pools, which live as long as `software`.
        for p in software.host_packages(&profile) {
            distinct.insert((p.title.source, p.title.name.as_str(), p.version));
        }
    }
    assert!(distinct.len() > 5_000, "{}", distinct.len());
}

#[test]
fn vulnerable_hosts_says_which_hosts_carry_which_vulnerable_version() {
    let software = Software::new(SoftwareOptions::default());
    let seed = 99;
    let mut vulnerable_jinja = 0;
    let hosts = 1_000;
    for i in 0..hosts {
        let t = OsTemplate::ALL[i % 4];
        let predicted = vulnerable_hosts(t, i, seed);
        let profile = host(t, &host_identifier(seed, i));
        let installed: HashSet<(String, String)> = software
            .host_packages(&profile)
            .iter()
            .map(|p| (p.title.name.clone(), p.version.to_string()))
            .collect();
        for k in KNOWN_VULNERABLE.iter().filter(|k| k.templates.contains(&t)) {
            let vulnerable = (k.name.to_string(), k.vulnerable.to_string());
            let fixed = (k.name.to_string(), k.fixed.to_string());
            if predicted.contains(&vulnerable) {
                assert!(installed.contains(&vulnerable), "host {i}: {vulnerable:?}");
                assert!(!installed.contains(&fixed));
            } else {
                assert!(installed.contains(&fixed), "host {i}: {fixed:?}");
            }
        }
        if predicted.iter().any(|(n, _)| n == "Jinja2") {
            vulnerable_jinja += 1;
        }
    }
    // About 30 % of the hosts (Jinja2 is on every OS).
    assert!(
        (200..400).contains(&vulnerable_jinja),
        "{vulnerable_jinja} of {hosts}"
    );
    // The prediction does not depend on the pool or the package count.
    let small = Software::new(SoftwareOptions {
        per_host: Some(20),
        pool_size: 50,
        fail_prob: 0.0,
    });
    let profile = host(OsTemplate::Ubuntu, &host_identifier(seed, 0));
    let pinned: Vec<(String, String)> = small
        .host_packages(&profile)
        .iter()
        .filter(|p| p.title.pinned.is_some())
        .filter(|p| p.version == p.title.versions[0])
        .map(|p| (p.title.name.clone(), p.version.to_string()))
        .collect();
    assert_eq!(pinned, vulnerable_hosts(OsTemplate::Ubuntu, 0, seed));
}

/// A simplified dpkg/rpm ordering, enough for the versions this module constructs (no `~` in
/// pool versions, equal epochs): digit runs compare as numbers, other runs as text, and a
/// version that is a prefix of another is the smaller.
fn version_cmp(a: &str, b: &str) -> Ordering {
    fn runs(v: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let bytes = v.as_bytes();
        let mut start = 0;
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &v[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => x.parse::<u64>().unwrap().cmp(&y.parse::<u64>().unwrap()),
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

#[test]
fn the_comparison_used_below_orders_ecosystem_versions() {
    assert_eq!(
        version_cmp("3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.12"),
        Ordering::Less
    );
    assert_eq!(
        version_cmp("1:8.9p1-3ubuntu0.6", "1:8.9p1-3ubuntu0.10"),
        Ordering::Less
    );
    assert_eq!(
        version_cmp("3.0.7-27.el9", "3.0.7-25.el9_3"),
        Ordering::Greater
    );
    assert_eq!(
        version_cmp("7.76.1-26.el9", "7.76.1-26.el9_3.2"),
        Ordering::Less
    );
    assert_eq!(version_cmp("1.26.5", "1.26.17"), Ordering::Less);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-osv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| {
        panic!("{}: {e}", path.display());
    })
}

fn check_osv_record(r: &Value) {
    let id = r["id"].as_str().expect("id");
    for field in [
        "modified",
        "published",
        "summary",
        "details",
        "schema_version",
    ] {
        assert!(
            r[field].as_str().is_some_and(|s| !s.is_empty()),
            "{id}: {field}"
        );
    }
    for field in ["modified", "published"] {
        let t = r[field].as_str().unwrap();
        assert!(
            t.len() == 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z'),
            "{id}: {field} {t}"
        );
    }
    assert!(r["aliases"].is_array(), "{id}");
    let severity = &r["severity"][0];
    assert_eq!(severity["type"], "CVSS_V3", "{id}");
    assert!(
        severity["score"]
            .as_str()
            .unwrap()
            .starts_with("CVSS:3.1/AV:")
    );
    let affected = r["affected"].as_array().expect("affected");
    assert!(!affected.is_empty(), "{id}");
    for a in affected {
        let eco = a["package"]["ecosystem"].as_str().unwrap();
        assert!(
            [
                "Ubuntu:22.04:LTS",
                "Debian:12",
                "Rocky Linux:9",
                "PyPI",
                "npm"
            ]
            .contains(&eco),
            "{id}: {eco}"
        );
        assert!(a["package"]["name"].as_str().is_some_and(|n| !n.is_empty()));
        let range = &a["ranges"][0];
        assert_eq!(range["type"], "ECOSYSTEM", "{id}");
        assert_eq!(range["events"][0]["introduced"], "0", "{id}");
        assert!(range["events"][1]["fixed"].as_str().is_some(), "{id}");
    }
    let cve_named = id.starts_with("CVE-")
        || r["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .chain(r["upstream"].as_array().into_iter().flatten())
            .any(|a| a.as_str().unwrap().starts_with("CVE-"));
    assert!(
        cve_named || r.get("withdrawn").is_some(),
        "{id} names a CVE"
    );
}

#[test]
fn the_osv_fixture_parses_and_its_ranges_split_vulnerable_from_fixed() {
    let dir = temp_dir("check");
    let options = FixtureOptions {
        pool_size: 2_000,
        records: 400,
    };
    let summary = write_fixture(&dir, options).unwrap();
    assert_eq!(summary.padded_records, 400);
    assert_eq!(summary.records, summary.named_records + 400);

    let mut ids = HashSet::new();
    let mut withdrawn = 0;
    let mut record_cves = HashSet::new();
    for entry in std::fs::read_dir(dir.join("osv")).unwrap() {
        let r = read_json(&entry.unwrap().path());
        check_osv_record(&r);
        assert!(ids.insert(r["id"].as_str().unwrap().to_string()));
        withdrawn += usize::from(r.get("withdrawn").is_some());
        for a in r["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .chain(r["upstream"].as_array().into_iter().flatten())
        {
            record_cves.insert(a.as_str().unwrap().to_string());
        }
        record_cves.insert(r["id"].as_str().unwrap().to_string());
    }
    assert_eq!(withdrawn, 1);
    assert_eq!(ids.len(), summary.named_records);
    for k in KNOWN_VULNERABLE {
        assert!(ids.contains(k.id), "{} has a record", k.id);
        // By construction: vulnerable < first fixed ≤ the fixed version hosts carry.
        assert_eq!(
            version_cmp(k.vulnerable, k.fixed_in),
            Ordering::Less,
            "{}",
            k.id
        );
        assert_ne!(version_cmp(k.fixed, k.fixed_in), Ordering::Less, "{}", k.id);
    }
    let usn = read_json(&dir.join("osv/USN-6450-1.json"));
    assert_eq!(
        usn["affected"][0]["package"]["ecosystem"],
        "Ubuntu:22.04:LTS"
    );
    assert_eq!(
        usn["affected"][0]["ranges"][0]["events"][1]["fixed"],
        "3.0.2-0ubuntu1.12"
    );
    let rocky = read_json(&dir.join("osv/RLSA-2024-0310.json"));
    assert_eq!(rocky["id"], "RLSA-2024:0310");
    let ghsa = read_json(&dir.join("osv/GHSA-h5c8-rqwp-cp95.json"));
    assert_eq!(ghsa["aliases"][0], "CVE-2024-22195");

    // The padded array.
    let gz = std::fs::read(dir.join("osv-padded.json.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    let padded: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(padded.len(), 400);
    for r in &padded {
        check_osv_record(r);
        assert!(
            ids.insert(r["id"].as_str().unwrap().to_string()),
            "unique ids"
        );
    }
    // Ranges by construction: an affecting record's fixed version lies above exactly the
    // pool's oldest version of the title; the others lie below every pool version.
    let pools: Vec<Pool> = OsTemplate::ALL
        .iter()
        .map(|&t| Pool::build(t, options.pool_size))
        .collect();
    let pool_versions = |source: Source, name: &str| -> Vec<String> {
        pools
            .iter()
            .flat_map(|p| &p.titles)
            .filter(|t| t.source == source && t.name == name)
            .flat_map(|t| t.versions.clone())
            .collect()
    };
    let records = padded_records(options);
    let affecting = records.iter().filter(|r| r.affects.is_some()).count();
    assert!(
        affecting > 0 && affecting < records.len() / 4,
        "{affecting}"
    );
    for r in &records {
        for v in pool_versions(r.source, &r.name) {
            let inside = version_cmp(&v, &r.fixed) == Ordering::Less;
            assert_eq!(
                inside,
                r.affects.as_deref() == Some(v.as_str()),
                "{r:?} {v}"
            );
        }
    }

    let kev = read_json(&dir.join("known_exploited_vulnerabilities.json"));
    let listed = kev["vulnerabilities"].as_array().unwrap();
    assert_eq!(kev["count"].as_u64().unwrap() as usize, listed.len());
    assert!(!listed.is_empty());
    for v in listed {
        assert!(record_cves.contains(v["cveID"].as_str().unwrap()), "{v}");
        assert_eq!(v["knownRansomwareCampaignUse"], "Unknown");
        assert!(v["dateAdded"].as_str().unwrap().len() == 10);
    }
    let epss = std::fs::read_to_string(dir.join("epss_scores-2024-07-10.csv")).unwrap();
    let mut lines = epss.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("#model_version:v2023.03.01,score_date:")
    );
    assert_eq!(lines.next(), Some("cve,epss,percentile"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), summary.epss_rows);
    for row in rows {
        let f: Vec<&str> = row.split(',').collect();
        assert!(f[0].starts_with("CVE-"));
        let p: f64 = f[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&p));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_same_arguments_write_the_same_files() {
    let options = FixtureOptions {
        pool_size: 1_000,
        records: 50,
    };
    let (a, b) = (temp_dir("same-a"), temp_dir("same-b"));
    let sa = write_fixture(&a, options).unwrap();
    let sb = write_fixture(&b, options).unwrap();
    assert_eq!(sa.files.len(), sb.files.len());
    for (fa, fb) in sa.files.iter().zip(&sb.files) {
        assert_eq!(fa.file_name(), fb.file_name());
        assert_eq!(
            std::fs::read(fa).unwrap(),
            std::fs::read(fb).unwrap(),
            "{fa:?}"
        );
    }
    assert_eq!(sa.vulnerable_pool_packages, sb.vulnerable_pool_packages);
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}
