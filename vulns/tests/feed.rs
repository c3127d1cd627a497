//! Loading the fixture directory and matching packages against it, as the
//! server would.

use std::io::Write;
use std::path::{Path, PathBuf};

use flotilla_vulns::{Ecosystem, Feed, LoadReport, Match, Package, fingerprint, host_version};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feed")
}

fn load_fixture() -> (Feed, LoadReport) {
    Feed::load_dir(&fixture())
}

fn deb(r: &str) -> Ecosystem {
    Ecosystem::Debian { release: r.into() }
}
fn ubuntu(r: &str) -> Ecosystem {
    Ecosystem::Ubuntu { release: r.into() }
}

fn matches(feed: &Feed, eco: &Ecosystem, name: &str, version: &str) -> Vec<Match> {
    feed.matches(&Package {
        ecosystem: eco,
        name,
        version,
    })
}

/// The CVEs with their fix, for compact assertions.
fn cves(feed: &Feed, eco: &Ecosystem, name: &str, version: &str) -> Vec<(String, Option<String>)> {
    matches(feed, eco, name, version)
        .into_iter()
        .map(|m| (m.cve, m.resolved_in_version))
        .collect()
}

fn cve(id: &str, fix: Option<&str>) -> (String, Option<String>) {
    (id.to_string(), fix.map(str::to_string))
}

#[test]
fn fixture_loads_with_a_report() {
    let (feed, report) = load_fixture();
    assert_eq!(report.records, 15, "{report:#?}");
    assert_eq!(report.withdrawn, 1);
    assert_eq!(report.kev, 1);
    assert_eq!(report.epss, 4);
    assert_eq!(
        report.unknown_ecosystems.get("Maven"),
        Some(&1),
        "{report:#?}"
    );
    assert_eq!(
        report
            .unknown_ecosystems
            .get("Ubuntu:Pro:FIPS-updates:22.04:LTS"),
        Some(&1)
    );
    assert_eq!(report.unknown_ecosystems.len(), 2, "{report:#?}");
    assert_eq!(feed.cve_count(), 10);

    // The malformed file is named with its error; everything else loaded.
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].name, "other/broken.json");
    assert!(
        errors[0].error.as_deref().unwrap().contains("EOF"),
        "{errors:?}"
    );
    let kev = report
        .files
        .iter()
        .find(|f| f.name == "known_exploited_vulnerabilities.json")
        .unwrap();
    assert_eq!((kev.records, kev.error.as_deref()), (1, None));
    assert!(
        report
            .files
            .iter()
            .any(|f| f.name == "pypi/pypi-advisories.json" && f.records == 6)
    );
}

