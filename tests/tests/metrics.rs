//! Observability end to end: `/metrics` as Prometheus reads it (checked by `promtool`), the
//! counters moving as hosts enroll, check in and answer a live query, basic auth on
//! `/metrics`, `/healthz` and `/readyz`, the alert rules in `deploy/`, and logs that never
//! carry a credential.
//!
//! `promtool` comes with Debian's `prometheus` package; these tests fail, saying so, when it is
//! not installed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{ADMIN_PASSWORD, SECRET, Server};
use serde_json::json;

const PROM_USER: &str = "prometheus";
const PROM_PASSWORD: &str = "scrape-password-7";

fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    found.expect(
        "promtool is not on PATH: install Debian's `prometheus` package (apt-get install -y prometheus)",
    )
}

/// Runs `promtool` with `args`, feeding `stdin`; returns whether it passed and what it said.
fn run_promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Every sample in a text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in /metrics"))
}

async fn scrape(server: &Server, credentials: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = server.client().get(format!("{}/metrics", server.url()));
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    request.send().await.expect("GET /metrics")
}

async fn metrics_text(server: &Server) -> String {
    let response = scrape(server, Some((PROM_USER, PROM_PASSWORD))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

fn start_server(dir: &Path) -> Server {
    Server::start_with_admin(
        dir,
        &[
            "--prometheus-username",
            PROM_USER,
            "--prometheus-password",
            PROM_PASSWORD,
        ],
    )
}

/// A distributed read with a node key the server does not know: `node_invalid`.
async fn unknown_node_key_read(server: &Server, key: &str) {
    let response = server
        .client()
        .post(format!("{}/api/osquery/distributed/read", server.url()))
        .json(&json!({ "node_key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["node_invalid"], true);
}

/// Enrolls an agent and runs its first check-in cycle (read, write of the detail answers).
async fn enrolled_agent(server: &Server, name: &str, template: OsTemplate) -> SimAgent {
    let mut agent = server.agent(name, template);
    let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
    assert!(agent.run_distributed_cycle(&answerer).await.read_ok);
    agent
}

/// Runs a live query on every host and watches it to the end over the websocket; the agents
/// check in until it finishes. Returns the websocket's messages.
async fn run_campaign(
    server: &Server,
    token: &str,
    agents: &mut [SimAgent],
) -> Vec<serde_json::Value> {
    let admin = server.admin_client().with_token(token);
    let ids: Vec<u64> = {
        let (status, body) = admin.get("/hosts").await;
        assert_eq!(status, 200, "{body}");
        body["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect()
    };
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"hosts": ids}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let campaign = body["campaign"]["id"].as_u64().unwrap();
    let mut socket = server.results_socket().await;
    socket.send("auth", json!({"token": token})).await;
    socket
        .send("select_campaign", json!({"campaign_id": campaign}))
        .await;
    let profile = LiveQueryProfile {
        rows_per_result: 1,
        error_prob: 0.0,
        no_result_prob: 0.0,
    };
    for agent in agents.iter_mut() {
        let answerer = TemplateAnswerer::new(agent.profile().clone(), profile);
        let report = agent.run_distributed_cycle(&answerer).await;
        assert!(
            report
                .written
                .iter()
                .any(|n| n == &format!("fleet_distributed_query_{campaign}")),
            "the agent answered the live query: {:?}",
            report.written
        );
    }
    socket.until_closed().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_what_the_fleet_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());

    // Before anything happens the exposition is already valid, zeros included.
    let (ok, said) = run_promtool(&["check", "metrics"], Some(&metrics_text(&server).await));
    assert!(ok, "promtool check metrics on a fresh server: {said}");

    let mut agents = vec![
        enrolled_agent(&server, "metrics-ubuntu", OsTemplate::Ubuntu).await,
        enrolled_agent(&server, "metrics-mac", OsTemplate::MacOs).await,
    ];
    // An agent whose node key the server does not know is told node_invalid.
    unknown_node_key_read(&server, "not-a-node-key").await;

    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let messages = run_campaign(&server, &token, &mut agents).await;
    let results = messages.iter().filter(|m| m["type"] == "result").count();
    assert_eq!(results, 2, "{messages:?}");
    // A page that does not exist: counted under the fixed `unmatched` handler.
    let response = server
        .client()
        .get(format!("{}/no/such/page/12345", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let text = metrics_text(&server).await;
    let (ok, said) = run_promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok,
        "promtool check metrics after a scenario: {said}\n{text}"
    );
    let s = samples(&text);

    // Hosts.
    assert_eq!(
        sample(&s, r#"flotilla_host_enrollments_total{kind="new"}"#),
        2.0
    );
    let enrolled: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("flotilla_hosts_enrolled{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(enrolled, 2.0, "{text}");
    let online: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("flotilla_hosts_online{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(online, 2.0, "{text}");
    assert!(
        sample(
            &s,
            r#"flotilla_osquery_requests_total{endpoint="distributed/read"}"#
        ) >= 4.0
    );
    assert_eq!(
        sample(&s, r#"flotilla_osquery_requests_total{endpoint="enroll"}"#),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            r#"flotilla_osquery_node_invalid_total{endpoint="distributed/read"}"#
        ),
        1.0
    );

    // HTTP, by route template: never a raw path.
    assert_eq!(
        sample(
            &s,
            r#"http_requests_total{handler="/api/v1/osquery/enroll",method="post",code="200"}"#
        ),
        2.0
    );
    assert!(
        s.keys().any(|k| k.starts_with("http_requests_total{")
            && k.contains(r#"handler="/api/latest/fleet/queries/run""#)),
        "{text}"
    );
    assert_eq!(
        sample(
            &s,
            r#"http_requests_total{handler="unmatched",method="get",code="404"}"#
        ),
        1.0
    );
    assert!(!text.contains("12345"), "a raw path leaked into a label");
    assert!(
        sample(
            &s,
            r#"http_request_duration_seconds_count{handler="/api/v1/osquery/distributed/read"}"#
        ) >= 4.0
    );

    // Campaigns: one started, finished because everyone answered, two answers, none lost.
    assert_eq!(sample(&s, "flotilla_campaigns_started_total"), 1.0);
    assert_eq!(
        sample(
            &s,
            r#"flotilla_campaigns_finished_total{reason="all_answered"}"#
        ),
        1.0
    );
    assert_eq!(sample(&s, "flotilla_campaign_targets_enqueued_total"), 2.0);
    assert_eq!(sample(&s, "flotilla_campaign_results_routed_total"), 2.0);
    assert_eq!(sample(&s, "flotilla_campaign_results_dropped_total"), 0.0);
    assert_eq!(sample(&s, "flotilla_campaigns_active"), 0.0);

    // Store, relay and process families are there from the start.
    assert_eq!(
        sample(&s, r#"flotilla_store_errors_total{operation="flush"}"#),
        0.0
    );
    assert!(s.contains_key("flotilla_store_flush_duration_seconds_count"));
    assert!(s.contains_key(r#"flotilla_store_pool_connections{state="idle"}"#));
    assert_eq!(sample(&s, "flotilla_relay_messages_published_total"), 0.0);
    assert!(s.contains_key(r#"flotilla_relay_messages_received_total{kind="result"}"#));
    assert!(sample(&s, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&s, "process_open_fds") > 0.0);
    assert!(sample(&s, "process_start_time_seconds") > 1.7e9);

    // No label names a host, a node key or a campaign.
    for agent in &agents {
        let key = agent.node_key().unwrap();
        assert!(!text.contains(&key));
        assert!(!text.contains(&agent.agent_config().host_identifier));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_the_configured_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path());

    let response = scrape(&server, None).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let response = scrape(&server, Some((PROM_USER, "wrong-password"))).await;
    assert_eq!(response.status(), 401);
    assert!(
        !response
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
    let response = scrape(&server, Some((PROM_USER, PROM_PASSWORD))).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );

    // Without credentials configured, /metrics is open.
    let open_dir = tempfile::tempdir().unwrap();
    let open = Server::start(open_dir.path(), &[]);
    assert_eq!(scrape(&open, None).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_selects_checks_and_readyz_reports_ready() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let get = |path: &str| {
        let request = client.get(format!("{}{path}", server.url()));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };

    assert_eq!(get("/healthz").await, (200, String::new()));
    assert_eq!(get("/healthz?check=db").await, (200, String::new()));
    assert_eq!(get("/healthz?check=mysql").await, (200, String::new()));
    // No Redis relay on a single node: nothing that can fail.
    assert_eq!(
        get("/healthz?check=db&check=redis").await,
        (200, String::new())
    );
    let (status, body) = get("/healthz?check=bogus").await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("the provided check is not valid"),
        "{body}"
    );
    let (status, body) = get("/healthz?check=").await;
    assert_eq!(status, 400);
    assert!(body.contains("checks must not be empty"), "{body}");

    let (status, body) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"ready": true, "waiting_for": []}));
    let (status, body) = get("/version").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"version\""));
}

#[test]
fn the_alert_rules_pass_promtool() {
    let rules = workspace().join("deploy/prometheus/alerts.yml");
    let (ok, said) = run_promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool check rules {}: {said}", rules.display());
    assert!(said.contains("SUCCESS"), "{said}");
    // The rules' own unit tests: the TUF alerts fire days before timestamp.json expires.
    let tests = workspace().join("deploy/prometheus/alerts_test.yml");
    let (ok, said) = run_promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "promtool test rules {}: {said}", tests.display());
    let config = workspace().join("deploy/prometheus/prometheus.yml");
    let (ok, said) = run_promtool(
        &["check", "config", "--syntax-only", config.to_str().unwrap()],
        None,
    );
    assert!(ok, "promtool check config {}: {said}", config.display());
}

#[test]
fn the_grafana_dashboard_is_json_and_queries_exported_families() {
    let path = workspace().join("deploy/grafana/flotilla.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let source = std::fs::read_to_string(workspace().join("api/src/metrics.rs")).unwrap();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            // Every flotilla_* family a panel queries is one the server exports.
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if let Some(family) = word.strip_prefix("flotilla_") {
                    let base = family
                        .trim_end_matches("_bucket")
                        .trim_end_matches("_total")
                        .trim_end_matches("_count")
                        .trim_end_matches("_sum");
                    assert!(
                        source.contains(&format!("\"flotilla_{base}\"")),
                        "panel {} queries flotilla_{family}, which /metrics does not export",
                        panel["title"]
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_never_carry_node_keys_tokens_or_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let mut server = Server::start_logging_to(
        &data,
        &[
            "--log-level",
            "debug",
            "--log-format",
            "json",
            "--admin-email",
            flotilla_tests::ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
            "--prometheus-username",
            PROM_USER,
            "--prometheus-password",
            PROM_PASSWORD,
        ],
        &log,
    );
    let mut agents = vec![enrolled_agent(&server, "logged-host", OsTemplate::Ubuntu).await];
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    run_campaign(&server, &token, &mut agents).await;
    // A wrong token and a wrong node key are refused, and must not be logged either.
    let (status, _) = admin.with_token("wrong-token-0123456789").get("/me").await;
    assert_eq!(status, 401);
    unknown_node_key_read(&server, "wrong-node-key-0123456789").await;
    metrics_text(&server).await;
    server.stop();

    let logged = std::fs::read_to_string(&log).unwrap();
    // The scenario was logged at debug, one line per request with its route template...
    assert!(
        logged.contains(r#""route":"/api/osquery/distributed/read""#),
        "{logged}"
    );
    assert!(logged.contains(r#""route":"/api/latest/fleet/login""#));
    // ...and no credential appears anywhere in it.
    let node_key = agents[0].node_key().unwrap();
    for (what, secret) in [
        ("node key", node_key.as_str()),
        ("session token", token.as_str()),
        ("enroll secret", SECRET),
        ("admin password", ADMIN_PASSWORD),
        ("metrics password", PROM_PASSWORD),
        ("refused token", "wrong-token-0123456789"),
        ("refused node key", "wrong-node-key-0123456789"),
    ] {
        assert!(
            !logged.contains(secret),
            "the {what} appears in the server's log"
        );
    }
}
