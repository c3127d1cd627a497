//! The osquery TLS remote API, end to end: the real `flotilla serve` and simulated osqueryd
//! agents that verify the generated CA.

use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use flotilla_loadtest::{
    AgentError, EndpointPaths, LiveQueryProfile, LogType, OsTemplate, TemplateAnswerer,
};
use flotilla_tests::{SECRET, Server};
use serde_json::{Value, json};
use sqlx::Row;
use std::io::Write;

fn answerer(agent: &flotilla_loadtest::SimAgent) -> TemplateAnswerer {
    TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default())
}

async fn host_count(server: &Server) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM hosts")
        .fetch_one(&server.database().await)
        .await
        .unwrap()
        .get("n")
}

/// Polls until `check` holds: for effects that land with the next batched flush (200 ms here).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn enroll_on_both_path_families_and_refuse_a_bad_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let v1 = server.agent("host-v1", OsTemplate::Ubuntu);
    let key_v1 = v1.enroll().await.unwrap();
    assert!(
        key_v1.len() >= 32,
        "node keys carry at least 24 random bytes"
    );

    let mut config = v1.agent_config().clone();
    config.host_identifier = "host-plain".into();
    config.endpoints = EndpointPaths::with_prefix("/api/osquery");
    let plain = flotilla_loadtest::SimAgent::new(config).unwrap();
    let key_plain = plain.enroll().await.unwrap();
    assert_ne!(key_v1, key_plain);
    assert_eq!(host_count(&server).await, 2);

    // A wrong secret: 401 with node_invalid, in osquery's error form.
    let response = server
        .client()
        .post(format!("{}/api/v1/osquery/enroll", server.url()))
        .json(&json!({"enroll_secret": "wrong", "host_identifier": "intruder", "host_details": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["node_invalid"], true);
    assert!(body["error"].as_str().unwrap().contains("enroll secret"));
    assert_eq!(
        host_count(&server).await,
        2,
        "a refused enrollment creates nothing"
    );
}

#[tokio::test]
async fn config_carries_the_agent_options() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-config", OsTemplate::MacOs);
    let config = agent.config().await.unwrap();
    let options = &config["options"];
    for option in [
        "distributed_interval",
        "distributed_tls_max_attempts",
        "logger_tls_period",
    ] {
        assert!(
            options[option].is_u64(),
            "option {option} missing from {config}"
        );
    }
    // No scheduled queries yet: no packs (as Fleet serves it); a schedule, if any, is an object.
    assert!(
        config.get("packs").is_none_or(|p| p.is_object()),
        "{config}"
    );
    assert!(
        config.get("schedule").is_none_or(|s| s.is_object()),
        "{config}"
    );
    assert!(config["decorators"]["load"].is_array());
    assert_eq!(
        agent.stats().enrolls,
        1,
        "the config request enrolled the agent first"
    );
}

#[tokio::test]
async fn detail_queries_fill_vitals_then_stop_until_due() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut agent = server.agent("host-details", OsTemplate::Ubuntu);
    let answers = answerer(&agent);

    let first = agent.run_distributed_cycle(&answers).await;
    assert!(first.read_ok, "{first:?}");
    assert!(
        first
            .answered
            .iter()
            .any(|n| n == "fleet_detail_query_system_info")
    );
    assert!(
        first
            .answered
            .iter()
            .any(|n| n == "fleet_detail_query_osquery_flags")
    );
    assert!(
        first
            .skipped
            .iter()
            .any(|n| n == "fleet_detail_query_network_interface_windows")
            || !first
                .received
                .iter()
                .any(|n| n == "fleet_detail_query_network_interface_windows"),
        "an Ubuntu host never runs the Windows variant"
    );
    assert!(first.write_error.is_none(), "{first:?}");

    let second = agent.run_distributed_cycle(&answers).await;
    assert!(second.read_ok);
    assert!(second.received.is_empty(), "details are fresh: {second:?}");

    let profile = agent.profile().clone();
    let db = server.database().await;
    eventually("vitals in the database", || async {
        let row = sqlx::query("SELECT hostname, platform, os_version, osquery_version, uuid, hardware_serial, primary_ip, primary_mac, distributed_interval, uptime, memory FROM hosts WHERE osquery_host_id = ?")
            .bind("host-details")
            .fetch_one(&db)
            .await
            .unwrap();
        let interval: i64 = row.get("distributed_interval");
        let ip: String = row.get("primary_ip");
        interval > 0 && !ip.is_empty()
    })
    .await;
    let row = sqlx::query("SELECT hostname, platform, os_version, osquery_version, uuid FROM hosts WHERE osquery_host_id = ?")
        .bind("host-details")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("platform"), "ubuntu");
    assert!(row.get::<String, _>("os_version").starts_with("Ubuntu"));
    assert_eq!(
        row.get::<String, _>("osquery_version"),
        agent.agent_config().osquery_version
    );
    assert!(!row.get::<String, _>("hostname").is_empty());
    assert!(!row.get::<String, _>("uuid").is_empty());
    drop(profile);
}