#[test]
fn debian_and_ubuntu_packages() {
    let (feed, _) = load_fixture();
    let d12 = deb("12");
    assert_eq!(
        cves(&feed, &d12, "curl", "7.88.1-10+deb12u3"),
        [cve("CVE-2023-38545", Some("7.88.1-10+deb12u4"))]
    );
    assert!(cves(&feed, &d12, "curl", "7.88.1-10+deb12u4").is_empty());
    assert!(cves(&feed, &d12, "curl", "7.88.1-10+deb12u5").is_empty());
    // The same record's Debian 11 entry is a different ecosystem.
    assert_eq!(
        cves(&feed, &deb("11"), "curl", "7.74.0-1.3+deb11u9"),
        [cve("CVE-2023-38545", Some("7.74.0-1.3+deb11u10"))]
    );
    // `~` sorts before the end: the bookworm point release is older than the fix.
    assert_eq!(
        cves(&feed, &d12, "openssl", "3.0.11-1~deb12u2"),
        [cve("CVE-2023-5678", Some("3.0.13-1~deb12u1"))]
    );
    assert!(cves(&feed, &d12, "openssl", "3.0.13-1~deb12u1").is_empty());
    assert!(cves(&feed, &deb("13"), "openssl", "3.0.11-1").is_empty());

    let u22 = ubuntu("22.04");
    let m = matches(&feed, &u22, "curl", "7.81.0-1ubuntu1.13");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].cve, "CVE-2023-38545", "first upstream CVE of the USN");
    assert_eq!(m[0].osv_id, "USN-6429-1");
    assert_eq!(
        m[0].resolved_in_version.as_deref(),
        Some("7.81.0-1ubuntu1.14")
    );
    assert!(cves(&feed, &u22, "curl", "7.81.0-1ubuntu1.14").is_empty());
    // Ubuntu records list their binary packages; those names match too.
    assert_eq!(
        cves(&feed, &u22, "libcurl4", "7.81.0-1ubuntu1.13"),
        [cve("CVE-2023-38545", Some("7.81.0-1ubuntu1.14"))]
    );
    assert!(cves(&feed, &u22, "libcurl4", "7.81.0-1ubuntu1.14").is_empty());
    assert_eq!(
        cves(&feed, &u22, "openssl", "3.0.2-0ubuntu1.12"),
        [cve("CVE-2023-5678", Some("3.0.2-0ubuntu1.14"))]
    );
    // Ubuntu Pro (ESM) records apply to the same release.
    assert_eq!(
        cves(&feed, &u22, "node-minimist", "1.2.5+~cs5.3.2-1"),
        [cve(
            "CVE-2021-44906",
            Some("1.2.5+~cs5.3.2-1ubuntu0.1~esm1")
        )]
    );
    // An interim release's records are its own.
    assert_eq!(
        cves(&feed, &ubuntu("23.04"), "curl", "7.88.1-8ubuntu2.2").len(),
        1
    );
    assert!(cves(&feed, &ubuntu("24.04"), "curl", "7.81.0-1").is_empty());
}

#[test]
fn rocky_packages_with_epochs() {
    let (feed, _) = load_fixture();
    let rocky = Ecosystem::Rocky { major: 9 };
    let v = host_version(&rocky, "3.0.7", "24.el9", Some("1"));
    assert_eq!(
        cves(&feed, &rocky, "openssl", &v),
        [cve("CVE-2023-5678", Some("1:3.0.7-25.el9_3"))]
    );
    let v = host_version(&rocky, "3.0.7", "25.el9_3", Some("1"));
    assert!(cves(&feed, &rocky, "openssl", &v).is_empty());
    assert_eq!(
        cves(&feed, &rocky, "openssl-libs", "1:3.0.7-24.el9").len(),
        1
    );
    // `0:` in the record and no epoch on the host are the same.
    let v = host_version(&rocky, "7.76.1", "26.el9_3.2", None);
    assert!(cves(&feed, &rocky, "curl", &v).is_empty());
    assert_eq!(
        cves(&feed, &rocky, "libcurl", "7.76.1-26.el9"),
        [cve("CVE-2023-38546", Some("0:7.76.1-26.el9_3.2"))]
    );
    // Not Alma, not RHEL 8.
    assert!(
        cves(
            &feed,
            &Ecosystem::Alma { major: 9 },
            "curl",
            "7.76.1-26.el9"
        )
        .is_empty()
    );
    assert!(
        cves(
            &feed,
            &Ecosystem::Rocky { major: 8 },
            "curl",
            "7.61.1-1.el8"
        )
        .is_empty()
    );
}

