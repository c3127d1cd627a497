//! Live queries end to end: simulated osquery agents checking in against the real server, an
//! admin starting campaigns through Fleet's REST API and watching them over the results
//! websocket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, AdminClient, Server};
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};

/// Agents checking in every `pause`, recording which live queries each answered.
struct Fleet {
    stop: watch::Sender<bool>,
    /// Per agent identifier: every `fleet_distributed_query_*` name it answered, in order.
    answered: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn run(agents: Vec<SimAgent>, pause: Duration) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let answered: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
        let tasks = agents
            .into_iter()
            .map(|mut agent| {
                let (answered, mut stopped) = (answered.clone(), stopped.clone());
                tokio::spawn(async move {
                    let profile = LiveQueryProfile {
                        rows_per_result: 2,
                        error_prob: 0.0,
                        no_result_prob: 0.0,
                    };
                    let answerer = TemplateAnswerer::new(agent.profile().clone(), profile);
                    let identifier = agent.agent_config().host_identifier.clone();
                    while !*stopped.borrow() {
                        let report = agent.run_distributed_cycle(&answerer).await;
                        let live: Vec<String> = report
                            .written
                            .iter()
                            .filter(|n| n.starts_with("fleet_distributed_query_"))
                            .cloned()
                            .collect();
                        answered
                            .lock()
                            .await
                            .entry(identifier.clone())
                            .or_default()
                            .extend(live);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                })
            })
            .collect();
        Fleet {
            stop,
            answered,
            tasks,
        }
    }

    async fn stop(self) -> BTreeMap<String, Vec<String>> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.answered).unwrap().into_inner()
    }
}

fn templates(i: usize) -> OsTemplate {
    [OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows][i % 3]
}

/// Enrolls `count` agents and runs their first cycle so every host has its vitals.
async fn enrolled(
    server: &Server,
    prefix: &str,
    count: usize,
    secret: Option<&str>,
) -> Vec<SimAgent> {
    let mut agents = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let mut agent = match secret {
            Some(secret) => server.agent_with_secret(&name, templates(i), secret),
            None => server.agent(&name, templates(i)),
        };
        let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
        assert!(agent.run_distributed_cycle(&answerer).await.read_ok);
        agents.push(agent);
    }
    agents
}

