//! The load tester keeps working: a few hundred simulated hosts for a few seconds against the
//! real server, with zero errors; the fan-out scenario gets every online host's result; the
//! `/version` scenario runs. (Timings are the benchmarks' business, not these tests'.)

use std::path::Path;
use std::process::Command;

use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, SECRET, Server, loadtest_binary};
use serde_json::Value;

/// Runs the load tester against `server` with `args`, asserts it succeeded, returns the
/// summary from stdout (and checks `--summary PATH` wrote the same).
fn run(server: &Server, dir: &Path, args: &[&str]) -> Value {
    let summary_path = dir.join("summary.json");
    let out = Command::new(loadtest_binary())
        .args(["--server", &server.url(), "--enroll-secret", SECRET])
        .arg("--ca")
        .arg(dir.join("tls/ca.pem"))
        .arg("--summary")
        .arg(&summary_path)
        .args(args)
        .output()
        .expect("running flotilla-loadtest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("a JSON summary on stdout");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).expect("--summary file"))
            .expect("JSON in the --summary file");
    assert_eq!(file, summary, "--summary writes what stdout shows");
    summary
}

fn assert_latency_fields(summary: &Value, endpoint: &str) {
    let e = &summary["endpoints"][endpoint];
    let requests = e["requests"].as_u64().unwrap_or(0);
    assert!(requests > 0, "no {endpoint} requests: {summary}");
    let latency = &e["latency_ms"];
    assert_eq!(
        latency["count"], requests,
        "every request is in the histogram"
    );
    for p in ["mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(latency[p].as_f64().is_some(), "{endpoint} {p}: {summary}");
    }
    let (p50, p99, max) = (
        latency["p50_ms"].as_f64().unwrap(),
        latency["p99_ms"].as_f64().unwrap(),
        latency["max_ms"].as_f64().unwrap(),
    );
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= max,
        "{endpoint}: {latency}"
    );
}

#[test]
fn three_hundred_hosts_for_a_few_seconds_with_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let summary = run(
        &server,
        dir.path(),
        &[
            "--hosts",
            "300",
            "--start-period",
            "2s",
            "--duration",
            "8s",
            "--distributed-interval",
            "2s",
            "--config-interval",
            "4s",
            "--logger-interval",
            "2s",
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["enrolled_hosts"], 300, "{summary}");
    assert_eq!(summary["scenario"], "checkin");
    for endpoint in [
        "enroll",
        "config",
        "distributed_read",
        "distributed_write",
        "log",
    ] {
        assert_latency_fields(&summary, endpoint);
    }
    assert_eq!(summary["options"]["hosts"], 300);
    assert_eq!(summary["options"]["distributed_interval_s"], 2.0);
    assert_eq!(summary["options"]["source_addresses"], 1);
    assert!(summary["client"]["cpu_s"].as_f64().unwrap() > 0.0);
    assert!(summary["client"]["rss_per_host_kb"].as_f64().is_some());
    assert!(summary["started_at"].as_str().is_some());
}

#[test]
fn fanout_gets_every_online_hosts_result_over_the_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let summary = run(
        &server,
        dir.path(),
        &[
            "--hosts",
            "200",
            "--start-period",
            "1s",
            "--duration",
            "90s",
            "--distributed-interval",
            "1s",
            "--scenario",
            "fanout",
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
            "--fanout-count",
            "2",
            "--fanout-timeout",
            "60s",
            "--live-query-error-prob",
            "0.1",
            "--source-addresses",
            "4",
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    let fanout = &summary["fanout"];
    assert_eq!(fanout["hosts_in_label"], 200, "{fanout}");
    let campaigns = fanout["campaigns"].as_array().expect("campaigns");
    assert_eq!(campaigns.len(), 2, "{fanout}");
    assert_ne!(campaigns[0]["campaign_id"], campaigns[1]["campaign_id"]);
    for c in campaigns {
        assert_eq!(c["online"], 200, "{c}");
        assert_eq!(c["results"], 200, "every online host's result arrived: {c}");
        assert_eq!(c["finished"], true, "{c}");
        assert_eq!(
            c["unmatched_results"], 0,
            "each result matched to the write that carried it: {c}"
        );
        assert_eq!(c["engine_latency"]["count"], 200, "{c}");
        for mark in [
            "first_result_s",
            "p50_hosts_s",
            "p99_hosts_s",
            "all_hosts_s",
        ] {
            assert!(c[mark].as_f64().is_some(), "{mark}: {c}");
        }
        assert!(c["result_errors"].as_u64().is_some());
    }
    // The run ended once the campaigns were done, not at --duration.
    assert!(summary["duration_s"].as_f64().unwrap() < 90.0, "{summary}");
}

#[test]
fn version_scenario_sends_the_same_pattern_as_get_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let summary = run(
        &server,
        dir.path(),
        &[
            "--hosts",
            "100",
            "--start-period",
            "1s",
            "--duration",
            "4s",
            "--distributed-interval",
            "1s",
            "--scenario",
            "version",
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["scenario"], "version");
    assert_eq!(summary["enrolled_hosts"], 0, "no agent enrolled");
    // Start-up: two requests on the start-up connection and one on the logger connection.
    assert_eq!(summary["endpoints"]["enroll"]["requests"], 100, "{summary}");
    assert_eq!(summary["endpoints"]["log"]["requests"], 100, "{summary}");
    assert_latency_fields(&summary, "distributed_read");
    let reads = summary["endpoints"]["distributed_read"]["requests"]
        .as_u64()
        .unwrap();
    assert!(reads >= 200, "check-ins every second for 3-4 s: {summary}");
}

#[tokio::test]
async fn hosts_running_fleetd_enroll_orbit_and_desktop_beside_osquery_as_one_host_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let summary = run(
        &server,
        dir.path(),
        &[
            "--hosts",
            "100",
            "--orbit-share",
            "0.5",
            "--start-period",
            "1s",
            "--duration",
            "6s",
            "--distributed-interval",
            "2s",
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["options"]["orbit_share"], 0.5);
    for endpoint in [
        "orbit_enroll",
        "orbit_config",
        "orbit_ping",
        "orbit_device_token",
        "desktop",
    ] {
        assert_latency_fields(&summary, endpoint);
    }
    assert_eq!(
        summary["endpoints"]["orbit_enroll"]["requests"], 50,
        "{summary}"
    );
    assert_eq!(summary["endpoints"]["desktop"]["requests"], 50, "{summary}");
    let admin = server.admin().await;
    let (_, count) = admin.get("/hosts/count").await;
    assert_eq!(
        count["count"], 100,
        "orbit and osquery of a machine are one host"
    );
}
