//! The load tester keeps working: a few hundred simulated hosts for a few seconds against the
//! real server, with zero errors. (Timings are the benchmarks' business, not this test's.)

use std::process::Command;

use flotilla_tests::{SECRET, Server, loadtest_binary};
use serde_json::Value;

#[test]
fn three_hundred_hosts_for_a_few_seconds_with_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ca = dir.path().join("tls/ca.pem");
    let out = Command::new(loadtest_binary())
        .args([
            "--server",
            &server.url(),
            "--enroll-secret",
            SECRET,
            "--hosts",
            "300",
        ])
        .args([
            "--start-period",
            "2s",
            "--duration",
            "8s",
            "--distributed-interval",
            "2s",
        ])
        .args(["--config-interval", "4s", "--logger-period", "2s"])
        .arg("--ca")
        .arg(&ca)
        .output()
        .expect("running flotilla-loadtest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["enrolled_hosts"], 300, "{summary}");
    for endpoint in [
        "enroll",
        "config",
        "distributed_read",
        "distributed_write",
        "log",
    ] {
        let requests = summary["endpoints"][endpoint]["requests"]
            .as_u64()
            .unwrap_or(0);
        assert!(requests > 0, "no {endpoint} requests: {summary}");
    }
}
