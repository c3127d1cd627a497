//! Scheduled queries, agent options, log destinations, query reports and specs, end to end:
//! the real `flotilla serve`, an admin client, simulated osqueryd agents, and a real HTTP
//! receiver for the webhook log destination, and a real Kafka broker for the kafka destination
//! when `FLOTILLA_TEST_KAFKA` names one (`host:port`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_loadtest::{LogType, OsTemplate, SimAgent};
use flotilla_tests::{AdminClient, Server, result_line};
use serde_json::{Value, json};

/// Polls until `check` holds, for effects that land asynchronously (a flush, a delivery).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn create_query(admin: &AdminClient, body: Value) -> u64 {
    let (status, created) = admin.post("/queries", &body).await;
    assert_eq!(status, 200, "{created}");
    created["query"]["id"].as_u64().unwrap()
}

async fn create_team(admin: &AdminClient, name: &str) -> (u64, String) {
    let (status, team) = admin.post("/teams", &json!({ "name": name })).await;
    assert_eq!(status, 200, "{team}");
    let id = team["team"]["id"].as_u64().unwrap();
    let secret = team["team"]["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, secret)
}

async fn host_id(admin: &AdminClient, identifier: &str) -> u64 {
    let (status, host) = admin.get(&format!("/hosts/identifier/{identifier}")).await;
    assert_eq!(status, 200, "{host}");
    host["host"]["id"].as_u64().unwrap()
}

fn fleet_default_options() -> Value {
    json!({
        "pack_delimiter": "/",
        "logger_tls_period": 10,
        "distributed_plugin": "tls",
        "disable_distributed": false,
        "logger_tls_endpoint": "/api/osquery/log",
        "distributed_interval": 10,
        "distributed_tls_max_attempts": 3
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_pull_global_and_team_packs_with_their_teams_options() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (team, team_secret) = create_team(&admin, "Engineering").await;

    let usb = create_query(
        &admin,
        json!({"name": "usb", "query": "SELECT * FROM usb_devices;", "interval": 3600}),
    )
    .await;
    create_query(
        &admin,
        json!({"name": "procs", "query": "SELECT pid FROM processes;", "interval": 60,
               "logging": "differential", "automations_enabled": true,
               "platform": "linux,darwin", "min_osquery_version": "5.4.0"}),
    )
    .await;
    // Not sent: no interval, or nothing consumes the results.
    create_query(&admin, json!({"name": "adhoc", "query": "SELECT 1;"})).await;
    create_query(
        &admin,
        json!({"name": "unused", "query": "SELECT 2;", "interval": 60, "logging": "differential"}),
    )
    .await;
    create_query(
        &admin,
        json!({"name": "team users", "query": "SELECT * FROM users;", "interval": 300,
               "team_id": team, "logging": "differential_ignore_removals",
               "automations_enabled": true}),
    )
    .await;
    let team_options = json!({
        "config": {
            "options": {"pack_delimiter": "/", "distributed_interval": 5, "logger_tls_period": 7},
            "decorators": {"load": ["SELECT uuid AS host_uuid FROM system_info;"]}
        },
        "overrides": {},
        "command_line_flags": {"verbose": true}
    });
    let (status, body) = admin
        .post(&format!("/teams/{team}/agent_options"), &team_options)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["team"]["agent_options"], team_options);

    let global_host = server.agent("global-host", OsTemplate::Ubuntu);
    let team_host = server.agent_with_secret("team-host", OsTemplate::Ubuntu, &team_secret);
    let global_config = global_host.config().await.unwrap();
    let team_config = team_host.config().await.unwrap();

    let global_pack = json!({"queries": {
        "procs": {"query": "SELECT pid FROM processes;", "interval": 60,
                  "platform": "linux,darwin", "version": "5.4.0", "removed": true},
        "usb": {"query": "SELECT * FROM usb_devices;", "interval": 3600,
                "platform": "", "version": "", "snapshot": true},
    }});
    assert_eq!(
        global_config,
        json!({
            "options": fleet_default_options(),
            "decorators": {"load": ["SELECT uuid AS host_uuid FROM system_info;",
                                    "SELECT hostname AS hostname FROM system_info;"]},
            "packs": {"Global": global_pack},
        })
    );
    assert_eq!(
        team_config,
        json!({
            "options": team_options["config"]["options"],
            "decorators": team_options["config"]["decorators"],
            "packs": {
                "Global": global_pack,
                format!("team-{team}"): {"queries": {
                    "team users": {"query": "SELECT * FROM users;", "interval": 300,
                                   "platform": "", "version": "", "removed": false},
                }},
            },
        })
    );

    // A change to one global query changes that entry of the next pull, and nothing else.
    let (status, body) = admin
        .patch(&format!("/queries/{usb}"), &json!({"interval": 600}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut expected = team_config.clone();
    expected["packs"]["Global"]["queries"]["usb"]["interval"] = json!(600);
    assert_eq!(team_host.config().await.unwrap(), expected);
    let mut expected = global_config.clone();
    expected["packs"]["Global"]["queries"]["usb"]["interval"] = json!(600);
    assert_eq!(global_host.config().await.unwrap(), expected);

    // Global options: an unknown option is refused in Fleet's error shape, and nothing changes.
    let (status, config) = admin.get("/config").await;
    assert_eq!(status, 200, "{config}");
    let mut options = config["agent_options"].clone();
    assert_eq!(options["config"]["options"], fleet_default_options());
    options["config"]["options"]["no_such_flag"] = json!(1);
    let (status, body) = admin
        .patch("/config", &json!({ "agent_options": options }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["message"], "Validation Failed");
    assert_eq!(body["errors"][0]["name"], "agent_options");
    let reason = body["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no_such_flag"), "{reason}");
    let mut misplaced = config["agent_options"].clone();
    misplaced["config"]["distributed_interval"] = json!(3);
    let (status, body) = admin
        .patch("/config", &json!({ "agent_options": misplaced }))
        .await;
    assert_eq!(status, 422);
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("should be part of the \"config.options\" object"),
        "{body}"
    );
    assert_eq!(global_host.config().await.unwrap(), expected);

    // A dry run checks without saving; force stores what validation refuses.
    let mut valid = config["agent_options"].clone();
    valid["config"]["options"]["distributed_interval"] = json!(20);
    let (status, _) = admin
        .patch("/config?dry_run=true", &json!({ "agent_options": valid }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(global_host.config().await.unwrap(), expected);
    let (status, body) = admin
        .patch("/config?force=true", &json!({ "agent_options": options }))
        .await;
    assert_eq!(status, 200, "{body}");
    let forced = global_host.config().await.unwrap();
    assert_eq!(forced["options"]["no_such_flag"], 1);
    assert_eq!(forced["packs"], expected["packs"]);
    // The team's own options still win for its hosts.
    assert_eq!(
        team_host.config().await.unwrap()["options"],
        team_options["config"]["options"]
    );

    // Through the team modify endpoint: null gives the team's hosts the global options again.
    let (status, body) = admin
        .patch(&format!("/teams/{team}"), &json!({"agent_options": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["team"]["agent_options"].is_null());
    assert_eq!(
        team_host.config().await.unwrap()["options"],
        forced["options"]
    );
}

/// A webhook receiver: every line of every POSTed JSON array, in arrival order.
struct Receiver {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start(addr: SocketAddr, lines: Arc<Mutex<Vec<Value>>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = lines;
        let app = axum::Router::new().route(
            "/results",
            axum::routing::post(move |axum::Json(batch): axum::Json<Vec<Value>>| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().extend(batch);
                    "ok"
                }
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_results_reach_the_webhook_across_a_receiver_outage() {
    flotilla_loadtest::install_crypto_provider();
    let received = Arc::new(Mutex::new(Vec::new()));
    let mut receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), received.clone()).await;
    let url = format!("http://{}/results", receiver.addr);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        dir.path(),
        &[
            "--osquery-result-log-plugin",
            "webhook",
            "--osquery-result-log-webhook-url",
            &url,
            "--osquery-log-batch-lines",
            "7",
        ],
    );
    let admin = server.admin().await;
    create_query(
        &admin,
        json!({"name": "procs", "query": "SELECT pid FROM processes;", "interval": 60,
               "logging": "differential", "automations_enabled": true}),
    )
    .await;
    // Known, automations off: its results fill no log (Fleet's rule).
    create_query(
        &admin,
        json!({"name": "quiet", "query": "SELECT 1;", "interval": 60}),
    )
    .await;
    let agent: SimAgent = server.agent("webhook-host", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();

    let mut sent = Vec::new();
    let mut next = 0u64;
    let mut send_round = async |agent: &SimAgent, sent: &mut Vec<u64>| {
        let mut lines = Vec::new();
        for _ in 0..10 {
            lines.push(result_line("webhook-host", "pack/Global/procs", next));
            sent.push(next);
            next += 1;
        }
        // A local schedule's result (unknown to the server) goes to the log as well.
        lines.push(result_line(
            "webhook-host",
            "local_schedule",
            1_000_000 + next,
        ));
        sent.push(1_000_000 + next);
        lines.push(result_line(
            "webhook-host",
            "pack/Global/quiet",
            2_000_000 + next,
        ));
        agent.log(LogType::Result, lines, false).await.unwrap();
    };
    for _ in 0..3 {
        send_round(&agent, &mut sent).await;
    }
    let expected = sent.len();
    eventually("first rounds delivered", || {
        let received = received.clone();
        async move { received.lock().unwrap().len() >= expected }
    })
    .await;

    // The receiver goes away; osquery's posts are still accepted (spooled), none lost.
    let addr = receiver.addr;
    receiver.stop().await;
    for _ in 0..4 {
        send_round(&agent, &mut sent).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut receiver = Receiver::start(addr, received.clone()).await;
    for _ in 0..2 {
        send_round(&agent, &mut sent).await;
    }
    let expected = sent.len();
    eventually("every line delivered after the outage", || {
        let received = received.clone();
        async move {
            let lines = received.lock().unwrap();
            let seqs: std::collections::HashSet<u64> = lines
                .iter()
                .map(|l| l["columns"]["seq"].as_str().unwrap().parse().unwrap())
                .collect();
            seqs.len() >= expected
        }
    })
    .await;
    receiver.stop().await;

    let lines = received.lock().unwrap().clone();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for line in &lines {
        assert_ne!(
            line["name"], "pack/Global/quiet",
            "automations off: not logged"
        );
        let seq = line["columns"]["seq"].as_str().unwrap().parse().unwrap();
        *counts.entry(seq).or_default() += 1;
    }
    let mut want = sent.clone();
    want.sort_unstable();
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        want,
        "nothing lost"
    );
    // At least once: a batch is resent only if its answer was lost, which a graceful receiver
    // shutdown does not do; allow at most one resent batch (7 lines) all the same.
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert!(duplicates <= 7, "{duplicates} duplicate lines");
    // Status logs kept their own destination: the default files.
    agent
        .log(
            LogType::Status,
            vec![json!({"hostIdentifier": "webhook-host", "severity": 0, "message": "hello"})],
            false,
        )
        .await
        .unwrap();
    let status = std::fs::read_to_string(dir.path().join("logs/status.log")).unwrap();
    assert!(status.contains("\"hello\""), "{status}");
    assert!(!dir.path().join("logs/result.log").exists());

    // An SRE sees the outage and its recovery: retries counted, nothing left in the spool.
    let metrics = server.metrics_text().await;
    let sample = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{metrics}"))
    };
    let labels = r#"{log="result",destination="webhook"}"#;
    assert!(sample(&format!("flotilla_log_lines_delivered_total{labels}")) >= expected as f64);
    assert!(sample(&format!("flotilla_log_delivery_failures_total{labels}")) >= 1.0);
    assert_eq!(sample(&format!("flotilla_log_spool_bytes{labels}")), 0.0);
    assert_eq!(
        sample(&format!("flotilla_log_lines_rejected_total{labels}")),
        0.0
    );
}

/// Every record of `topic` on the broker, as JSON, from all its partitions.
async fn kafka_records(client: &rskafka::client::Client, topic: &str) -> Vec<Value> {
    use rskafka::client::partition::UnknownTopicHandling;
    let mut values = Vec::new();
    for partition in 0..2 {
        let partition = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let mut offset = 0;
        loop {
            let (records, high_watermark) = partition
                .fetch_records(offset, 1..1_000_000, 100)
                .await
                .unwrap();
            for record in &records {
                let value = record.record.value.as_deref().unwrap();
                values.push(serde_json::from_slice(value).unwrap());
                offset = record.offset + 1;
            }
            if records.is_empty() || offset >= high_watermark {
                break;
            }
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_results_reach_kafka_once_the_topic_exists() {
    let Ok(broker) = std::env::var("FLOTILLA_TEST_KAFKA") else {
        eprintln!("skipped: set FLOTILLA_TEST_KAFKA=host:port to test the kafka destination");
        return;
    };
    flotilla_loadtest::install_crypto_provider();
    let topic = format!("flotilla-results-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        dir.path(),
        &[
            "--osquery-result-log-plugin",
            "kafka",
            "--kafka-brokers",
            &broker,
            "--osquery-result-log-kafka-topic",
            &topic,
            "--osquery-log-batch-lines",
            "7",
        ],
    );
    let admin = server.admin().await;
    create_query(
        &admin,
        json!({"name": "procs", "query": "SELECT pid FROM processes;", "interval": 60,
               "logging": "differential", "automations_enabled": true}),
    )
    .await;
    let agent: SimAgent = server.agent("kafka-host", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let mut sent = Vec::new();
    let mut send_round = async |seqs: std::ops::Range<u64>| {
        let lines: Vec<Value> = seqs
            .map(|seq| {
                sent.push(seq);
                result_line("kafka-host", "pack/Global/procs", seq)
            })
            .collect();
        agent.log(LogType::Result, lines, false).await.unwrap();
    };
    // The topic does not exist yet: osquery's posts are accepted and the lines wait.
    send_round(0..20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = rskafka::client::ClientBuilder::new(vec![broker.clone()])
        .build()
        .await
        .expect("connecting to FLOTILLA_TEST_KAFKA");
    client
        .controller_client()
        .unwrap()
        .create_topic(&topic, 2, 1, 5_000)
        .await
        .unwrap();
    send_round(20..50).await;

    eventually("every line produced to the topic", || {
        let client = &client;
        let topic = &topic;
        async move {
            let seqs: std::collections::HashSet<String> = kafka_records(client, topic)
                .await
                .iter()
                .map(|l| l["columns"]["seq"].as_str().unwrap().to_owned())
                .collect();
            seqs.len() >= 50
        }
    })
    .await;
    let records = kafka_records(&client, &topic).await;
    for record in &records {
        assert_eq!(record["name"], "pack/Global/procs");
        assert_eq!(
            record["unixTime"],
            1_785_837_600 + record["counter"].as_u64().unwrap()
        );
    }
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains(r#"flotilla_log_spool_bytes{log="result",destination="kafka"} 0"#),
        "{metrics}"
    );
}

fn snapshot(name: &str, rows: usize, tag: &str, time: u64) -> Value {
    let rows: Vec<Value> = (0..rows)
        .map(|i| json!({"row": i.to_string(), "tag": tag}))
        .collect();
    json!({"name": name, "hostIdentifier": tag, "unixTime": time, "epoch": 0, "counter": 0,
           "numerics": false, "action": "snapshot", "snapshot": rows})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_reports_keep_the_latest_snapshot_per_host_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let query = create_query(
        &admin,
        json!({"name": "usb", "query": "SELECT * FROM usb_devices;", "interval": 60}),
    )
    .await;
    let agents: Vec<SimAgent> = (0..3)
        .map(|i| server.agent(&format!("report-{i}"), OsTemplate::Ubuntu))
        .collect();
    for agent in &agents {
        agent.enroll().await.unwrap();
    }
    let first = host_id(&admin, "report-0").await;

    // A newer answer replaces the host's rows; event-format lines are gathered into one.
    agents[0]
        .log(
            LogType::Result,
            vec![snapshot("pack/Global/usb", 5, "old", 1)],
            false,
        )
        .await
        .unwrap();
    let events: Vec<Value> = (0..3)
        .map(|i| {
            json!({"name": "pack/Global/usb", "unixTime": 2, "action": "snapshot",
                        "columns": {"row": i.to_string(), "tag": "events"}})
        })
        .collect();
    agents[1].log(LogType::Result, events, false).await.unwrap();
    agents[0]
        .log(
            LogType::Result,
            vec![
                snapshot("pack/Global/usb", 400, "stale", 3),
                snapshot("pack/Global/usb", 400, "new", 4),
            ],
            false,
        )
        .await
        .unwrap();
    let (status, host_report) = admin.get(&format!("/hosts/{first}/queries/{query}")).await;
    assert_eq!(status, 200, "{host_report}");
    let rows = host_report["results"].as_array().unwrap();
    assert_eq!(rows.len(), 400);
    assert!(rows.iter().all(|r| r["columns"]["tag"] == "new"));
    assert_eq!(host_report["report_clipped"], false);
    let (_, report) = admin.get(&format!("/queries/{query}/report")).await;
    assert_eq!(report["results"].as_array().unwrap().len(), 403);

    // 403 + 700 > 1,000: the third host's rows are cut at the cap, and the report says so.
    agents[2]
        .log(
            LogType::Result,
            vec![snapshot("pack/Global/usb", 700, "big", 5)],
            false,
        )
        .await
        .unwrap();
    let (_, report) = admin.get(&format!("/queries/{query}/report")).await;
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!(report["report_clipped"], true);
    assert_eq!(
        results
            .iter()
            .filter(|r| r["columns"]["tag"] == "big")
            .count(),
        597
    );
    assert!(
        results
            .iter()
            .all(|r| r["host_name"].is_string() && r["last_fetched"].is_string())
    );

    // Reports survive a restart (they are flushed in batches and at shutdown).
    server.stop();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (_, report) = admin.get(&format!("/queries/{query}/report")).await;
    assert_eq!(report["results"].as_array().unwrap().len(), 1000);

    // Changing the SQL drops the report, as in Fleet.
    let (status, _) = admin
        .patch(&format!("/queries/{query}"), &json!({"query": "SELECT 1;"}))
        .await;
    assert_eq!(status, 200);
    let (_, report) = admin.get(&format!("/queries/{query}/report")).await;
    assert_eq!(report["results"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_round_trip_and_reach_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;

    let ops_options = json!({"config": {"options": {"distributed_interval": 7}}});
    let teams = json!({"specs": [
        {"name": "Ops", "agent_options": ops_options, "secrets": [{"secret": "ops-secret"}]}
    ]});
    let (status, body) = admin.post("/spec/teams?dry_run=true", &teams).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["team_ids_by_name"]["Ops"],
        Value::Null,
        "a dry run creates nothing"
    );
    let (status, body) = admin.post("/spec/teams", &teams).await;
    assert_eq!(status, 200, "{body}");
    let ops = body["team_ids_by_name"]["Ops"].as_u64().unwrap();
    let bad =
        json!({"specs": [{"name": "Ops", "agent_options": {"config": {"options": {"bogus": 1}}}}]});
    let (status, body) = admin.post("/spec/teams", &bad).await;
    assert_eq!(status, 422, "{body}");

    let queries = json!({"specs": [
        {"name": "uptime", "description": "how long", "query": "SELECT * FROM uptime;",
         "team": "", "interval": 60, "observer_can_run": true, "platform": "",
         "min_osquery_version": "", "automations_enabled": false, "logging": "snapshot",
         "discard_data": false},
        {"name": "ops procs", "description": "", "query": "SELECT pid FROM processes;",
         "team": "Ops", "interval": 120, "observer_can_run": false, "platform": "linux",
         "min_osquery_version": "5.0.0", "automations_enabled": true,
         "logging": "differential", "discard_data": true},
    ]});
    let (status, body) = admin.post("/spec/queries", &queries).await;
    assert_eq!(status, 200, "{body}");
    let (_, global) = admin.get("/spec/queries").await;
    assert_eq!(global["specs"], json!([queries["specs"][0]]));
    let (_, team) = admin.get(&format!("/spec/queries?team_id={ops}")).await;
    assert_eq!(team["specs"], json!([queries["specs"][1]]));
    let (_, one) = admin.get("/spec/queries/uptime").await;
    assert_eq!(one["specs"], queries["specs"][0]);
    // Applying again with a field omitted resets it.
    let (status, _) = admin
        .post(
            "/spec/queries",
            &json!({"specs": [{"name": "uptime", "query": "SELECT 2;"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, one) = admin.get("/spec/queries/uptime").await;
    assert_eq!(one["specs"]["interval"], 0);
    assert_eq!(one["specs"]["description"], "");
    let (status, body) = admin.post("/spec/queries", &queries).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .post(
            "/spec/queries",
            &json!({"specs": [{"name": "x", "query": "SELECT 1;", "team": "Nope"}]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let labels = json!({"specs": [
        {"name": "Has uptime", "description": "d", "query": "SELECT 1 FROM uptime;",
         "platform": "", "label_membership_type": "dynamic"},
        {"name": "Pets", "description": "manual", "query": "", "platform": "",
         "label_membership_type": "manual", "hosts": []},
    ]});
    let (status, body) = admin.post("/spec/labels", &labels).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = admin.get("/spec/labels/Has uptime").await;
    for key in [
        "name",
        "description",
        "query",
        "platform",
        "label_membership_type",
    ] {
        assert_eq!(got["specs"][key], labels["specs"][0][key], "{key}");
    }
    let (_, all) = admin.get("/spec/labels").await;
    let pets = all["specs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Pets")
        .unwrap();
    assert_eq!(pets["hosts"], json!([]));
    let (status, body) = admin
        .post(
            "/spec/labels",
            &json!({"specs": [{"name": "All Hosts", "query": "SELECT 2;"}]}),
        )
        .await;
    assert_eq!(status, 422, "builtin: {body}");

    let (status, _) = admin
        .post(
            "/spec/enroll_secret",
            &json!({"spec": {"secrets": [{"secret": "global-2"}]}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, secrets) = admin.get("/spec/enroll_secret").await;
    assert_eq!(secrets["spec"]["secrets"][0]["secret"], "global-2");

    // kind: config.
    let mut agent_options = flotilla_default_agent_options(&admin).await;
    agent_options["config"]["options"]["distributed_interval"] = json!(15);
    let config = json!({"org_info": {"org_name": "Acme"}, "agent_options": agent_options});
    let (status, body) = admin.patch("/config", &config).await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = admin.get("/config").await;
    assert_eq!(got["org_info"]["org_name"], "Acme");
    assert_eq!(got["agent_options"], agent_options);
    let (_, got) = admin.get("/spec/teams").await;
    assert_eq!(got["specs"][0]["agent_options"], ops_options);
    assert_eq!(
        got["specs"][0]["secrets"],
        json!([{"secret": "ops-secret"}])
    );

    // What was applied is what hosts get.
    let ops_host = server.agent_with_secret("ops-host", OsTemplate::Ubuntu, "ops-secret");
    let ops_config = ops_host.config().await.unwrap();
    assert_eq!(ops_config["options"], json!({"distributed_interval": 7}));
    assert_eq!(
        ops_config["packs"]["Global"]["queries"]["uptime"]["interval"],
        60
    );
    // discard_data with automations: still scheduled, as Fleet does.
    assert_eq!(
        ops_config["packs"][format!("team-{ops}")]["queries"]["ops procs"]["removed"],
        true
    );
    let global_host = server.agent_with_secret("plain-host", OsTemplate::Ubuntu, "global-2");
    let global_config = global_host.config().await.unwrap();
    assert_eq!(global_config["options"]["distributed_interval"], 15);
    assert_eq!(
        global_config["packs"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["Global"]
    );
}

async fn flotilla_default_agent_options(admin: &AdminClient) -> Value {
    let (status, config) = admin.get("/config").await;
    assert_eq!(status, 200, "{config}");
    config["agent_options"].clone()
}
