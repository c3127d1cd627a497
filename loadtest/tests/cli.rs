//! The `flotilla-loadtest` command line as a user meets it.

use std::process::Command;

#[test]
fn help_names_the_options_a_run_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-loadtest"))
        .arg("--help")
        .output()
        .expect("running flotilla-loadtest");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--server",
        "--ca",
        "--enroll-secret",
        "--hosts",
        "--duration",
        "--start-period",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}

#[test]
fn a_missing_server_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-loadtest"))
        .args(["--enroll-secret", "s"])
        .output()
        .expect("running flotilla-loadtest");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--server"));
}

#[test]
fn write_osv_fixture_writes_the_feed_and_says_what_it_wrote() {
    let dir = std::env::temp_dir().join(format!("flotilla-cli-osv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla-loadtest"))
        .args([
            "write-osv-fixture",
            dir.to_str().unwrap(),
            "--records",
            "200",
        ])
        .output()
        .expect("running flotilla-loadtest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["padded_records"], 200);
    assert!(summary["vulnerable_pool_packages"].as_u64().unwrap() >= 11);
    for file in [
        "osv/USN-6450-1.json",
        "osv/RLSA-2024-0310.json",
        "osv/GHSA-h5c8-rqwp-cp95.json",
        "osv-padded.json.gz",
        "known_exploited_vulnerabilities.json",
        "epss_scores-2024-07-10.csv",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