#[test]
fn pypi_ranges_aliases_and_names() {
    let (feed, _) = load_fixture();
    let py = Ecosystem::PyPI;
    // The GHSA record is shown as its CVE; PyPA's copy of it (same CVE, by
    // explicit version list) does not make a second match.
    let m = matches(&feed, &py, "Jinja2", "3.1.2");
    assert_eq!(
        m,
        [
            Match {
                cve: "CVE-2024-22195".into(),
                osv_id: "GHSA-h5c8-rqwp-cp95".into(),
                resolved_in_version: Some("3.1.3".into()),
            },
            Match {
                cve: "CVE-2024-34064".into(),
                osv_id: "GHSA-h75v-3vvj-5mfj".into(),
                resolved_in_version: Some("3.1.4".into()),
            },
        ]
    );
    assert_eq!(matches(&feed, &py, "jinja2", "3.1.2"), m, "PEP 503 names");
    assert_eq!(
        cves(&feed, &py, "Jinja2", "3.1.3"),
        [cve("CVE-2024-34064", Some("3.1.4"))]
    );
    assert!(cves(&feed, &py, "Jinja2", "3.1.4").is_empty());
    // A pre-release of the fix is still before the fix.
    assert_eq!(cves(&feed, &py, "jinja2", "3.1.4rc1").len(), 1);

    // introduced is inclusive, fixed exclusive.
    assert!(cves(&feed, &py, "requests", "2.2.1").is_empty());
    assert_eq!(
        cves(&feed, &py, "requests", "2.3.0"),
        [cve("CVE-2023-32681", Some("2.31.0"))]
    );
    assert_eq!(cves(&feed, &py, "requests", "2.30.0").len(), 1);
    // The withdrawn record (introduced 0, no fix) would match this.
    assert!(cves(&feed, &py, "requests", "2.31.0").is_empty());
    assert!(cves(&feed, &py, "Requests", "2.32.3").is_empty());

    // Two introduced/fixed pairs in one range, listed out of order.
    let u = |v| cves(&feed, &py, "urllib3", v);
    assert_eq!(u("1.25.0"), [cve("CVE-2023-43804", Some("1.26.17"))]);
    assert_eq!(u("1.26.16"), [cve("CVE-2023-43804", Some("1.26.17"))]);
    assert!(u("1.26.17").is_empty());
    assert!(u("1.26.18").is_empty());
    assert_eq!(u("2.0.0"), [cve("CVE-2023-43804", Some("2.0.6"))]);
    assert_eq!(u("2.0.5"), [cve("CVE-2023-43804", Some("2.0.6"))]);
    assert!(u("2.0.6").is_empty());
    assert!(u("2.2.1").is_empty());

    // last_affected is inclusive, and there is no fix to show.
    assert_eq!(
        cves(&feed, &py, "ecdsa", "0.18.0"),
        [cve("CVE-2024-23342", None)]
    );
    assert_eq!(cves(&feed, &py, "ecdsa", "0.18.0b1").len(), 1);
    assert!(cves(&feed, &py, "ecdsa", "0.18.0.post1").is_empty());
    assert!(cves(&feed, &py, "ecdsa", "0.19.0").is_empty());

    // Other ecosystems know nothing of these names.
    assert!(cves(&feed, &Ecosystem::Npm, "requests", "2.0.0").is_empty());
}

