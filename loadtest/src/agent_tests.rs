//! Round-trip tests of `SimAgent` against the plain-HTTP test server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::test_server::{Recorded, TestServer};
use crate::{
    AgentConfig, AgentError, Endpoint, Intervals, LiveQueryProfile, LogType, OsTemplate,
    RetryPolicies, SimAgent, TemplateAnswerer,
};

fn config_for(server: &TestServer) -> AgentConfig {
    let mut c = AgentConfig::new(server.url(), "s3cret", "host-1", OsTemplate::Ubuntu);
    c.retries = RetryPolicies::scaled(Duration::from_millis(1));
    c.request_timeout = Duration::from_secs(5);
    c
}

/// Enroll hands out `k1`, `k2`, …; `node_key_ok` decides which keys are valid elsewhere.
fn fleetish(
    enrolls: Arc<AtomicUsize>,
    node_key_ok: impl Fn(&str) -> bool + Send + Sync + 'static,
    other: impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> (u16, String) + Send + Sync + 'static {
    move |r: &Recorded| {
        if r.path.ends_with("/enroll") {
            if r.body["enroll_secret"] != "s3cret" {
                return (401, r#"{"error":"bad secret","node_invalid":true}"#.into());
            }
            let n = enrolls.fetch_add(1, Ordering::SeqCst) + 1;
            return (200, format!(r#"{{"node_key":"k{n}"}}"#));
        }
        let key = r.body.get("node_key").and_then(Value::as_str).unwrap_or("");
        if !r.path.ends_with("/carve/block") && !node_key_ok(key) {
            return (
                401,
                r#"{"error":"invalid node key","node_invalid":true}"#.into(),
            );
        }
        other(r)
    }
}

#[tokio::test]
async fn node_invalid_triggers_reenroll_and_retry() {
    let enrolls = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(fleetish(
        enrolls.clone(),
        |k| k == "k2",
        |_| (200, r#"{"options":{}}"#.into()),
    ))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    let config = agent.config().await.unwrap();
    assert_eq!(config, json!({"options": {}}));
    assert_eq!(agent.node_key().as_deref(), Some("k2"));
    let paths = server.paths();
    assert_eq!(
        paths,
        vec![
            "/api/v1/osquery/enroll",
            "/api/v1/osquery/config",
            "/api/v1/osquery/enroll",
            "/api/v1/osquery/config"
        ]
    );
    let reqs = server.requests();
    // Enroll: no Authorization, full body, all host_details values strings.
    let enroll = &reqs[0];
    assert_eq!(enroll.header("authorization"), None);
    assert_eq!(enroll.header("user-agent"), Some("osquery/5.23.1"));
    assert_eq!(enroll.header("content-type"), Some("application/json"));
    assert_eq!(enroll.header("accept"), Some("application/json"));
    assert_eq!(enroll.header("accept-encoding"), None);
    assert_eq!(enroll.body["host_identifier"], "host-1");
    assert_eq!(enroll.body["platform_type"], "9");
    assert!(enroll.body["host_details"]["system_info"]["uuid"].is_string());
    assert!(enroll.body["host_details"]["osquery_info"]["pid"].is_string());
    // Config: key in body and header; the retry uses the new key.
    assert_eq!(reqs[1].body, json!({"node_key": "k1"}));
    assert_eq!(reqs[1].header("authorization"), Some("NodeKey k1"));
    assert_eq!(reqs[3].body, json!({"node_key": "k2"}));
    assert_eq!(reqs[3].header("authorization"), Some("NodeKey k2"));
    let stats = agent.stats();
    assert_eq!(stats.enrolls, 2);
    assert_eq!(stats.node_invalid, 1);
    assert_eq!(stats.endpoint(Endpoint::Config).requests, 2);
    assert_eq!(stats.endpoint(Endpoint::Config).errors, 1);
    assert_eq!(stats.hosts_with_node_key, 1);
    // One connection: the start-up thread's.
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn status_code_ignored_and_failures_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let server = TestServer::start(fleetish(
        Arc::new(AtomicUsize::new(0)),
        |_| true,
        move |r| {
            if r.path.ends_with("/log") {
                return (500, String::new()); // empty body: success despite the 500
            }
            c2.fetch_add(1, Ordering::SeqCst);
            (200, "<html>oops</html>".into()) // config: not JSON → failure
        },
    ))
    .await;
    let mut cfg = config_for(&server);
    cfg.send_node_key_header = false;
    let agent = SimAgent::new(cfg).unwrap();
    agent
        .log(LogType::Status, vec![json!({"message": "x"})], false)
        .await
        .unwrap();
    assert!(matches!(
        agent.config().await,
        Err(AgentError::InvalidJson(_))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

/// A server whose first distributed read hands out a live query (discovery `SELECT 1`), a
/// detail query and two label queries, one behind a discovery query that finds nothing, with
/// `accelerate: 30`; whose later reads hand out nothing (with a string `accelerate`); and whose
/// first `failed_writes` distributed writes fail with a 500.
async fn distributed_server(failed_writes: usize) -> TestServer {
    let writes_failing = Arc::new(AtomicUsize::new(failed_writes));
    let reads = Arc::new(AtomicUsize::new(0));
    let (wf, rd) = (writes_failing.clone(), reads.clone());
    TestServer::start(fleetish(Arc::new(AtomicUsize::new(0)), |_| true, move |r| {
        if r.path.ends_with("/distributed/read") {
            if rd.fetch_add(1, Ordering::SeqCst) == 0 {
                return (
                    200,
                    json!({
                        "queries": {
                            "fleet_distributed_query_7": "SELECT * FROM processes",
                            "fleet_detail_query_os_version": "SELECT * FROM os_version LIMIT 1",
                            "fleet_label_query_3": "SELECT 1 FROM os_version WHERE platform = 'windows'",
                            "fleet_label_query_4": "SELECT 1 FROM os_version WHERE platform = 'windows'"
                        },
                        "discovery": {
                            "fleet_distributed_query_7": "SELECT 1",
                            "fleet_label_query_4": "SELECT 1 FROM osquery_registry WHERE name = 'nope'"
                        },
                        "accelerate": 30
                    })
                    .to_string(),
                );
            }
            return (200, r#"{"queries":{},"accelerate":"60"}"#.into());
        }
        if r.path.ends_with("/distributed/write") {
            if wf.load(Ordering::SeqCst) > 0 {
                wf.fetch_sub(1, Ordering::SeqCst);
                return (500, r#"{"error":"database is locked"}"#.into());
            }
            return (200, "{}".into());
        }
        (200, "{}".into())
    }))
    .await
}

#[tokio::test]
async fn distributed_cycle_discovery_write_and_resend() {
    let server = distributed_server(3).await;
    let mut agent = SimAgent::new(config_for(&server)).unwrap();
    let answerer = TemplateAnswerer::new(
        agent.profile().clone(),
        LiveQueryProfile {
            rows_per_result: 2,
            error_prob: 0.0,
            no_result_prob: 0.0,
        },
    );

    let r1 = agent.run_distributed_cycle(&answerer).await;
    assert!(r1.read_ok);
    assert_eq!(r1.skipped, vec!["fleet_label_query_4"]);
    assert_eq!(
        r1.answered,
        vec![
            "fleet_detail_query_os_version",
            "fleet_distributed_query_7",
            "fleet_label_query_3"
        ]
    );
    assert_eq!(r1.accelerate, Some(30));
    assert!(agent.accelerated());
    assert!(r1.write_error.is_some());
    assert_eq!(r1.pending, 3);

    let r2 = agent.run_distributed_cycle(&answerer).await;
    assert!(r2.read_ok && r2.answered.is_empty());
    assert_eq!(r2.accelerate, None, "string accelerate is ignored");
    assert_eq!(r2.written.len(), 3);
    assert!(r2.write_error.is_none());
    assert_eq!(r2.pending, 0);

    // A third cycle with nothing to do sends no write.
    let r3 = agent.run_distributed_cycle(&answerer).await;
    assert!(r3.written.is_empty());

    let writes: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/distributed/write"))
        .collect();
    assert_eq!(writes.len(), 4, "3 failed attempts + 1 resend");
    let body = &writes[3].body;
    assert_eq!(body["node_key"], "k1");
    assert_eq!(
        body["queries"]["fleet_distributed_query_7"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        body["queries"]["fleet_detail_query_os_version"][0]["platform"],
        "ubuntu"
    );
    assert_eq!(body["queries"]["fleet_label_query_3"], json!([]));
    assert_eq!(body["statuses"]["fleet_label_query_3"], 0);
    assert_eq!(body["messages"]["fleet_distributed_query_7"], "");
    assert!(body["stats"]["fleet_distributed_query_7"]["wall_time_ms"].is_u64());
    assert!(body["queries"].get("fleet_label_query_4").is_none());
    // Reads and writes share the distributed thread's single connection; enroll used it too.
    let conns: std::collections::BTreeSet<usize> =
        server.requests().iter().map(|r| r.conn).collect();
    assert_eq!(conns.len(), 1);
}

#[tokio::test]
async fn gzip_logs() {
    let server = TestServer::start(fleetish(
        Arc::new(AtomicUsize::new(0)),
        |_| true,
        |_| (200, "{}".into()),
    ))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    agent.set_node_key(Some("k9".into()));
    let lines = vec![json!({"name": "q", "action": "snapshot", "snapshot": []})];
    agent
        .log(LogType::Result, lines.clone(), true)
        .await
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(
        r.body,
        json!({"node_key": "k9", "log_type": "result", "data": lines})
    );
    assert_eq!(agent.stats().enrolls, 0, "a cached key means no enroll");
}

#[tokio::test]
async fn carve_upload() {
    let server = TestServer::start(fleetish(
        Arc::new(AtomicUsize::new(0)),
        |_| true,
        |r| {
            if r.path.ends_with("/carve/begin") {
                return (200, r#"{"session_id":"sess-1","success":true}"#.into());
            }
            (200, String::new())
        },
    ))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let report = agent.carve(&data, 8192).await.unwrap();
    assert_eq!(report.block_count, 3);
    assert_eq!(report.session_id, "sess-1");
    let reqs = server.requests();
    let begin = reqs
        .iter()
        .find(|r| r.path.ends_with("/carve/begin"))
        .unwrap();
    assert_eq!(begin.body["block_count"], 3);
    assert_eq!(begin.body["block_size"], 8192);
    assert_eq!(begin.body["carve_size"], 20_000);
    assert_eq!(begin.body["node_key"], "k1");
    assert_ne!(begin.body["carve_id"], begin.body["request_id"]);
    let blocks: Vec<&Recorded> = reqs
        .iter()
        .filter(|r| r.path.ends_with("/carve/block"))
        .collect();
    assert_eq!(blocks.len(), 3);
    let mut joined = Vec::new();
    use base64::Engine;
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b.body["block_id"], i);
        assert_eq!(b.body["session_id"], "sess-1");
        assert_eq!(b.body["request_id"], begin.body["request_id"]);
        assert!(b.body.get("node_key").is_none());
        assert_eq!(b.header("authorization"), Some("NodeKey k1"));
        joined.extend(
            base64::engine::general_purpose::STANDARD
                .decode(b.body["data"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert_eq!(joined, data);
}

#[tokio::test]
async fn carve_start_needs_session_id() {
    let server = TestServer::start(fleetish(
        Arc::new(AtomicUsize::new(0)),
        |_| true,
        |_| (200, "{}".into()),
    ))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    assert!(matches!(
        agent.carve(b"abc", 2).await,
        Err(AgentError::Protocol(_))
    ));
    assert_eq!(agent.stats().endpoint(Endpoint::CarveBegin).requests, 3);
}

#[tokio::test]
async fn enrollment_gives_up_after_max_attempts() {
    let server =
        TestServer::start(|_: &Recorded| (200, r#"{"node_invalid":true}"#.to_string())).await;
    let mut cfg = config_for(&server);
    cfg.retries.enroll = cfg.retries.enroll.with_attempts(4);
    let agent = SimAgent::new(cfg).unwrap();
    assert!(matches!(agent.enroll().await, Err(AgentError::Enroll(_))));
    assert_eq!(agent.stats().endpoint(Endpoint::Enroll).requests, 4);
    assert_eq!(agent.node_key(), None);
}

#[tokio::test]
async fn run_follows_startup_order() {
    let reads = Arc::new(AtomicUsize::new(0));
    let rd = reads.clone();
    let server = TestServer::start(fleetish(Arc::new(AtomicUsize::new(0)), |_| true, move |r| {
        if r.path.ends_with("/config") {
            return (
                200,
                json!({
                    "options": {"distributed_interval": 600, "logger_tls_period": 600},
                    "schedule": {"info": {"query": "SELECT version FROM osquery_info", "interval": 1}}
                })
                .to_string(),
            );
        }
        if r.path.ends_with("/distributed/read") {
            rd.fetch_add(1, Ordering::SeqCst);
            return (200, r#"{"queries":{"fleet_detail_query_uptime":"select * from uptime limit 1"}}"#.into());
        }
        (200, "{}".into())
    }))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    let counters = agent.counters();
    let intervals = Intervals {
        distributed: Duration::from_millis(40),
        logger_period: Duration::from_millis(200),
        honor_server_options: false,
        ..Intervals::default()
    };
    let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
    let stats = agent
        .run(
            intervals,
            &answerer,
            tokio::time::sleep(Duration::from_millis(1500)),
        )
        .await;
    let paths = server.paths();
    let p = |s: &str| format!("/api/v1/osquery/{s}");
    assert_eq!(
        paths[..4],
        [p("enroll"), p("config"), p("log"), p("distributed/read")]
    );
    let first_log = &server.requests()[2];
    assert_eq!(first_log.body["log_type"], "status");
    assert!(first_log.body["data"].as_array().unwrap().len() >= 3);
    assert!(
        reads.load(Ordering::SeqCst) >= 5,
        "distributed loop keeps polling"
    );
    assert!(stats.endpoint(Endpoint::DistributedWrite).requests >= 5);
    // The scheduled query (interval 1 s) produced a differential result line.
    let result_logs: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log") && r.body["log_type"] == "result")
        .collect();
    assert!(!result_logs.is_empty(), "paths: {paths:?}");
    assert_eq!(result_logs[0].body["data"][0]["name"], "info");
    assert_eq!(result_logs[0].body["data"][0]["action"], "added");
    assert_eq!(stats.enrolls, 1);
    assert_eq!(counters.snapshot(true).total_errors(), 0);
    // Start-up thread, distributed thread, logger thread.
    assert_eq!(server.connections(), 3);
}

mod tls {
    use super::*;
    use crate::test_server::{OTHER_CA_PEM, TEST_CA_PEM, TlsTestServer};

    fn tls_config(
        server: &TlsTestServer,
        host: &str,
        ca: Option<&[u8]>,
        insecure: bool,
    ) -> AgentConfig {
        let url = format!("https://{host}:{}", server.addr.port());
        let mut c = AgentConfig::new(url, "s3cret", "tls-host", OsTemplate::MacOs);
        c.retries = RetryPolicies::scaled(Duration::from_millis(1));
        c.retries.enroll = c.retries.enroll.with_attempts(1);
        c.ca_pem = ca.map(<[u8]>::to_vec);
        c.insecure = insecure;
        c.resolve = Some((host.to_string(), server.addr));
        c
    }

    fn start() -> TlsTestServer {
        TlsTestServer::start(|r: &Recorded| {
            if r.path.ends_with("/enroll") {
                (200, r#"{"node_key":"tls-key"}"#.into())
            } else {
                (200, "{}".into())
            }
        })
    }

    #[tokio::test]
    async fn verified_against_pinned_ca_with_hostname() {
        let server = start();
        let agent =
            SimAgent::new(tls_config(&server, "localhost", Some(TEST_CA_PEM), false)).unwrap();
        assert_eq!(agent.enroll().await.unwrap(), "tls-key");
        agent.config().await.unwrap();
        let reqs = server.requests();
        assert_eq!(reqs[0].body["platform_type"], "21");
        assert_eq!(reqs[1].header("authorization"), Some("NodeKey tls-key"));
        assert_eq!(
            reqs[0].conn, reqs[1].conn,
            "keep-alive on the start-up connection"
        );
    }

    #[tokio::test]
    async fn unknown_ca_is_rejected() {
        let server = start();
        let agent =
            SimAgent::new(tls_config(&server, "localhost", Some(OTHER_CA_PEM), false)).unwrap();
        assert!(matches!(
            agent.enroll().await,
            Err(AgentError::Enroll(_) | AgentError::Transport(_))
        ));
        assert_eq!(agent.stats().endpoint(Endpoint::Enroll).errors, 1);
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn hostname_is_verified() {
        let server = start();
        let agent = SimAgent::new(tls_config(
            &server,
            "flotilla.invalid",
            Some(TEST_CA_PEM),
            false,
        ))
        .unwrap();
        assert!(agent.enroll().await.is_err());
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn insecure_skips_verification() {
        let server = start();
        let agent = SimAgent::new(tls_config(
            &server,
            "flotilla.invalid",
            Some(OTHER_CA_PEM),
            true,
        ))
        .unwrap();
        assert_eq!(agent.enroll().await.unwrap(), "tls-key");
    }

    #[test]
    fn bad_setup_is_reported() {
        let mut c = AgentConfig::new("ftp://x", "s", "h", OsTemplate::Ubuntu);
        assert!(matches!(
            SimAgent::new(c.clone()),
            Err(AgentError::Setup(_))
        ));
        c.server = "https://localhost:8443".into();
        c.ca_pem = Some(b"not a pem".to_vec());
        assert!(matches!(SimAgent::new(c), Err(AgentError::Setup(_))));
    }
}

#[tokio::test]
async fn pushed_options_apply_only_when_honored() {
    let server = TestServer::start(fleetish(Arc::new(AtomicUsize::new(0)), |_| true, |_| {
        (200, r#"{"options":{"distributed_interval":10,"logger_tls_period":"7","distributed_tls_max_attempts":5}}"#.into())
    }))
    .await;
    let agent = SimAgent::new(config_for(&server)).unwrap();
    agent.config().await.unwrap();
    assert_eq!(agent.intervals().distributed, Duration::from_secs(10));
    assert_eq!(agent.intervals().logger_period, Duration::from_secs(7));
    let agent = SimAgent::new(config_for(&server)).unwrap();
    agent.set_intervals(Intervals {
        honor_server_options: false,
        ..Intervals::default()
    });
    agent.config().await.unwrap();
    assert_eq!(agent.intervals().distributed, Duration::from_secs(60));
}

#[tokio::test]
async fn run_stops_without_node_key() {
    // Enroll answers without a key; everything else says the (empty) key is invalid.
    let server = TestServer::start(|r: &Recorded| {
        if r.path.ends_with("/enroll") {
            (200, "{}".to_string())
        } else {
            (401, r#"{"node_invalid":true}"#.to_string())
        }
    })
    .await;
    let mut cfg = config_for(&server);
    cfg.retries.enroll = cfg.retries.enroll.with_attempts(1);
    let agent = SimAgent::new(cfg).unwrap();
    let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
    let stats = agent
        .run(Intervals::default(), &answerer, std::future::pending())
        .await;
    // Config: 3 attempts, each enrolling once (with an empty key); then the logger's enroll.
    assert_eq!(stats.endpoint(Endpoint::Enroll).requests, 4);
    assert_eq!(stats.endpoint(Endpoint::Config).requests, 3);
    assert_eq!(stats.endpoint(Endpoint::DistributedRead).requests, 0);
    let configs: Vec<Recorded> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/config"))
        .collect();
    assert_eq!(configs[0].body, json!({"node_key": ""}));
    assert_eq!(configs[0].header("authorization"), None);
}

/// A server handing out Fleet's four software queries, each behind Fleet's discovery query, on
/// every distributed read.
async fn software_server() -> TestServer {
    TestServer::start(fleetish(Arc::new(AtomicUsize::new(0)), |_| true, |r| {
        if r.path.ends_with("/distributed/read") {
            let fleet_sql = "WITH cached_users AS (SELECT uid FROM users) SELECT name, version \
                             FROM deb_packages UNION SELECT name, version FROM rpm_packages";
            return (
                200,
                json!({
                    "queries": {
                        "fleet_detail_query_software_linux": fleet_sql,
                        "fleet_detail_query_software_macos": fleet_sql,
                        "fleet_detail_query_software_windows": fleet_sql,
                        "fleet_detail_query_software_vscode_extensions": fleet_sql,
                    },
                    "discovery": {
                        "fleet_detail_query_software_linux": "SELECT 1 FROM os_version WHERE platform NOT IN ('darwin', 'windows', 'chrome', 'freebsd')",
                        "fleet_detail_query_software_macos": "SELECT 1 FROM os_version WHERE platform = 'darwin'",
                        "fleet_detail_query_software_windows": "SELECT 1 FROM os_version WHERE platform = 'windows'",
                        "fleet_detail_query_software_vscode_extensions": "SELECT 1 FROM osquery_registry WHERE active = true AND registry = 'table' AND name = 'vscode_extensions'",
                    }
                })
                .to_string(),
            );
        }
        (200, "{}".into())
    }))
    .await
}

fn last_write(server: &TestServer) -> Value {
    server
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/distributed/write"))
        .expect("a distributed write")
        .body
}

#[tokio::test]
async fn hosts_send_their_software_to_fleets_software_queries() {
    let server = software_server().await;
    let mut agent = SimAgent::new(config_for(&server)).unwrap();
    let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
    let report = agent.run_distributed_cycle(&answerer).await;
    assert_eq!(
        report.answered,
        vec![
            "fleet_detail_query_software_linux",
            "fleet_detail_query_software_vscode_extensions"
        ]
    );
    let body = last_write(&server);
    let rows = body["queries"]["fleet_detail_query_software_linux"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 400);
    assert_eq!(body["statuses"]["fleet_detail_query_software_linux"], 0);
    assert!(
        rows.iter()
            .any(|r| r["name"] == "openssl" && r["source"] == "deb_packages")
    );
    let vscode = body["queries"]["fleet_detail_query_software_vscode_extensions"]
        .as_array()
        .unwrap();
    assert!(vscode.iter().all(|r| r["source"] == "vscode_extensions"));

    // The next round sends the same list.
    agent.run_distributed_cycle(&answerer).await;
    assert_eq!(
        last_write(&server)["queries"]["fleet_detail_query_software_linux"],
        body["queries"]["fleet_detail_query_software_linux"]
    );

    // A Rocky host runs the Linux query too, but has no vscode_extensions table.
    let mut cfg = config_for(&server);
    cfg.template = OsTemplate::Rocky;
    let mut rocky = SimAgent::new(cfg).unwrap();
    let answerer = TemplateAnswerer::new(rocky.profile().clone(), LiveQueryProfile::default());
    let report = rocky.run_distributed_cycle(&answerer).await;
    assert_eq!(report.answered, vec!["fleet_detail_query_software_linux"]);
    let rows = last_write(&server)["queries"]["fleet_detail_query_software_linux"].clone();
    let openssl = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "rpm_packages" && r["name"] == "openssl")
        .cloned()
        .expect("Rocky hosts have openssl");
    assert!(openssl["release"] == "24.el9" || openssl["release"] == "27.el9");
}

#[tokio::test]
async fn a_failing_software_query_is_written_with_status_1() {
    let server = software_server().await;
    let mut agent = SimAgent::new(config_for(&server)).unwrap();
    let software = crate::Software::new(crate::SoftwareOptions {
        fail_prob: 1.0,
        ..crate::SoftwareOptions::default()
    });
    let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default())
        .with_software(Arc::new(software));
    agent.run_distributed_cycle(&answerer).await;
    let body = last_write(&server);
    assert_eq!(body["statuses"]["fleet_detail_query_software_linux"], 1);
    assert_eq!(
        body["messages"]["fleet_detail_query_software_linux"],
        crate::software::SOFTWARE_QUERY_ERROR
    );
    assert_eq!(
        body["queries"]["fleet_detail_query_software_linux"],
        json!([])
    );
}