async fn label_id(admin: &AdminClient, name: &str) -> u64 {
    let (status, body) = admin.get("/labels").await;
    assert_eq!(status, 200, "{body}");
    body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// Authenticates on the results websocket and selects a campaign.
async fn watch_campaign(
    server: &Server,
    token: &str,
    campaign: u64,
) -> flotilla_tests::ResultsSocket {
    let mut socket = server.results_socket().await;
    socket.send("auth", json!({"token": token})).await;
    socket
        .send("select_campaign", json!({"campaign_id": campaign}))
        .await;
    socket
}

fn kinds(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_query_reaches_200_hosts_and_every_answer_arrives_once_over_the_websocket() {
    const HOSTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let agents = enrolled(&server, "fleet", HOSTS, None).await;
    let all_hosts = label_id(&admin, "All Hosts").await;

    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT * FROM processes", "selected": {"labels": [all_hosts]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let campaign = &body["campaign"];
    let id = campaign["id"].as_u64().unwrap();
    assert_eq!(campaign["Metrics"]["TotalHosts"], HOSTS);
    assert_eq!(campaign["Metrics"]["OnlineHosts"], HOSTS);
    assert_eq!(campaign["status"], 0);

    let mut socket = watch_campaign(&server, admin.token.as_deref().unwrap(), id).await;
    let fleet = Fleet::run(agents, Duration::from_millis(300));
    let messages = socket.until_closed().await;
    let answered = fleet.stop().await;

    assert_eq!(messages[0]["type"], "totals");
    assert_eq!(
        messages[0]["data"],
        json!({"count": HOSTS, "online": HOSTS, "offline": 0, "missing_in_action": 0})
    );
    assert_eq!(messages[1]["data"]["status"], "pending");
    let results: Vec<&Value> = messages.iter().filter(|m| m["type"] == "result").collect();
    let hosts: BTreeSet<u64> = results
        .iter()
        .map(|r| r["data"]["host"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(results.len(), HOSTS, "one result per host");
    assert_eq!(hosts.len(), HOSTS, "from every host");
    for result in &results {
        let data = &result["data"];
        assert_eq!(data["distributed_query_execution_id"], id);
        let hostname = data["host"]["hostname"].as_str().unwrap();
        assert!(!hostname.is_empty());
        assert_eq!(data["rows"].as_array().unwrap().len(), 2);
        assert_eq!(data["rows"][0]["host_hostname"], hostname);
        assert!(data.get("error").is_none());
    }
    let last = messages.last().unwrap();
    assert_eq!(last["type"], "status");
    assert_eq!(
        last["data"],
        json!({"expected_results": HOSTS, "actual_results": HOSTS, "status": "finished"})
    );
    // Statuses count up one answer at a time, never backwards.
    let counts: Vec<u64> = messages
        .iter()
        .filter(|m| m["type"] == "status")
        .map(|m| m["data"]["actual_results"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");

    // Each agent ran the query exactly once: after answering, no read handed it out again.
    let name = format!("fleet_distributed_query_{id}");
    for (agent, names) in &answered {
        assert_eq!(
            names.iter().filter(|n| **n == name).count(),
            1,
            "{agent}: {names:?}"
        );
    }
    assert_eq!(answered.len(), HOSTS);

    let (_, activities) = admin.get("/activities").await;
    let live = activities["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "live_query")
        .cloned();
    let live = live.expect("a live_query activity");
    assert_eq!(live["details"]["targets_count"], HOSTS);
    assert_eq!(live["details"]["query_sql"], "SELECT * FROM processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_teams_target_the_right_hosts_and_offline_hosts_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (status, team) = admin.post("/teams", &json!({"name": "web"})).await;
    assert_eq!(status, 200, "{team}");
    let team_id = team["team"]["id"].as_u64().unwrap();
    let (_, secrets) = admin.get(&format!("/teams/{team_id}/secrets")).await;
    let team_secret = secrets["secrets"][0]["secret"].as_str().unwrap().to_owned();

    // Team web: ubuntu, macOS, windows (+1 that goes away); global: ubuntu, macOS, windows.
    let mut team_agents = enrolled(&server, "web", 4, Some(&team_secret)).await;
    let global_agents = enrolled(&server, "global", 3, None).await;
    let gone = team_agents.pop().unwrap();
    drop(gone);

    // The fourth team host went away long ago: after a restart its last check-in is an hour old.
    server.stop();
    {
        let url = format!("sqlite://{}", dir.path().join("flotilla.db").display());
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE hosts SET seen_time = seen_time - 3600 WHERE osquery_host_id = 'web-3'",
        )
        .execute(&db)
        .await
        .unwrap();
        db.close().await;
    }
    // Same address, so the agents' connections find the server again.
    let address = server.addr.to_string();
    let server = Server::start_with_admin(dir.path(), &["--listen", &address]);
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let mut agents = team_agents;
    agents.extend(global_agents);
    let fleet = Fleet::run(agents, Duration::from_millis(200));

    // By team: four targeted, three online, one offline; finished once the three answered.
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"teams": [team_id]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["campaign"]["id"].as_u64().unwrap();
    assert_eq!(body["campaign"]["Metrics"]["TotalHosts"], 4);
    assert_eq!(body["campaign"]["Metrics"]["OfflineHosts"], 1);
    let messages = watch_campaign(&server, &token, id)
        .await
        .until_closed()
        .await;
    assert_eq!(
        messages[0]["data"],
        json!({"count": 4, "online": 3, "offline": 1, "missing_in_action": 0})
    );
    let hostnames: BTreeSet<String> = messages
        .iter()
        .filter(|m| m["type"] == "result")
        .map(|m| {
            m["data"]["rows"][0]["host_hostname"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(hostnames.len(), 3);
    assert_eq!(messages.last().unwrap()["data"]["status"], "finished");

    // By label, by name: the two macOS hosts (one in the team, one global).
    let (status, body) = admin
        .post(
            "/queries/run_by_identifiers",
            &json!({"query": "SELECT 2", "selected": {"labels": ["macOS"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["campaign"]["Metrics"]["TotalHosts"], 2);
    let id = body["campaign"]["id"].as_u64().unwrap();
    let messages = watch_campaign(&server, &token, id)
        .await
        .until_closed()
        .await;
    assert_eq!(messages.iter().filter(|m| m["type"] == "result").count(), 2);

    // Label AND team: macOS hosts in team web.
    let macos = label_id(&admin, "macOS").await;
    let (_, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 3", "selected": {"labels": [macos], "teams": [team_id]}}),
        )
        .await;
    assert_eq!(body["campaign"]["Metrics"]["TotalHosts"], 1);

    // Unknown label names and empty selections are refused in Fleet's words.
    let (status, body) = admin
        .post(
            "/queries/run_by_identifiers",
            &json!({"query": "SELECT 1", "selected": {"labels": ["nope", "macOS"]}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Invalid label name(s): nope.")
            || body.to_string().contains("Invalid label name(s): nope."),
        "{body}"
    );
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("no hosts targeted"));

    // The synchronous form answers for an offline host at once, without a campaign.
    let (status, gone) = admin.get("/hosts/identifier/web-3").await;
    assert_eq!(status, 200, "{gone}");
    let gone_id = gone["host"]["id"].as_u64().unwrap();
    let (status, body) = admin
        .post(
            &format!("/hosts/{gone_id}/query"),
            &json!({"query": "SELECT 1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"host_id": gone_id, "query": "SELECT 1", "status": "offline"})
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_forms_answer_in_one_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--live-query-sync-timeout", "5s"]);
    let admin = server.admin().await;
    let agents = enrolled(&server, "sync", 2, None).await;
    let fleet = Fleet::run(agents, Duration::from_millis(200));
    let (_, hosts) = admin.get("/hosts").await;
    let ids: Vec<u64> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();

    let (status, body) = admin
        .post(
            &format!("/hosts/{}/query", ids[0]),
            &json!({"query": "SELECT * FROM users"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "online");
    assert_eq!(body["host_id"], ids[0]);
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);

    let (status, body) = admin
        .post(
            "/hosts/identifier/sync-1/query",
            &json!({"query": "SELECT * FROM users"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["host_id"], ids[1]);

    let (status, saved) = admin
        .post(
            "/queries",
            &json!({"name": "users", "query": "SELECT * FROM users", "observer_can_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let query_id = saved["query"]["id"].as_u64().unwrap();
    let (status, body) = admin
        .post(
            &format!("/queries/{query_id}/run"),
            &json!({"host_ids": ids}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["query_id"], query_id);
    assert_eq!(body["targeted_host_count"], 2);
    assert_eq!(body["responded_host_count"], 2);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);

    let (status, body) = admin
        .post(&format!("/hosts/{}/query", ids[0]), &json!({"query": " "}))
        .await;
    assert_eq!(status, 400, "{body}");
    fleet.stop().await;

    // With nobody checking in, a host still counts as online for a minute: the answer times out.
    let (status, body) = admin
        .post(
            &format!("/hosts/{}/query", ids[0]),
            &json!({"query": "SELECT 1"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["error"], "timeout waiting for results");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_refuses_bad_tokens_and_strangers_and_observers_cannot_run_ad_hoc_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let agents = enrolled(&server, "auth", 1, None).await;
    let (status, body) = admin
        .post("/users/admin", &json!({"name": "Olive", "email": "olive@example.com", "password": "observer-pass-1!", "global_role": "observer"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let observer = server.login("olive@example.com", "observer-pass-1!").await;

    let (status, body) = observer
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"hosts": [1]}}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, saved) = admin
        .post(
            "/queries",
            &json!({"name": "uptime", "query": "SELECT * FROM uptime", "observer_can_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let query_id = saved["query"]["id"].as_u64().unwrap();
    let (status, body) = observer
        .post(
            "/queries/run",
            &json!({"query_id": query_id, "selected": {"hosts": [1]}}),
        )
        .await;
    assert_eq!(
        status, 200,
        "an observer runs a query marked observer_can_run: {body}"
    );
    let observers_campaign = body["campaign"]["id"].as_u64().unwrap();

    let (status, _) = server
        .admin_client()
        .post("/queries/run", &json!({"query": "SELECT 1"}))
        .await;
    assert_eq!(status, 401);

    let mut socket = server.results_socket().await;
    socket.send("auth", json!({"token": "not-a-token"})).await;
    assert_eq!(
        socket.until_closed().await,
        vec![json!({"type": "error", "data": "unauthorized"})]
    );

    let mut socket = server.results_socket().await;
    socket.send_raw("this is not JSON").await;
    let messages = socket.until_closed().await;
    assert_eq!(kinds(&messages), ["error"]);

    // Another user's campaign is not theirs to watch; the admin may watch any.
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"hosts": [1]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admins_campaign = body["campaign"]["id"].as_u64().unwrap();
    let messages = watch_campaign(&server, observer.token.as_deref().unwrap(), admins_campaign)
        .await
        .until_closed()
        .await;
    assert_eq!(
        messages,
        vec![json!({"type": "error", "data": "forbidden"})]
    );

    let fleet = Fleet::run(agents, Duration::from_millis(200));
    let messages = watch_campaign(&server, admin.token.as_deref().unwrap(), observers_campaign)
        .await
        .until_closed()
        .await;
    assert_eq!(kinds(&messages), ["totals", "status", "result", "status"]);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_campaign_ends_its_websocket_and_leaves_nothing_for_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--live-query-deadline", "2s"]);
    let admin = server.admin().await;
    let mut agents = enrolled(&server, "expiry", 1, None).await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"hosts": [1]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["campaign"]["id"].as_u64().unwrap();
    // Nobody checks in: the deadline ends the campaign and tells the watcher.
    let messages = watch_campaign(&server, admin.token.as_deref().unwrap(), id)
        .await
        .until_closed()
        .await;
    assert_eq!(kinds(&messages), ["totals", "status", "status"]);
    assert_eq!(
        messages[2]["data"],
        json!({"expected_results": 1, "actual_results": 0, "status": "finished"})
    );
    let read = agents[0].distributed_read().await.unwrap();
    assert!(
        !read
            .queries
            .keys()
            .any(|name| name.starts_with("fleet_distributed_query_")),
        "the expired query is gone from the host's mailbox: {:?}",
        read.queries
    );
    let _ = agents.pop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_label_is_evaluated_by_hosts_and_can_then_be_targeted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    // Ubuntu, macOS, Windows, Ubuntu, macOS, Windows.
    let agents = enrolled(&server, "dyn", 6, None).await;
    let (status, body) = admin
        .post(
            "/labels",
            &json!({"name": "not windows", "query": "SELECT 1 FROM os_version WHERE platform != 'windows';"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let label = body["label"]["id"].as_u64().unwrap();
    assert_eq!(body["label"]["label_membership_type"], "dynamic");

    // Hosts run the label's query at their next check-in; their answers decide membership.
    let fleet = Fleet::run(agents, Duration::from_millis(100));
    let mut members = Vec::new();
    for _ in 0..100 {
        let (_, hosts) = admin.get(&format!("/labels/{label}/hosts")).await;
        members = hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hostname"].as_str().unwrap().to_owned())
            .collect();
        if members.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(members.len(), 4, "the four non-Windows hosts: {members:?}");

    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"labels": [label]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["campaign"]["Metrics"]["TotalHosts"], 4);
    fleet.stop().await;

    // A host claiming labels it was never handed is not believed: a manual label (no query),
    // another platform's label, a label that does not exist.
    let (status, body) = admin
        .post("/labels", &json!({"name": "hand-picked", "hosts": []}))
        .await;
    assert_eq!(status, 200, "{body}");
    let manual = body["label"]["id"].as_u64().unwrap();
    let (status, body) = admin
        .post(
            "/labels",
            &json!({"name": "macs only", "query": "SELECT 1;", "platform": "darwin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let darwin = body["label"]["id"].as_u64().unwrap();
    // The same machine as host dyn-0 (Ubuntu), enrolling again.
    let ubuntu = server.agent("dyn-0", OsTemplate::Ubuntu);
    ubuntu.enroll().await.unwrap();
    let mut claim = flotilla_loadtest::WriteBody::default();
    for id in [manual, darwin, 99_999] {
        let name = format!("fleet_label_query_{id}");
        let row = [("1".to_owned(), "1".to_owned())].into_iter().collect();
        claim.queries.insert(name.clone(), vec![row]);
        claim.statuses.insert(name, 0);
    }
    ubuntu.distributed_write(&claim).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in [manual, darwin] {
        let (_, members) = admin.get(&format!("/labels/{id}/hosts")).await;
        assert_eq!(members["hosts"], json!([]), "label {id}: {members}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_campaign_over_the_cap_is_refused_with_429_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--live-query-max-active", "1"]);
    let admin = server.admin().await;
    let _agents = enrolled(&server, "cap", 1, None).await;
    let run = json!({"query": "SELECT 1", "selected": {"hosts": [1]}});
    let (status, body) = admin.post("/queries/run", &run).await;
    assert_eq!(status, 200, "{body}");
    let response = server
        .client()
        .post(format!("{}/api/latest/fleet/queries/run", server.url()))
        .bearer_auth(admin.token.as_deref().unwrap())
        .json(&run)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("too many live queries"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_server_down_ends_campaigns_and_tells_their_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let _agents = enrolled(&server, "shutdown", 1, None).await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"hosts": [1]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["campaign"]["id"].as_u64().unwrap();
    let mut socket = watch_campaign(&server, admin.token.as_deref().unwrap(), id).await;
    assert_eq!(socket.next().await.unwrap()["type"], "totals");
    assert_eq!(socket.next().await.unwrap()["data"]["status"], "pending");
    assert!(server.stop().success());
    let rest = socket.until_closed().await;
    assert_eq!(
        rest.last().unwrap()["data"]["status"],
        "finished",
        "{rest:?}"
    );
}

/// A node killed mid-campaign: the next start closes the campaign as abandoned, and its record
/// keeps how far it got (targets, online, answers), written every few seconds while it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_cut_short_by_a_crash_keeps_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let mut agents = enrolled(&server, "crash", 4, None).await;
    // The fourth host was online at the start but never answers, so the campaign runs on.
    let _silent = agents.pop();
    let all_hosts = label_id(&admin, "All Hosts").await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT 1", "selected": {"labels": [all_hosts]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["campaign"]["id"].as_u64().unwrap() as i64;
    let mut socket = watch_campaign(&server, admin.token.as_deref().unwrap(), id as u64).await;
    let fleet = Fleet::run(agents, Duration::from_millis(200));
    let mut results = 0;
    while results < 3 {
        let message = socket.next().await.expect("the campaign runs");
        results += usize::from(message["type"] == "result");
    }
    let counts = "SELECT targets_count, online_count, responded_count, status, \
                  COALESCE(finish_reason, '') FROM distributed_query_campaigns WHERE id = ?";
    let pool = server.database().await;
    let mut recorded = (0, 0, 0, 0, String::new());
    for _ in 0..150 {
        recorded = sqlx::query_as(counts)
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if recorded.2 == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        recorded,
        (4, 4, 3, 1, String::new()),
        "recorded while running"
    );
    pool.close().await;
    server.kill();
    fleet.stop().await;

    let server = Server::start(dir.path(), &[]);
    let pool = server.database().await;
    let closed: (i64, i64, i64, i64, String) = sqlx::query_as(counts)
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(closed, (4, 4, 3, 2, "abandoned".into()));
}

/// A flood of big answers and a watcher that never reads: the campaign keeps at most
/// `--live-query-max-bytes` of results (a reading watcher is told the rest was cut), the
/// stuck watcher is disconnected after `--websocket-send-timeout`, and once both are gone every
/// byte of results is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_answers_are_capped_in_bytes_and_a_watcher_that_never_reads_is_cut_off() {
    const HOSTS: usize = 40;
    const ROW_BYTES: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        dir.path(),
        &[
            "--live-query-max-bytes",
            "24MiB",
            "--websocket-send-timeout",
            "2s",
        ],
    );
    let admin = server.admin().await;
    let agents = enrolled(&server, "flood", HOSTS, None).await;
    let all_hosts = label_id(&admin, "All Hosts").await;
    let (status, body) = admin
        .post(
            "/queries/run",
            &json!({"query": "SELECT big FROM blobs", "selected": {"labels": [all_hosts]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["campaign"]["id"].as_u64().unwrap();
    let token = admin.token.as_deref().unwrap();
    let _stuck = watch_campaign(&server, token, id).await;
    let mut reader = watch_campaign(&server, token, id).await;
    let reading = tokio::spawn(async move { reader.until_closed().await });
    let name = format!("fleet_distributed_query_{id}");
    let big: String = "x".repeat(ROW_BYTES);
    for agent in &agents {
        let read = agent.distributed_read().await.unwrap();
        assert!(read.queries.contains_key(&name));
        let mut answer = flotilla_loadtest::WriteBody::default();
        let row = [("big".to_owned(), big.clone())].into_iter().collect();
        answer.queries.insert(name.clone(), vec![row]);
        answer.statuses.insert(name.clone(), 0);
        agent.distributed_write(&answer).await.unwrap();
    }
    let messages = reading.await.unwrap();
    let shown = messages.iter().filter(|m| m["type"] == "result").count();
    assert!(
        (20..24).contains(&shown),
        "{shown} results of 1 MiB under a 24 MiB cap"
    );
    assert!(
        messages
            .iter()
            .any(|m| m["type"] == "error" && m["data"].as_str().unwrap_or("").contains("bytes")),
        "the watcher is told results were cut"
    );
    assert_eq!(
        messages.last().unwrap()["data"]["actual_results"],
        HOSTS,
        "every answer is counted"
    );
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server.metrics_text().await;
        if metrics.contains("flotilla_websocket_send_timeouts_total 1")
            && metrics.contains("flotilla_campaign_result_bytes 0")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metrics.contains("flotilla_websocket_send_timeouts_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flotilla_campaign_result_bytes 0"),
        "every result byte is given back: {metrics}"
    );
}

/// What a role gets when it asks a route to run SQL on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 200: the SQL went to the host.
    Runs,
    /// 403: the viewer sees the host but may not run this SQL on it.
    Forbidden,
    /// 400 `host not found`: the viewer does not see the host (the one-host routes only).
    Unseen,
}

/// Every route that sends SQL to hosts, tried by every role on a host of its team and on a
/// host of no team, with ad-hoc SQL, a saved query observers may run, one they may not, and a
/// saved query of another team. The rule is `/queries/run`'s (Fleet's): admins, maintainers
/// and observer+ run anything on the hosts of their scope, observers only saved queries marked
/// `observer_can_run`, team roles only on their team's hosts and never another team's query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_that_runs_sql_on_hosts_applies_each_roles_rights() {
    use Outcome::*;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--live-query-sync-timeout", "5s"]);
    let admin = server.admin().await;
    let mut teams = Vec::new();
    for name in ["Ops", "Other"] {
        let (status, team) = admin.post("/teams", &json!({"name": name})).await;
        assert_eq!(status, 200, "{team}");
        teams.push(team["team"]["id"].as_u64().unwrap());
    }
    let (ops, other) = (teams[0], teams[1]);
    let (_, secrets) = admin.get(&format!("/teams/{ops}/secrets")).await;
    let ops_secret = secrets["secrets"][0]["secret"].as_str().unwrap().to_owned();
    let mut agents = enrolled(&server, "ops", 1, Some(&ops_secret)).await;
    agents.extend(enrolled(&server, "global", 1, None).await);
    let fleet = Fleet::run(agents, Duration::from_millis(100));
    let (_, team_host) = admin.get("/hosts/identifier/ops-0").await;
    let (_, global_host) = admin.get("/hosts/identifier/global-0").await;
    let team_host = (team_host["host"]["id"].as_u64().unwrap(), "ops-0");
    let global_host = (global_host["host"]["id"].as_u64().unwrap(), "global-0");

    let mut saved = BTreeMap::new();
    for (name, observer_can_run, team) in [
        ("open", true, None),
        ("closed", false, None),
        ("others", true, Some(other)),
    ] {
        let mut body = json!({"name": name, "query": "SELECT * FROM users", "observer_can_run": observer_can_run});
        if let Some(team) = team {
            body["team_id"] = json!(team);
        }
        let (status, query) = admin.post("/queries", &body).await;
        assert_eq!(status, 200, "{query}");
        saved.insert(name, query["query"]["id"].as_u64().unwrap());
    }

    let mut viewers = vec![("global admin", admin.clone(), true, "admin")];
    for (email, global, role) in [
        ("g-maintainer@example.com", true, "maintainer"),
        ("g-plus@example.com", true, "observer_plus"),
        ("g-observer@example.com", true, "observer"),
        ("t-admin@example.com", false, "admin"),
        ("t-maintainer@example.com", false, "maintainer"),
        ("t-plus@example.com", false, "observer_plus"),
        ("t-observer@example.com", false, "observer"),
    ] {
        let mut body = json!({"name": email, "email": email, "password": "user-password-1!"});
        if global {
            body["global_role"] = json!(role);
        } else {
            body["teams"] = json!([{"id": ops, "role": role}]);
        }
        let (status, created) = admin.post("/users/admin", &body).await;
        assert_eq!(status, 200, "{created}");
        let client = server.login(email, "user-password-1!").await;
        viewers.push((email, client, global, role));
    }

    let mut checked = 0;
    for (who, client, global, role) in &viewers {
        let runs_anything = *role != "observer";
        for (host, identifier) in [team_host, global_host] {
            let sees = *global || host == team_host.0;
            let when_seen = |allowed: bool| match (sees, allowed) {
                (true, true) => Runs,
                (true, false) | (false, _) => Forbidden,
            };
            let ad_hoc = when_seen(runs_anything);
            let open = when_seen(true);
            // Another team's query is the other team's and the global roles' to run.
            let others = if *global { open } else { Forbidden };
            let one_host = if sees { ad_hoc } else { Unseen };
            let (open_id, closed_id, others_id) = (saved["open"], saved["closed"], saved["others"]);
            let cases: Vec<(&str, String, Value, Outcome)> = vec![
                (
                    "/queries/run ad hoc",
                    "/queries/run".into(),
                    json!({"query": "SELECT * FROM users", "selected": {"hosts": [host]}}),
                    ad_hoc,
                ),
                (
                    "/queries/run closed",
                    "/queries/run".into(),
                    json!({"query_id": closed_id, "selected": {"hosts": [host]}}),
                    ad_hoc,
                ),
                (
                    "/queries/run open",
                    "/queries/run".into(),
                    json!({"query_id": open_id, "selected": {"hosts": [host]}}),
                    open,
                ),
                (
                    "/queries/run another team's",
                    "/queries/run".into(),
                    json!({"query_id": others_id, "selected": {"hosts": [host]}}),
                    others,
                ),
                (
                    "run_by_identifiers ad hoc",
                    "/queries/run_by_identifiers".into(),
                    json!({"query": "SELECT * FROM users", "selected": {"hosts": [identifier]}}),
                    ad_hoc,
                ),
                (
                    "run_by_names closed",
                    "/queries/run_by_names".into(),
                    json!({"query_id": closed_id, "selected": {"hosts": [identifier]}}),
                    ad_hoc,
                ),
                (
                    "run_by_identifiers open",
                    "/queries/run_by_identifiers".into(),
                    json!({"query_id": open_id, "selected": {"hosts": [identifier]}}),
                    open,
                ),
                (
                    "/queries/{id}/run closed",
                    format!("/queries/{closed_id}/run"),
                    json!({"host_ids": [host]}),
                    ad_hoc,
                ),
                (
                    "/queries/{id}/run open",
                    format!("/queries/{open_id}/run"),
                    json!({"host_ids": [host]}),
                    open,
                ),
                (
                    "/hosts/{id}/query",
                    format!("/hosts/{host}/query"),
                    json!({"query": "SELECT * FROM shadow"}),
                    one_host,
                ),
                (
                    "/hosts/identifier/{identifier}/query",
                    format!("/hosts/identifier/{identifier}/query"),
                    json!({"query": "SELECT * FROM shadow"}),
                    one_host,
                ),
            ];
            for (route, path, body, expected) in cases {
                let (status, answer) = client.post(&path, &body).await;
                let what = format!("{who} ({role}) on {identifier} via {route}: {status} {answer}");
                match expected {
                    Runs => {
                        assert_eq!(status, 200, "{what}");
                        let targeted = answer["campaign"]["Metrics"]["TotalHosts"]
                            .as_u64()
                            .or(answer["targeted_host_count"].as_u64());
                        if answer.get("host_id").is_some() {
                            assert_eq!(answer["host_id"], host, "{what}");
                            assert_eq!(answer["status"], "online", "{what}");
                        } else {
                            assert_eq!(targeted, Some(1), "{what}");
                        }
                    }
                    Forbidden => assert_eq!(status, 403, "{what}"),
                    Unseen => {
                        assert_eq!(status, 400, "{what}");
                        assert!(answer.to_string().contains("host not found"), "{what}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8 * 2 * 11);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_stay_out_of_the_log_even_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Server::start_logging_to(
        &dir.path().join("data"),
        &[
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
            "--log-level",
            "trace",
        ],
        &log,
    );
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let (status, body) = admin.get("/hosts").await;
    assert_eq!(status, 200, "{body}");
    let mut socket = server.results_socket().await;
    socket.send("auth", json!({"token": token})).await;
    socket
        .send("select_campaign", json!({"campaign_id": 999_999}))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    socket.close().await;
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.len() > 10_000, "a trace log was written");
    assert!(!text.contains(&token), "a session token is in the log");
}