#[test]
fn cve_metadata_merges_records_kev_and_epss() {
    let (feed, _) = load_fixture();
    // Named by a Debian record (CVSS 9.8, details only) and an Ubuntu notice
    // (CVSS 7.5, a summary, published a week earlier).
    let c = feed.cve("cve-2023-38545").expect("case-insensitive lookup");
    assert_eq!(c.cve, "CVE-2023-38545");
    assert_eq!(c.cvss_score, Some(9.8));
    assert_eq!(
        c.published.unwrap().to_rfc3339(),
        "2023-10-11T12:00:00+00:00"
    );
    assert_eq!(c.description.as_deref(), Some("curl vulnerabilities"));
    assert_eq!(c.epss_probability, Some(0.24521));
    assert!(!c.cisa_known_exploit);

    let log4j = feed.cve("CVE-2021-44228").unwrap();
    assert!(log4j.cisa_known_exploit);
    assert_eq!(log4j.epss_probability, Some(0.97565));
    assert_eq!(log4j.cvss_score, Some(10.0));
    assert_eq!(
        log4j.description.as_deref(),
        Some("Remote code injection in Log4j")
    );
    assert_eq!(
        cves(&feed, &deb("11"), "apache-log4j2", "2.13.3-1"),
        [cve("CVE-2021-44228", Some("2.15.0-1~deb11u1"))]
    );

    let jinja = feed.cve("CVE-2024-22195").unwrap();
    assert_eq!(jinja.cvss_score, Some(5.4));
    assert_eq!(
        jinja.published.unwrap().to_rfc3339(),
        "2024-01-11T03:15:11+00:00",
        "PyPA's copy was published first"
    );
    assert_eq!(feed.cve("CVE-2024-34064").unwrap().epss_probability, None);
    assert!(feed.cve("CVE-2099-0001").is_none(), "withdrawn");
    assert!(feed.cve("CVE-1999-0001").is_none());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn record(id: &str, eco: &str, name: &str, fixed: &str) -> String {
    format!(
        r#"{{"id":"{id}","aliases":["CVE-{id}"],"affected":[{{"package":{{"ecosystem":"{eco}","name":"{name}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

#[test]
fn osv_zip_dump_and_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    // osv.dev's all.zip: one record per entry; one entry is bad.
    let zip_path = dir.path().join("npm").join("all.zip");
    std::fs::create_dir_all(zip_path.parent().unwrap()).unwrap();
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("GHSA-aaaa-1.json", opts).unwrap();
        z.write_all(record("2024-1001", "npm", "lodash", "4.17.21").as_bytes())
            .unwrap();
        z.start_file("GHSA-aaaa-2.json", opts).unwrap();
        z.write_all(b"{ not json").unwrap();
        z.start_file("GHSA-aaaa-3.json", opts).unwrap();
        z.write_all(record("2024-1003", "npm", "@Babel/Traverse", "7.23.2").as_bytes())
            .unwrap();
        z.start_file("README.txt", opts).unwrap();
        z.write_all(b"ignored").unwrap();
        z.finish().unwrap();
    }
    // A gzipped array, a gzipped file that is not gzip, a zip that is not zip.
    let array = format!(
        "[{},{}]",
        record("2024-2001", "crates.io", "openssl", "0.10.55"),
        record("2024-2002", "Go", "golang.org/x/net", "v0.17.0")
    );
    std::fs::write(dir.path().join("more.json.gz"), gzip(array.as_bytes())).unwrap();
    std::fs::write(dir.path().join("bad.json.gz"), b"plain text").unwrap();
    std::fs::write(dir.path().join("bad.zip"), b"PK but not really").unwrap();
    // EPSS, gzipped, without the comment line.
    std::fs::write(
        dir.path().join("epss_scores-current.csv.gz"),
        gzip(b"cve,epss,percentile\nCVE-2024-1001,0.5,0.9\n"),
    )
    .unwrap();

    let (feed, report) = Feed::load_dir(dir.path());
    assert_eq!(report.records, 4, "{report:#?}");
    assert_eq!(report.epss, 1);
    let mut errors: Vec<_> = report
        .errors()
        .map(|f| (f.name.as_str(), f.entry.as_deref()))
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            ("bad.json.gz", None),
            ("bad.zip", None),
            ("npm/all.zip", Some("GHSA-aaaa-2.json")),
        ],
        "{report:#?}"
    );
    let zip_line = report
        .files
        .iter()
        .find(|f| f.name == "npm/all.zip" && f.entry.is_none())
        .unwrap();
    assert_eq!(zip_line.records, 2);

    let npm = Ecosystem::Npm;
    assert_eq!(
        cves(&feed, &npm, "lodash", "4.17.20"),
        [cve("CVE-2024-1001", Some("4.17.21"))]
    );
    assert!(cves(&feed, &npm, "lodash", "4.17.21").is_empty());
    assert_eq!(
        cves(&feed, &npm, "@babel/traverse", "7.23.2-beta.1").len(),
        1,
        "npm names ignore case; a prerelease is before its release"
    );
    assert_eq!(
        cves(&feed, &Ecosystem::CratesIo, "openssl", "0.10.54").len(),
        1
    );
    assert_eq!(
        cves(&feed, &Ecosystem::Go, "golang.org/x/net", "v0.16.0").len(),
        1
    );
    assert!(cves(&feed, &Ecosystem::Go, "golang.org/x/net", "v0.17.0").is_empty());
    assert_eq!(
        feed.cve("CVE-2024-1001").unwrap().epss_probability,
        Some(0.5)
    );
}