#[tokio::test]
async fn reenrollment_gives_a_new_key_for_the_same_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-again", OsTemplate::Windows);
    let first = agent.enroll().await.unwrap();
    // A burst: several threads of one agent re-enrolling at once.
    let (a, b, c) = tokio::join!(agent.enroll(), agent.enroll(), agent.enroll());
    let newest = agent.enroll().await.unwrap();
    for key in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_ne!(key, first);
    }
    assert_eq!(
        host_count(&server).await,
        1,
        "one host, however often it enrolls"
    );

    // The old key is refused with node_invalid; the newest works.
    let stale = server
        .client()
        .post(format!("{}/api/v1/osquery/distributed/read", server.url()))
        .json(&json!({ "node_key": first }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    assert_eq!(stale.json::<Value>().await.unwrap()["node_invalid"], true);
    agent.set_node_key(Some(newest));
    agent.distributed_read().await.unwrap();
}

#[tokio::test]
async fn node_invalid_makes_the_agent_reenroll_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut agent = server.agent("host-forgotten", OsTemplate::Ubuntu);
    agent.set_node_key(Some("a-key-this-server-never-issued".into()));
    let report = agent.run_distributed_cycle(&answerer(&agent)).await;
    assert!(
        report.read_ok,
        "the retry after re-enrolling succeeds: {report:?}"
    );
    let stats = agent.stats();
    assert_eq!(stats.node_invalid, 1);
    assert_eq!(stats.enrolls, 1);
}

#[tokio::test]
async fn every_keyed_endpoint_refuses_unknown_and_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let bodies = [
        ("config", json!({})),
        ("distributed/read", json!({})),
        ("distributed/write", json!({"queries": {}, "statuses": {}})),
        ("log", json!({"log_type": "status", "data": []})),
        (
            "carve/begin",
            json!({"block_count": 1, "block_size": 10, "carve_size": 5, "carve_id": "c", "request_id": "r"}),
        ),
    ];
    for prefix in ["/api/osquery", "/api/v1/osquery"] {
        for (endpoint, body) in &bodies {
            for key in [Some("unknown-key"), Some(""), None] {
                let mut body = body.clone();
                if let Some(key) = key {
                    body["node_key"] = json!(key);
                }
                let response = client
                    .post(format!("{}{prefix}/{endpoint}", server.url()))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401, "{prefix}/{endpoint} with {key:?}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(
                    body["node_invalid"],
                    json!(true),
                    "{prefix}/{endpoint}: {body}"
                );
                assert!(body["error"].is_string());
            }
        }
    }
    // The header form (osquery 5.23+) authenticates on its own.
    let agent = server.agent("host-header", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    let response = client
        .post(format!("{}/api/osquery/distributed/read", server.url()))
        .header("Authorization", format!("NodeKey {key}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["queries"].is_object());
}

fn read_log(server: &Server, name: &str) -> Vec<Value> {
    std::fs::read_to_string(server.data_dir.join("logs").join(name))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is one JSON object"))
        .collect()
}

#[tokio::test]
async fn result_and_status_logs_in_every_shape_land_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-logs", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let common = json!({"hostIdentifier": "host-logs", "calendarTime": "Tue Aug  4 10:00:00 2026 UTC", "epoch": 0, "counter": 1, "numerics": false});
    let with = |extra: Value| {
        let mut line = common.clone();
        line.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        line
    };
    let results = vec![
        with(
            json!({"name": "pack/Global/event", "unixTime": 1785837600, "action": "added", "columns": {"pid": "1"}}),
        ),
        with(
            json!({"name": "pack/Global/batch", "unixTime": "1785837600", "diffResults": {"added": [{"pid": "2"}], "removed": []}}),
        ),
        with(
            json!({"name": "pack/Global/snap", "unixTime": 1785837600, "action": "snapshot", "snapshot": [{"pid": "3"}]}),
        ),
    ];
    agent.log(LogType::Result, results, false).await.unwrap();
    let statuses = vec![
        json!({"hostIdentifier": "host-logs", "unixTime": 1785837600, "severity": 0, "line": 12, "filename": "a.cpp", "message": "numbers"}),
        json!({"hostIdentifier": "host-logs", "unixTime": "1785837600", "severity": "1", "line": "13", "filename": "b.cpp", "message": "strings"}),
    ];
    agent.log(LogType::Status, statuses, true).await.unwrap();
    agent
        .log(
            LogType::Result,
            vec![with(
                json!({"name": "gzipped", "unixTime": 1, "action": "added", "columns": {}}),
            )],
            true,
        )
        .await
        .unwrap();

    let results = read_log(&server, "result.log");
    let names: Vec<&str> = results
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "pack/Global/event",
            "pack/Global/batch",
            "pack/Global/snap",
            "gzipped"
        ]
    );
    assert_eq!(results[1]["diffResults"]["added"][0]["pid"], "2");
    let statuses = read_log(&server, "status.log");
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[1]["message"], "strings");
}

