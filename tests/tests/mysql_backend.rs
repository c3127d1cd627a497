//! The server on MySQL/MariaDB (`--mysql-url`): everything stored there survives a restart,
//! and an outage of the database is survived — check-ins answered from memory, enroll told to
//! retry, `/healthz` failing — with last-seen times written once the database is back.
//!
//! Each test uses a scratch database on `FLOTILLA_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`), dropped at the end; `FLOTILLA_TEST_SKIP_MYSQL=1` skips them.

use std::time::Duration;

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{ScratchDatabase, Server, TcpProxy, skip_mysql};
use serde_json::json;
use sqlx::Row;

fn templates(i: usize) -> OsTemplate {
    [OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows][i % 3]
}

/// Enrolls `count` agents and runs one check-in cycle of each (vitals reach the server).
async fn enrolled(server: &Server, prefix: &str, count: usize) -> Vec<SimAgent> {
    let mut agents = Vec::new();
    for i in 0..count {
        let mut agent = server.agent(&format!("{prefix}-{i}"), templates(i));
        let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
        let report = agent.run_distributed_cycle(&answerer).await;
        assert!(report.read_ok, "{:?}", report.read_error);
        agents.push(agent);
    }
    agents
}

/// Keeps `agents` checking in every 100 ms until the returned sender is told to stop.
fn keep_checking_in(
    agents: Vec<SimAgent>,
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = agents
        .into_iter()
        .map(|mut agent| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let answerer =
                    TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
                while !*stopped.borrow() {
                    agent.run_distributed_cycle(&answerer).await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stopped.changed() => {}
                    }
                }
            })
        })
        .collect();
    (stop, tasks)
}

async fn healthz(server: &Server) -> u16 {
    server
        .client()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .expect("healthz request")
        .status()
        .as_u16()
}