#[test]
fn fingerprint_lists_inputs_and_changes_with_them() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let before = fingerprint(dir.path());
    let names: Vec<String> = before
        .iter()
        .map(|(p, _, _)| {
            p.strip_prefix(dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(names.contains(&"known_exploited_vulnerabilities.json".to_string()));
    assert!(names.contains(&"pypi/pypi-advisories.json".to_string()));
    assert!(!names.iter().any(|n| n.ends_with("README.md")), "{names:?}");
    assert_eq!(names.len(), 12, "{names:?}");

    std::fs::write(
        dir.path().join("pypi/new.json"),
        record("2024-3001", "PyPI", "flask", "3.0.3"),
    )
    .unwrap();
    let after = fingerprint(dir.path());
    assert_ne!(before, after);
    let (feed, report) = Feed::load_dir(dir.path());
    assert_eq!(report.records, 16);
    assert_eq!(
        cves(&feed, &Ecosystem::PyPI, "Flask", "3.0.2"),
        [cve("CVE-2024-3001", Some("3.0.3"))]
    );
}

#[test]
fn missing_directory_is_reported_not_fatal() {
    let (feed, report) = Feed::load_dir(Path::new("/nonexistent/vulns/feed"));
    assert_eq!(feed.cve_count(), 0);
    assert_eq!(report.errors().count(), 1);
    assert!(
        matches(&feed, &Ecosystem::PyPI, "jinja2", "1.0").is_empty(),
        "an empty feed matches nothing"
    );
}

#[test]
fn host_software_maps_to_the_records_it_should_meet() {
    let (feed, _) = load_fixture();
    // What a server does with one row of a host's software.
    let find =
        |source: &str, platform: &str, os: &str, ver: &str, name: &str, v: &str, rel: &str| {
            let eco = Ecosystem::for_software(source, platform, os, ver)?;
            let version = host_version(&eco, v, rel, None);
            Some(cves(&feed, &eco, name, &version))
        };
    assert_eq!(
        find(
            "deb_packages",
            "ubuntu",
            "Ubuntu",
            "22.04.3 LTS (Jammy Jellyfish)",
            "curl",
            "7.81.0-1ubuntu1.13",
            ""
        ),
        Some(vec![cve("CVE-2023-38545", Some("7.81.0-1ubuntu1.14"))])
    );
    assert_eq!(
        find(
            "deb_packages",
            "debian",
            "Debian GNU/Linux",
            "12 (bookworm)",
            "curl",
            "7.88.1-10+deb12u3",
            ""
        ),
        Some(vec![cve("CVE-2023-38545", Some("7.88.1-10+deb12u4"))])
    );
    assert_eq!(
        find(
            "rpm_packages",
            "rocky",
            "Rocky Linux",
            "9.3 (Blue Onyx)",
            "curl",
            "7.76.1",
            "26.el9"
        ),
        Some(vec![cve("CVE-2023-38546", Some("0:7.76.1-26.el9_3.2"))])
    );
    assert_eq!(
        find(
            "python_packages",
            "darwin",
            "macOS",
            "14.4.1",
            "Jinja2",
            "3.1.3",
            ""
        ),
        Some(vec![cve("CVE-2024-34064", Some("3.1.4"))])
    );
    assert_eq!(
        find("apps", "darwin", "macOS", "14.4.1", "curl", "7.0", ""),
        None
    );
}

#[test]
fn feed_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Feed>();
    shared::<LoadReport>();
}

/// Loads records given as JSON text from a scratch directory.
fn feed_of(json: &str) -> Feed {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("records.json"), json).unwrap();
    let (feed, report) = Feed::load_dir(dir.path());
    assert_eq!(report.errors().count(), 0, "{report:#?}");
    feed
}