/// POSTs `body` gzipped, as osquery's `--logger_tls_compress` does.
async fn post_gzip(client: &reqwest::Client, url: &str, body: &[u8]) -> reqwest::Response {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(body).unwrap();
    client
        .post(url)
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/json")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oversized_and_malformed_bodies_are_refused_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-log", "64KiB"]);
    let agent = server.agent("host-bad-input", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    agent
        .log(
            LogType::Status,
            vec![json!({"message": "accepted before the bad input"})],
            false,
        )
        .await
        .unwrap();
    let client = server.client();
    let url = |path: &str| format!("{}/api/v1/osquery/{path}", server.url());

    let big =
        json!({"node_key": key, "log_type": "result", "data": [{"blob": "x".repeat(100_000)}]});
    let response = client.post(url("log")).json(&big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        response.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("limit")
    );

    // The same body gzipped is small on the wire but is held to the limit once inflated.
    let response = post_gzip(&client, &url("log"), big.to_string().as_bytes()).await;
    assert_eq!(response.status(), 413);

    for (path, body) in [
        ("log", "{\"node_key\": "),
        ("distributed/write", "[1,2"),
        ("enroll", "not json"),
        ("config", ""),
    ] {
        let response = client
            .post(url(path))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path} with {body:?}");
        let error: Value = response.json().await.expect("the error is JSON");
        assert!(error["error"].as_str().unwrap().contains("JSON"), "{error}");
    }

    // Unknown log type: an error, never an empty success.
    let response = client
        .post(url("log"))
        .json(&json!({"node_key": key, "log_type": "bogus", "data": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Everything accepted before is still there and the host still works.
    let statuses = read_log(&server, "status.log");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["message"], "accepted before the bad input");
    assert!(read_log(&server, "result.log").is_empty());
    agent.distributed_read().await.unwrap();
}

#[tokio::test]
async fn bytes_that_are_not_utf8_are_replaced_and_the_batch_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-latin1", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    let client = server.client();
    let url = |path: &str| format!("{}/api/v1/osquery/{path}", server.url());
    // A file name in Latin-1 (0xE9 is "é"), as osquery passes it through from the disk.
    let body = |name: &[u8]| {
        let mut body = format!(
            "{{\"node_key\":\"{key}\",\"log_type\":\"result\",\"data\":[\
             {{\"name\":\"files\",\"columns\":{{\"path\":\""
        )
        .into_bytes();
        body.extend_from_slice(name);
        body.extend_from_slice(b"\"},\"action\":\"added\"},{\"name\":\"files\",\"columns\":{\"path\":\"/ok\"},\"action\":\"added\"}]}");
        body
    };
    let response = client
        .post(url("log"))
        .header("Content-Type", "application/json")
        .body(body(b"/tmp/caf\xe9"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    // And gzipped, as --logger_tls_compress sends it.
    let response = post_gzip(&client, &url("log"), &body(b"/tmp/\xff\xfe")).await;
    assert_eq!(response.status(), 200);

    let paths: Vec<String> = read_log(&server, "result.log")
        .iter()
        .map(|line| line["columns"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["/tmp/caf\u{fffd}", "/ok", "/tmp/\u{fffd}\u{fffd}", "/ok"]
    );
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("flotilla_osquery_invalid_utf8_bodies_total 2"),
        "{metrics}"
    );
}

/// What a host sends without bound is held to bounds: a 500,000-character hostname is kept
/// with its first 255 characters (what MySQL's columns hold, so both stores agree), and a
/// result line nested 50,000 deep is set aside, counted and kept out of the log, while the
/// lines beside it go through.
#[tokio::test]
async fn huge_host_text_is_clipped_and_deeply_nested_lines_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let long = "h".repeat(500_000);
    let response = server
        .client()
        .post(format!("{}/api/v1/osquery/enroll", server.url()))
        .json(&json!({
            "enroll_secret": flotilla_tests::SECRET,
            "host_identifier": "i".repeat(300_000),
            "host_details": {"system_info": {"hostname": long, "computer_name": "c".repeat(1_000), "uuid": "u-1"},
                             "os_version": {"platform": "ubuntu", "name": "Ubuntu", "version": "9".repeat(1_000)}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let key = response.json::<Value>().await.unwrap()["node_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, hosts) = admin.get("/hosts").await;
    assert_eq!(status, 200);
    let host = &hosts["hosts"][0];
    for field in ["hostname", "computer_name", "osquery_host_id"] {
        assert_eq!(
            host[field].as_str().unwrap().chars().count(),
            255,
            "{field}"
        );
    }
    assert!(host["os_version"].as_str().unwrap().len() <= 255);

    let deep = format!(
        "{{\"name\":\"deep\",\"columns\":{}1{}}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let body = format!(
        "{{\"node_key\":\"{key}\",\"log_type\":\"result\",\"data\":[\
         {{\"name\":\"before\",\"columns\":{{}}}},{deep},{{\"name\":\"after\",\"columns\":{{}}}}]}}"
    );
    let response = server
        .client()
        .post(format!("{}/api/v1/osquery/log", server.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let names: Vec<Value> = read_log(&server, "result.log")
        .iter()
        .map(|line| line["name"].clone())
        .collect();
    assert_eq!(names, [json!("before"), json!("after")]);
    let kept = std::fs::read_to_string(server.data_dir.join("logs/set-aside.jsonl")).unwrap();
    assert_eq!(kept.lines().count(), 1);
    assert!(kept.contains("\"reason\":\"too_deep\"") && kept.contains(&"[".repeat(50_000)));
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("flotilla_osquery_log_lines_set_aside_total{reason=\"too_deep\"} 1"),
        "{metrics}"
    );
}

/// `flotilla_log_fsyncs_total{log="result"}`, 0 when absent.
fn result_log_syncs(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("flotilla_log_fsyncs_total{log=\"result\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn log_requests_are_answered_once_their_lines_are_synced_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut agents = Vec::new();
    for i in 0..8 {
        let agent = server.agent(&format!("host-sync-{i}"), OsTemplate::Ubuntu);
        agent.enroll().await.unwrap();
        agents.push(agent);
    }
    assert_eq!(result_log_syncs(&server.metrics_text().await), 0);
    // 8 hosts, 5 requests each, all at once: every request waits for a sync that covers it.
    let sends = agents.iter().enumerate().flat_map(|(i, agent)| {
        (0..5).map(move |n| {
            agent.log(
                LogType::Result,
                vec![flotilla_tests::result_line(
                    &format!("host-sync-{i}"),
                    "q",
                    n,
                )],
                false,
            )
        })
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.unwrap();
    }
    assert_eq!(read_log(&server, "result.log").len(), 40);
    let metrics = server.metrics_text().await;
    let syncs = result_log_syncs(&metrics);
    assert!((1..=40).contains(&syncs), "{syncs} syncs for 40 requests");
    assert!(
        metrics.contains("flotilla_log_fsync_seconds_total{log=\"result\"}"),
        "{metrics}"
    );

    // --no-log-fsync answers without syncing.
    let other = tempfile::tempdir().unwrap();
    let unsynced = Server::start(other.path(), &["--no-log-fsync"]);
    let agent = unsynced.agent("host-unsynced", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    agent
        .log(
            LogType::Result,
            vec![flotilla_tests::result_line("host-unsynced", "q", 1)],
            false,
        )
        .await
        .unwrap();
    assert_eq!(read_log(&unsynced, "result.log").len(), 1);
    assert_eq!(result_log_syncs(&unsynced.metrics_text().await), 0);
}

#[tokio::test]
async fn the_data_directory_is_readable_by_the_server_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An earlier version's directory, open to everyone.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("left-over.txt"), "x").unwrap();
    std::fs::set_permissions(
        data.join("left-over.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let server = Server::start(&data, &[]);
    let agent = server.agent("host-modes", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    agent
        .log(
            LogType::Status,
            vec![json!({"message": "kept privately"})],
            false,
        )
        .await
        .unwrap();
    let mut seen = 0;
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        if metadata.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            seen += 1;
        }
    }
    // The database, the generated certificate and key, the status log, the left-over file.
    assert!(seen >= 5, "{seen} files");
    assert!(data.join("logs/status.log").exists());
}

#[tokio::test]
async fn a_failing_log_destination_answers_413_and_osquery_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--osquery-log-rotate-size",
            "200",
            "--osquery-log-rotate-keep",
            "1",
        ],
    );
    let agent = server.agent("host-sink", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let line = |n: usize| json!({"name": "q", "n": n, "pad": "x".repeat(150)});
    agent
        .log(LogType::Result, vec![line(1)], false)
        .await
        .unwrap();

    // Block rotation: result.log.1 is a non-empty directory, so the next write cannot rotate.
    let blocker = server.data_dir.join("logs/result.log.1");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    let error = agent
        .log(LogType::Result, vec![line(2)], false)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AgentError::Server(ref m) if m.contains("error writing result logs")),
        "{error:?}"
    );

    std::fs::remove_dir_all(&blocker).unwrap();
    agent
        .log(LogType::Result, vec![line(2)], false)
        .await
        .unwrap();
    let old = std::fs::read_to_string(server.data_dir.join("logs/result.log.1")).unwrap();
    let new = read_log(&server, "result.log");
    assert!(old.contains("\"n\":1"));
    assert_eq!(new.len(), 1);
    assert_eq!(
        new[0]["n"], 2,
        "the retried line arrives once the destination recovers"
    );
}

/// `carve/begin` on `server` for a host holding `key`: the answer's status and body.
async fn carve_begin(
    server: &Server,
    key: &str,
    blocks: u64,
    size: u64,
    total: u64,
) -> (u16, Value) {
    let response = server
        .client()
        .post(format!("{}/api/v1/osquery/carve/begin", server.url()))
        .json(
            &json!({"node_key": key, "block_count": blocks, "block_size": size,
            "carve_size": total, "carve_id": "guid", "request_id": format!("req-{key}")}),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// One `carve/block`, as osquery before 5.23 sends it (no node key), or with `sender`'s key
/// in the `Authorization` header as 5.23 and later do.
async fn carve_block(
    server: &Server,
    session: &str,
    request: &str,
    block: u64,
    data: &[u8],
    sender: Option<&str>,
) -> (u16, Value) {
    use base64::Engine;
    let mut request = server
        .client()
        .post(format!("{}/api/v1/osquery/carve/block", server.url()))
        .json(
            &json!({"block_id": block, "session_id": session, "request_id": request,
            "data": base64::engine::general_purpose::STANDARD.encode(data)}),
        );
    if let Some(key) = sender {
        request = request.header("authorization", format!("NodeKey {key}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The carve file the server assembled for `session`, once it is there.
async fn assembled(server: &Server, session: &str) -> Vec<u8> {
    let path = server
        .data_dir
        .join("carves")
        .join(format!("{session}.tar"));
    eventually("the carve assembled on disk", || {
        let path = path.clone();
        async move { path.exists() }
    })
    .await;
    std::fs::read(&path).unwrap()
}

#[tokio::test]
async fn carves_are_assembled_from_their_blocks_and_served_block_by_block() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let agent = server.agent("host-carve", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let report = agent.carve(&data, 8192).await.unwrap();
    assert_eq!(report.block_count, 3);
    assert_eq!(assembled(&server, &report.session_id).await, data);

    let admin = server.admin().await;
    let (status, list) = admin.get("/carves").await;
    assert_eq!(status, 200, "{list}");
    let carve = &list["carves"][0];
    assert_eq!(carve["session_id"], report.session_id.as_str());
    assert_eq!(carve["request_id"], report.request_id.as_str());
    assert_eq!(carve["carve_id"], report.carve_id.as_str());
    assert_eq!(carve["block_count"], 3);
    assert_eq!(carve["blocks_received"], 3);
    assert_eq!(carve["max_block"], 2);
    assert_eq!(carve["expired"], false);
    assert!(
        carve["name"].as_str().unwrap().starts_with("host-carve-"),
        "{carve}"
    );
    assert!(carve["completed_at"].is_string(), "{carve}");
    let id = carve["id"].as_u64().unwrap();
    use base64::Engine;
    let mut whole = Vec::new();
    for block in 0..3 {
        let (status, body) = admin.get(&format!("/carves/{id}/block/{block}")).await;
        assert_eq!(status, 200, "{body}");
        whole.extend(
            base64::engine::general_purpose::STANDARD
                .decode(body["data"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert_eq!(whole, data, "the blocks the API serves make up the carve");
    let (status, _) = admin.get(&format!("/carves/{id}/block/3")).await;
    assert_eq!(status, 400);
    eventually("the assembled path recorded", || {
        let admin = admin.clone();
        let session = report.session_id.clone();
        async move {
            let (_, body) = admin.get(&format!("/carves/{id}")).await;
            body["carve"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("{session}.tar")))
        }
    })
    .await;

    let (status, _) = server.admin_client().get("/carves").await;
    assert_eq!(status, 401, "carves are for signed-in global admins");

    // Bad input gets Fleet's errors.
    for (path, expected) in [
        ("/carves/999999".to_owned(), 404),
        ("/carves/not-a-number".to_owned(), 400),
        (format!("/carves/{id}/block/x"), 400),
        ("/carves?per_page=20000".to_owned(), 400),
    ] {
        let (status, body) = admin.get(&path).await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    // Only global admins, as in Fleet: every other role is refused every carve route.
    let (status, team) = admin.post("/teams", &json!({"name": "carvers"})).await;
    assert_eq!(status, 200, "{team}");
    let team = team["team"]["id"].as_u64().unwrap();
    for (email, roles) in [
        (
            "maintainer@example.com",
            json!({"global_role": "maintainer"}),
        ),
        ("observer@example.com", json!({"global_role": "observer"})),
        (
            "team-admin@example.com",
            json!({"global_role": null, "teams": [{"id": team, "role": "admin"}]}),
        ),
    ] {
        let mut body = json!({"name": email, "email": email, "password": "user-password-1!"});
        body.as_object_mut()
            .unwrap()
            .extend(roles.as_object().unwrap().clone());
        let (status, created) = admin.post("/users/admin", &body).await;
        assert_eq!(status, 200, "{created}");
        let user = server.login(email, "user-password-1!").await;
        for path in [
            "/carves".to_owned(),
            format!("/carves/{id}"),
            format!("/carves/{id}/block/0"),
        ] {
            let (status, body) = user.get(&path).await;
            assert_eq!(status, 403, "{email} {path}: {body}");
        }
    }
}

#[tokio::test]
async fn repeated_blocks_are_tolerated_and_completion_needs_every_block() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-carve-raw", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    let (status, begin) = carve_begin(&server, &key, 2, 4, 6).await;
    assert_eq!(status, 200, "{begin}");
    let session = begin["session_id"].as_str().unwrap().to_owned();
    let request = format!("req-{key}");
    for _ in 0..2 {
        let (status, body) = carve_block(&server, &session, &request, 1, b"ef", None).await;
        assert_eq!((status, body), (200, json!({"success": true})));
    }
    let file = server
        .data_dir
        .join("carves")
        .join(format!("{session}.tar"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!file.exists(), "a repeated block does not count twice");
    let (status, _) = carve_block(&server, &session, "other", 0, b"abcd", None).await;
    assert_eq!(status, 400, "the request id authenticates a block");
    let (status, _) = carve_block(&server, &session, &request, 0, b"abcd", None).await;
    assert_eq!(status, 200);
    assert_eq!(assembled(&server, &session).await, b"abcdef");
    let (status, body) = carve_block(&server, &session, &request, 0, b"abcd", None).await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true})),
        "a block resent after completion is a success"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"abcdef");
}

#[tokio::test]
async fn carve_sessions_are_named_by_session_capped_per_host_and_bound_to_their_host() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--carve-max-sessions-per-host", "2"]);
    // A 200-character hostname and two carves in the same second: each its own file.
    let long = format!("h{}", "x".repeat(199));
    let agent = server.agent(&long, OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let first = agent.carve(b"first carve", 4).await.unwrap();
    let second = agent.carve(b"second carve", 4).await.unwrap();
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(assembled(&server, &first.session_id).await, b"first carve");
    assert_eq!(
        assembled(&server, &second.session_id).await,
        b"second carve"
    );

    // Two carves left open fill this host's quota; another host is not affected.
    let busy = server.agent("host-busy", OsTemplate::Ubuntu);
    let busy_key = busy.enroll().await.unwrap();
    let (_, open) = carve_begin(&server, &busy_key, 2, 4, 8).await;
    let session = open["session_id"].as_str().unwrap().to_owned();
    assert_eq!(carve_begin(&server, &busy_key, 2, 4, 8).await.0, 200);
    let (status, body) = carve_begin(&server, &busy_key, 2, 4, 8).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("in progress"),
        "{body}"
    );
    let other = server.agent("host-other", OsTemplate::Ubuntu);
    let other_key = other.enroll().await.unwrap();
    assert_eq!(carve_begin(&server, &other_key, 1, 4, 4).await.0, 200);

    // A block sent with another host's node key is refused and not stored.
    let request = format!("req-{busy_key}");
    let (status, body) =
        carve_block(&server, &session, &request, 0, b"abcd", Some(&other_key)).await;
    assert_eq!(status, 400, "{body}");
    let admin = server.admin().await;
    let (_, list) = admin.get("/carves").await;
    let carve = list["carves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["session_id"] == session.as_str())
        .unwrap()
        .clone();
    assert_eq!(carve["blocks_received"], 0, "{carve}");
    assert_eq!(
        carve_block(&server, &session, &request, 0, b"abcd", Some(&busy_key))
            .await
            .0,
        200
    );

    // A block of the wrong size fails the carve, and says why.
    let (status, _) = carve_block(&server, &session, &request, 1, b"abc", None).await;
    assert_eq!(status, 400);
    let id = carve["id"].as_u64().unwrap();
    let (_, body) = admin.get(&format!("/carves/{id}")).await;
    assert!(
        body["carve"]["error"]
            .as_str()
            .unwrap()
            .contains("expected 4"),
        "{body}"
    );
    // A failed carve frees its place in the host's quota.
    assert_eq!(carve_begin(&server, &busy_key, 2, 4, 8).await.0, 200);
}

#[tokio::test]
async fn abandoned_carves_expire_and_half_written_files_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--carve-expiry", "1s"];
    let mut server = Server::start_with_admin(dir.path(), &args);
    let agent = server.agent("host-abandons", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    let (_, begin) = carve_begin(&server, &key, 2, 4, 8).await;
    let session = begin["session_id"].as_str().unwrap().to_owned();
    let request = format!("req-{key}");
    assert_eq!(
        carve_block(&server, &session, &request, 0, b"abcd", None)
            .await
            .0,
        200
    );
    server.stop();

    let carves = dir.path().join("carves");
    let stale = carves.join("crashed.part");
    let fresh = carves.join("in-progress.part");
    std::fs::write(&stale, b"left by a crash").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let server = Server::start_with_admin(dir.path(), &args);
    let admin = server.admin().await;
    eventually("the abandoned carve expired", || {
        let admin = admin.clone();
        async move {
            let (_, list) = admin.get("/carves?expired=true").await;
            list["carves"][0]["expired"] == true
        }
    })
    .await;
    let (_, list) = admin.get("/carves?expired=true").await;
    let carve = &list["carves"][0];
    assert!(
        carve["error"].as_str().unwrap().contains("expired"),
        "{carve}"
    );
    let (_, live) = admin.get("/carves").await;
    assert_eq!(
        live["carves"],
        json!([]),
        "expired carves are listed only when asked"
    );
    let id = carve["id"].as_u64().unwrap();
    let (status, body) = admin.get(&format!("/carves/{id}/block/0")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["reason"], "cannot get block for expired carve",
        "{body}"
    );
    let (status, _) = carve_block(&server, &session, &request, 1, b"efgh", None).await;
    assert_eq!(status, 400, "an expired session takes no more blocks");
    assert!(
        !stale.exists(),
        "a half-written file left by a crash is removed"
    );
    assert!(fresh.exists(), "a recent one may still be written");
}

#[tokio::test]
async fn tls_verifies_for_localhost_and_127_0_0_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ca = reqwest::Certificate::from_pem(&server.ca_pem()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    for url in [
        format!("https://localhost:{}/version", server.port()),
        format!("https://127.0.0.1:{}/version", server.port()),
    ] {
        let version: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        assert!(
            version["version"].is_string() && version["revision"].is_string(),
            "{version}"
        );
        assert!(version["build_date"].is_string() && version["rustc"].is_string());
    }
    let health = client
        .get(format!("https://localhost:{}/healthz", server.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        server.banner.contains("--tls_server_certs="),
        "{}",
        server.banner
    );
    assert!(
        server
            .banner
            .contains(&format!("--tls_hostname=localhost:{}", server.port()))
    );
    let _ = SECRET;
}

/// A TLS 1.2 ClientHello that names the server `name` in its SNI extension, as OpenSSL-based
/// clients such as wrk send when given an address.
fn client_hello_naming(name: &str) -> Vec<u8> {
    let name = name.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&[0x00, 0x00]); // server_name
    sni.extend_from_slice(&((name.len() + 5) as u16).to_be_bytes());
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut hello = vec![0x03, 0x03]; // TLS 1.2
    hello.extend_from_slice(&[7; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // ECDHE-RSA-AES128-GCM-SHA256
    hello.extend_from_slice(&[0x01, 0x00]); // no compression
    hello.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    hello.extend_from_slice(&sni);
    let mut handshake = vec![0x01]; // client_hello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Clients that name the server by its IP address are counted, not logged at the default
/// level, so a fleet of them cannot flood the log.
#[tokio::test]
async fn clients_naming_the_server_by_address_are_counted_not_logged() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Server::start_logging_to(&dir.path().join("data"), &["--log-level", "info"], &log);
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(&client_hello_naming("127.0.0.1"))
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    }
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("flotilla_tls_illegal_sni_total 3"),
        "{metrics}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("SNI"), "{logged}");
    assert!(logged.contains("flotilla is serving"), "{logged}");
}

/// A TLS connection to the server that completes its handshake and then sends `bytes`, and
/// whether the server closed it within `within` (rather than keeping it open).
fn closed_after_sending(server: &Server, bytes: &[u8], within: Duration) -> bool {
    use rustls_pki_types::pem::PemObject;
    use std::io::Read;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&server.ca_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream.write_all(bytes).unwrap();
    stream.flush().unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            // A 408 or 400 before the close is a close too.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed() {
    flotilla_loadtest::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--http-first-request-timeout",
            "1s",
            "--http-header-read-timeout",
            "2s",
        ],
    );
    let server = std::sync::Arc::new(server);
    let probe = |bytes: &'static [u8]| {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            closed_after_sending(&server, bytes, Duration::from_secs(8))
        })
    };
    // Nothing after the handshake; half a request's headers; a whole request and then silence.
    assert!(probe(b"").await.unwrap(), "an idle connection stays open");
    assert!(
        probe(b"POST /api/osquery/enroll HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap(),
        "a half-sent request stays open"
    );
    assert!(
        probe(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap(),
        "an idle keep-alive connection stays open"
    );
    let agent = server.agent("host-after-idle", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_sockets_leave_room_to_enroll() {
    flotilla_loadtest::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // Start the server under a soft open-files limit of 256, as many distributions set it.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers; the limit is restored right after.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let low = libc::rlimit {
        rlim_cur: 256.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
    let server = Server::start(dir.path(), &[]);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if limit.rlim_max < 1024 {
        eprintln!(
            "skipped: the hard open-files limit here is {}",
            limit.rlim_max
        );
        return;
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: u64 = open_files
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(soft, limit.rlim_max, "{open_files}");
    // 400 sockets that never say anything, more than the old soft limit.
    let idle: Vec<std::net::TcpStream> = (0..400)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let agent = server.agent("host-among-idle", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let health = server
        .client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(idle);
}

/// The server's peak resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bombs_from_strangers_are_refused_before_they_are_inflated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-bombed", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    // 64 MiB of zeros in a log body: about 64 KiB on the wire.
    let bomb = |node_key: &str| {
        let body = format!(
            "{{\"node_key\":\"{node_key}\",\"log_type\":\"status\",\"data\":[{{\"message\":\"{}\"}}]}}",
            "0".repeat(64 << 20)
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(body.as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    let stranger = bomb("");
    assert!(stranger.len() < 1 << 20);
    let before = peak_rss_kib(&server);
    let client = server.client();
    let url = format!("{}/api/osquery/log", server.url());
    let answers = futures_util::future::join_all((0..16).map(|_| {
        client
            .post(&url)
            .header("Content-Encoding", "gzip")
            .header("Authorization", "NodeKey not-a-node-key")
            .body(stranger.clone())
            .send()
    }))
    .await;
    for answer in answers {
        let body: Value = answer.unwrap().json().await.unwrap();
        assert_eq!(body["node_invalid"], true, "{body}");
    }
    let grown_mib = (peak_rss_kib(&server) - before) / 1024;
    assert!(
        grown_mib < 64,
        "16 bombs grew the server by {grown_mib} MiB"
    );

    // A host's own bomb is inflated (one at a time per permit) and refused as too large.
    let response = client
        .post(&url)
        .header("Content-Encoding", "gzip")
        .header("Authorization", format!("NodeKey {key}"))
        .body(bomb(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    agent.distributed_read().await.unwrap();
}

/// Node keys never reach the disk: the store holds their digests, a key still works across a
/// restart, and a database an older version wrote (keys in plain text) is hashed at start
/// without any agent having to enroll again.
#[tokio::test]
async fn node_keys_are_stored_as_digests_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let agent = server.agent("host-digest", OsTemplate::Ubuntu);
    let key = agent.enroll().await.unwrap();
    agent.distributed_read().await.unwrap();
    assert!(server.stop().success());
    let mut files = vec![dir.path().to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "{} holds the node key",
                path.display()
            );
        }
    }

    // An older version's database: the key in plain text.
    let url = format!("sqlite://{}", dir.path().join("flotilla.db").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT node_key FROM hosts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(stored.starts_with("sha256:"), "{stored}");
    sqlx::query("UPDATE hosts SET node_key = 'a-key-from-before-hashing'")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let server = Server::start(dir.path(), &[]);
    let old = server.agent("host-digest", OsTemplate::Ubuntu);
    old.set_node_key(Some("a-key-from-before-hashing".into()));
    old.distributed_read()
        .await
        .expect("the plain key of before still works");
    assert_eq!(old.stats().enrolls, 0);
    let db = server.database().await;
    let stored: String = sqlx::query_scalar("SELECT node_key FROM hosts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        stored.starts_with("sha256:") && !stored.contains("a-key-from-before"),
        "{stored}"
    );
}

#[tokio::test]
async fn restart_keeps_hosts_keys_and_the_last_check_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--flush-interval", "1h"]);
    let ca_before = server.ca_pem();
    let mut agent = server.agent("host-restart", OsTemplate::MacOs);
    let answers = answerer(&agent);
    assert!(agent.run_distributed_cycle(&answers).await.read_ok);
    let key = agent.node_key().unwrap();

    // Nothing was flushed yet (1 h interval): the graceful stop must write it.
    assert!(server.stop().success());
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(server.ca_pem(), ca_before, "the generated CA is reused");
    assert!(
        server.banner.contains("enrolled hosts: 1"),
        "{}",
        server.banner
    );

    let db = server.database().await;
    let row = sqlx::query(
        "SELECT seen_time, detail_updated_at, platform FROM hosts WHERE osquery_host_id = ?",
    )
    .bind("host-restart")
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(row.get::<i64, _>("seen_time") > 0);
    assert!(
        row.get::<i64, _>("detail_updated_at") > 0,
        "vitals were flushed at shutdown"
    );
    assert_eq!(row.get::<String, _>("platform"), "darwin");

    let mut agent = server.agent("host-restart", OsTemplate::MacOs);
    agent.set_node_key(Some(key.clone()));
    let report = agent.run_distributed_cycle(&answers).await;
    assert!(report.read_ok);
    assert!(
        report.received.is_empty(),
        "details survived the restart: {report:?}"
    );
    assert_eq!(agent.stats().enrolls, 0, "the old key still works");
    assert_eq!(agent.node_key(), Some(key));
    assert!(server.stop().success());
}