/// Polls `/healthz` until it answers `status` (at most 30 s; the wait is not what is tested).
async fn wait_for_health(server: &Server, status: u16) {
    for _ in 0..300 {
        if healthz(server).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/healthz never answered {status}");
}

async fn raw_enroll(server: &Server, identifier: &str) -> (u16, serde_json::Value) {
    let response = server
        .client()
        .post(format!("{}/api/v1/osquery/enroll", server.url()))
        .json(&json!({
            "enroll_secret": flotilla_tests::SECRET,
            "host_identifier": identifier,
            "host_details": {}
        }))
        .send()
        .await
        .expect("enroll request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_mysql_keeps_hosts_and_saved_objects_across_a_restart() {
    if skip_mysql() {
        return;
    }
    let database = ScratchDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mysql = ["--mysql-url", database.url.as_str()];
    let mut server = Server::start_with_admin(dir.path(), &mysql);
    assert!(
        server.banner.contains("database: MySQL"),
        "{}",
        server.banner
    );
    let admin = server.admin().await;
    let agents = enrolled(&server, "keep", 3).await;
    let keys: Vec<String> = agents.iter().map(|a| a.node_key().unwrap()).collect();

    let (status, label) = admin
        .post(
            "/labels",
            &json!({"name": "first two", "hosts": ["keep-0", "keep-1"]}),
        )
        .await;
    assert_eq!(status, 200, "{label}");
    let (status, team) = admin
        .post(
            "/teams",
            &json!({"name": "Servers", "description": "racks"}),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    let (status, saved) = admin
        .post(
            "/queries",
            &json!({"name": "users", "query": "SELECT * FROM users", "interval": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let query_id = saved["query"]["id"].as_u64().unwrap();

    // A live query over the label, answered by the agents while they check in.
    let (_, hosts) = admin.get("/hosts").await;
    let host_ids: Vec<u64> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(host_ids.len(), 3);
    let (stop, tasks) = keep_checking_in(agents);
    let (status, run) = admin
        .post(
            &format!("/queries/{query_id}/run"),
            &json!({"host_ids": host_ids}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["targeted_host_count"], 3);
    assert_eq!(run["responded_host_count"], 3);
    stop.send_replace(true);
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        !dir.path().join("flotilla.db").exists(),
        "with --mysql-url nothing is stored in SQLite"
    );

    // Restart on the same database.
    server.stop();
    let server = Server::start(dir.path(), &mysql);
    let admin = server.admin().await;
    let (_, hosts) = admin.get("/hosts").await;
    let mut names: Vec<&str> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{hosts}");
    let (_, labels) = admin.get("/labels").await;
    let first_two = labels["labels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "first two")
        .expect("the label survived");
    assert_eq!(first_two["host_count"], 2);
    let (_, teams) = admin.get("/teams").await;
    assert_eq!(teams["teams"][0]["name"], "Servers");
    assert_eq!(teams["teams"][0]["description"], "racks");
    let (status, saved) = admin.get(&format!("/queries/{query_id}")).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["query"]["query"], "SELECT * FROM users");
    assert_eq!(saved["query"]["interval"], 3600);

    // The agents' node keys still work: no node_invalid, no re-enrollment.
    for (i, key) in keys.iter().enumerate() {
        let agent = server.agent(&format!("keep-{i}"), templates(i));
        agent.set_node_key(Some(key.clone()));
        agent
            .distributed_read()
            .await
            .expect("a check-in with the old key");
        let stats = agent.stats();
        assert_eq!(stats.node_invalid, 0);
        assert_eq!(stats.enrolls, 0);
        assert_eq!(agent.node_key().as_deref(), Some(key.as_str()));
    }
    // The campaign the first run finished is on record.
    let pool = database.pool().await;
    let finished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM distributed_query_campaigns WHERE status = 2")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(finished >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_outage_keeps_check_ins_answered_and_loses_no_last_seen_time() {
    if skip_mysql() {
        return;
    }
    let database = ScratchDatabase::create().await;
    let proxy = TcpProxy::to_mysql().await;
    let dir = tempfile::tempdir().unwrap();
    let url = database.url_via(&proxy);
    let server = Server::start(
        dir.path(),
        &[
            "--mysql-url",
            &url,
            "--mysql-connect-timeout",
            "1s",
            "--seen-write-interval",
            "1s",
        ],
    );
    let agents = enrolled(&server, "steady", 2).await;
    assert_eq!(healthz(&server).await, 200);

    proxy.cut();
    let cut_at = unix_now();
    wait_for_health(&server, 500).await;

    // Check-ins of known hosts go on, answered from memory, for longer than the write interval.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for round in 0..3 {
        for agent in &agents {
            let read = agent.distributed_read().await;
            assert!(read.is_ok(), "check-in {round} during the outage: {read:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for agent in &agents {
        assert_eq!(
            agent.stats().node_invalid,
            0,
            "no host was told to re-enroll"
        );
    }

    // A new host is told to retry (osquery does), not that its secret is wrong.
    let (status, body) = raw_enroll(&server, "newcomer").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_ne!(body["node_invalid"], true, "{body}");
    assert_eq!(healthz(&server).await, 500);

    proxy.restore();
    wait_for_health(&server, 200).await;
    let (status, body) = raw_enroll(&server, "newcomer").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["node_key"].is_string(), "{body}");

    // The last-seen times of the outage reach the database once it is back.
    let pool = database.pool().await;
    let mut seen = Vec::new();
    for _ in 0..300 {
        let rows = sqlx::query(
            "SELECT osquery_host_id, seen_time FROM hosts \
             WHERE osquery_host_id LIKE 'steady-%' ORDER BY osquery_host_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        seen = rows
            .iter()
            .map(|r| r.get::<i64, _>("seen_time"))
            .collect::<Vec<_>>();
        if seen.len() == 2 && seen.iter().all(|&s| s > cut_at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|&s| s > cut_at),
        "seen times {seen:?} should be later than the cut at {cut_at}"
    );
    let newcomer: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM hosts WHERE osquery_host_id = 'newcomer'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(newcomer, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_killed_and_restarted_under_load_loses_nothing() {
    if skip_mysql() {
        return;
    }
    // A MariaDB of this test's own, so it can be killed.
    let mut mariadb = flotilla_tests::OwnMariaDb::start();
    let url = mariadb.create_database("flotilla").await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        dir.path(),
        &[
            "--mysql-url",
            &url,
            "--mysql-connect-timeout",
            "1s",
            "--seen-write-interval",
            "1s",
        ],
    );
    let admin = server.admin().await;
    let (status, policy) = admin
        .post(
            "/global/policies",
            &json!({"name": "uptime known", "query": "SELECT 1 FROM uptime"}),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    let policy = policy["policy"]["id"].as_u64().unwrap();
    // One cycle each: enrolled, details in; the policy is handed out at the next check-in,
    // which comes after the database is gone.
    let agents = enrolled(&server, "crash", 3).await;

    mariadb.service.stop();
    let killed_at = unix_now();
    let (stop, tasks) = keep_checking_in(agents);
    wait_for_health(&server, 500).await;
    let (status, body) = raw_enroll(&server, "during-the-outage").await;
    assert_eq!(status, 503, "an enrollment is told to retry: {body}");
    // Check-ins go on from memory for a while, policy answers included.
    tokio::time::sleep(Duration::from_secs(3)).await;

    mariadb.service.restart();
    wait_for_health(&server, 200).await;
    let (status, body) = raw_enroll(&server, "after-the-outage").await;
    assert_eq!(status, 200, "{body}");
    let _ = stop.send(true);
    for task in tasks {
        task.await.unwrap();
    }

    // What the hosts reported while the database was down reached it once it was back.
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let mut last = (0, 0);
    for _ in 0..300 {
        let seen: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM hosts WHERE osquery_host_id LIKE 'crash-%' AND seen_time > ?",
        )
        .bind(killed_at)
        .fetch_one(&pool)
        .await
        .unwrap();
        let answered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM policy_membership WHERE policy_id = ? AND passes = 1",
        )
        .bind(policy)
        .fetch_one(&pool)
        .await
        .unwrap();
        last = (seen, answered);
        if last == (3, 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last,
        (3, 3),
        "(hosts whose check-ins during the outage were written, policy answers written)"
    );
    let (status, hosts) = admin.get("/hosts?query=crash-").await;
    assert_eq!(status, 200, "{hosts}");
    assert_eq!(
        hosts["hosts"].as_array().unwrap().len(),
        3,
        "no host lost or doubled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_stops_the_start_with_its_cause() {
    if skip_mysql() {
        return;
    }
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(flotilla_tests::flotilla_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args([
            "--mysql-url",
            &format!("mysql://root:hunter2@127.0.0.1:{port}/flotilla"),
            "--mysql-connect-timeout",
            "2s",
        ])
        .output()
        .expect("running flotilla");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("opening the MySQL database at mysql://root@127.0.0.1"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password is never printed");

    let output = std::process::Command::new(flotilla_tests::flotilla_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--mysql-url", "postgres://nope"])
        .output()
        .expect("running flotilla");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid MySQL URL"), "{stderr}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