#[test]
fn range_semantics_beyond_the_fixture() {
    let feed = feed_of(
        r#"[
        {"id": "X-1", "affected": [{"package": {"ecosystem": "npm", "name": "pairs"},
          "ranges": [{"type": "SEMVER", "events": [
            {"introduced": "2.0.0"}, {"last_affected": "2.1.0"},
            {"introduced": "1.0.0"}, {"last_affected": "1.2.0"}]}]}]},
        {"id": "X-2", "affected": [{"package": {"ecosystem": "npm", "name": "limited"},
          "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "3.0.0"}]}]}]},
        {"id": "X-3", "affected": [{"package": {"ecosystem": "npm", "name": "two-ranges"},
          "ranges": [
            {"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.0.5"}]},
            {"type": "ECOSYSTEM", "events": [{"introduced": "4.0.0"}, {"fixed": "4.2.0"}]}]}]},
        {"id": "X-4", "affected": [{"package": {"ecosystem": "npm", "name": "git-only"},
          "ranges": [{"type": "GIT", "repo": "https://example.invalid/r",
            "events": [{"introduced": "0"}, {"fixed": "abc123"}]}]}]},
        {"id": "X-5", "affected": [{"package": {"ecosystem": "npm", "name": "listed"},
          "versions": ["0.9.1", "0.9.3"]}]},
        {"id": "X-6", "affected": [{"package": {"ecosystem": "npm", "name": "open"},
          "ranges": [{"type": "SEMVER", "events": [{"introduced": "5.0.0"}]}]}]},
        {"id": "X-7", "affected": [{"package": {"ecosystem": "Homebrew", "name": "openssl@3"},
          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.3.2"}]}]}]},
        {"id": "X-8", "affected": [{"package": {"ecosystem": "npm", "name": "bad-bound"},
          "ranges": [{"type": "SEMVER", "events": [{"introduced": "not-a-version"}, {"fixed": "2.0.0"}]}]}]}
    ]"#,
    );
    let npm = Ecosystem::Npm;
    let hit = |name: &str, v: &str| {
        let m = matches(&feed, &npm, name, v);
        assert!(m.len() <= 1);
        m.into_iter().next().map(|m| m.resolved_in_version)
    };
    // Two introduced/last_affected pairs, out of order.
    assert_eq!(hit("pairs", "0.9.0"), None);
    assert_eq!(hit("pairs", "1.0.0"), Some(None));
    assert_eq!(hit("pairs", "1.2.0"), Some(None));
    assert_eq!(hit("pairs", "1.2.1"), None);
    assert_eq!(hit("pairs", "2.0.5"), Some(None));
    assert_eq!(hit("pairs", "2.1.1"), None);
    // A limit ends the range.
    assert_eq!(hit("limited", "2.9.9"), Some(None));
    assert_eq!(hit("limited", "3.0.0"), None);
    // Any of several ranges, each with its own fix.
    assert_eq!(hit("two-ranges", "1.0.4"), Some(Some("1.0.5".into())));
    assert_eq!(hit("two-ranges", "2.0.0"), None);
    assert_eq!(hit("two-ranges", "4.1.0"), Some(Some("4.2.0".into())));
    // GIT ranges cannot be compared with an installed version.
    assert_eq!(hit("git-only", "0.0.1"), None);
    // Explicit versions only.
    assert_eq!(hit("listed", "0.9.1"), Some(None));
    assert_eq!(hit("listed", "0.9.2"), None);
    // No end: every later version.
    assert_eq!(hit("open", "4.9.9"), None);
    assert_eq!(hit("open", "99.0.0"), Some(None));
    // A bound that does not parse drops its pair rather than match everything.
    assert_eq!(hit("bad-bound", "1.0.0"), None);
    // Homebrew, with the generic ordering.
    let brew = |v: &str| matches(&feed, &Ecosystem::Homebrew, "openssl@3", v).len();
    assert_eq!(brew("3.3.1_1"), 1);
    assert_eq!(brew("3.3.2"), 0);
    // Records without a CVE are shown by their OSV id.
    assert_eq!(matches(&feed, &npm, "open", "5.0.0")[0].cve, "X-6");
    assert!(feed.cve("x-6").is_some());
}
