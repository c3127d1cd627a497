//! Policies end to end: the real `flotilla serve`, an admin client over TLS, and simulated
//! osqueryd agents answering the policy queries they are handed (`fleet_policy_query_<id>`).
//! `SELECT 1 FROM os_version WHERE platform = 'ubuntu'` passes on the Ubuntu template and
//! fails (no rows) on the macOS one.

use std::time::Duration;

use flotilla_loadtest::write::WriteBody;
use flotilla_loadtest::{LiveQueryProfile, OsTemplate, QueryAnswer, SimAgent, TemplateAnswerer};
use flotilla_tests::{AdminClient, ScratchDatabase, Server, skip_mysql};
use serde_json::{Value, json};

const UBUNTU_ONLY: &str = "SELECT 1 FROM os_version WHERE platform = 'ubuntu';";
const DARWIN_ONLY: &str = "SELECT 1 FROM os_version WHERE platform = 'darwin';";

fn answerer(agent: &SimAgent) -> TemplateAnswerer {
    TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default())
}

/// Polls until `check` holds (at most 20 s): for answers that land with the next batched
/// flush (200 ms in these tests).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// One distributed cycle (read, run, write); the names of the queries it was handed.
async fn cycle(agent: &mut SimAgent) -> Vec<String> {
    let report = agent.run_distributed_cycle(&answerer(agent)).await;
    assert!(report.read_ok && report.write_error.is_none(), "{report:?}");
    report.received
}

fn policy_names(received: &[String]) -> Vec<String> {
    let mut names: Vec<String> = received
        .iter()
        .filter(|n| n.starts_with("fleet_policy_query_"))
        .cloned()
        .collect();
    names.sort();
    names
}

fn query_name(id: u64) -> String {
    format!("fleet_policy_query_{id}")
}

async fn host_id(admin: &AdminClient, agent: &SimAgent) -> u64 {
    let (status, body) = admin
        .get(&format!("/hosts/identifier/{}", agent.profile().hostname))
        .await;
    assert_eq!(status, 200, "{body}");
    body["host"]["id"].as_u64().unwrap()
}

/// `(passing, failing)` of a policy as `GET {path}` shows it.
async fn counts(admin: &AdminClient, path: &str) -> (u64, u64) {
    let (status, body) = admin.get(path).await;
    assert_eq!(status, 200, "{body}");
    let policy = &body["policy"];
    (
        policy["passing_host_count"].as_u64().unwrap(),
        policy["failing_host_count"].as_u64().unwrap(),
    )
}

async fn create(admin: &AdminClient, path: &str, body: Value) -> u64 {
    let (status, created) = admin.post(path, &body).await;
    assert_eq!(status, 200, "{created}");
    created["policy"]["id"].as_u64().unwrap()
}

/// Asserts Fleet's error shape.
fn assert_fleet_error(body: &Value) {
    assert!(body["message"].is_string(), "not a Fleet error: {body}");
    assert!(body["errors"][0]["reason"].is_string(), "{body}");
}

/// The host's policies in `GET /hosts/{id}`, as `(name, response)`.
async fn host_policies(admin: &AdminClient, host: u64) -> (Vec<(String, String)>, Value) {
    let (status, body) = admin.get(&format!("/hosts/{host}")).await;
    assert_eq!(status, 200, "{body}");
    let policies = body["host"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["response"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (policies, body["host"]["issues"].clone())
}

#[tokio::test]
async fn policies_reach_the_hosts_they_apply_to_and_their_answers_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let mut ubuntu = server.agent("ubuntu-1", OsTemplate::Ubuntu);
    let mut mac = server.agent("mac-1", OsTemplate::MacOs);
    let mut in_team = server.agent("ubuntu-team", OsTemplate::Ubuntu);
    for agent in [&mut ubuntu, &mut mac, &mut in_team] {
        cycle(agent).await;
    }
    let (status, team) = admin.post("/teams", &json!({"name": "Servers"})).await;
    assert_eq!(status, 200, "{team}");
    let team = team["team"]["id"].as_u64().unwrap();
    let team_host = host_id(&admin, &in_team).await;
    let (status, _) = admin
        .post(
            "/hosts/transfer",
            &json!({"team_id": team, "hosts": [team_host]}),
        )
        .await;
    assert_eq!(status, 200);

    let global = create(
        &admin,
        "/global/policies",
        json!({"name": "Is Ubuntu", "query": UBUNTU_ONLY, "description": "d",
               "resolution": "install Ubuntu", "critical": true}),
    )
    .await;
    let (_, body) = admin.get(&format!("/global/policies/{global}")).await;
    let policy = &body["policy"];
    assert_eq!(policy["name"], "Is Ubuntu");
    assert_eq!(policy["resolution"], "install Ubuntu");
    assert_eq!(policy["critical"], true);
    assert_eq!(policy["platform"], "");
    assert_eq!(policy["team_id"], Value::Null);
    assert_eq!(policy["author_email"], flotilla_tests::ADMIN_EMAIL);
    assert_eq!(policy["host_count_updated_at"], Value::Null);
    assert!(policy["created_at"].as_str().unwrap().ends_with('Z'));
    let team_policy = create(
        &admin,
        &format!("/teams/{team}/policies"),
        json!({"name": "Linux team check", "query": "SELECT 1;", "platform": "linux"}),
    )
    .await;

    // Each host is handed what applies to it at its next check-in.
    assert_eq!(
        policy_names(&cycle(&mut ubuntu).await),
        vec![query_name(global)]
    );
    assert_eq!(
        policy_names(&cycle(&mut mac).await),
        vec![query_name(global)]
    );
    let mut both = vec![query_name(global), query_name(team_policy)];
    both.sort();
    assert_eq!(policy_names(&cycle(&mut in_team).await), both);

    let global_path = format!("/global/policies/{global}");
    let team_path = format!("/teams/{team}/policies/{team_policy}");
    eventually("the answers are counted", || async {
        counts(&admin, &global_path).await == (2, 1) && counts(&admin, &team_path).await == (1, 0)
    })
    .await;
    let (_, list) = admin.get("/global/policies").await;
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    assert!(list["policies"][0]["host_count_updated_at"].is_string());
    let (_, list) = admin.get(&format!("/teams/{team}/policies")).await;
    assert_eq!(list["policies"][0]["passing_host_count"], 1);
    assert_eq!(admin.get("/policies/count").await.1["count"], 1);
    assert_eq!(
        admin.get(&format!("/teams/{team}/policies/count")).await.1["count"],
        1
    );

    // The host list by answer.
    let (_, failing) = admin
        .get(&format!(
            "/hosts?policy_id={global}&policy_response=failing"
        ))
        .await;
    let failing: Vec<&str> = failing["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(failing, vec![mac.profile().hostname.as_str()]);
    let (_, listed) = admin.get("/hosts").await;
    let mac_listed = listed["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == mac.profile().hostname.as_str())
        .unwrap();
    assert_eq!(mac_listed["issues"]["failing_policies_count"], 1);
    let (_, passing) = admin
        .get(&format!(
            "/hosts/count?policy_id={global}&policy_response=passing"
        ))
        .await;
    assert_eq!(passing["count"], 2);
    let (status, _) = admin
        .get(&format!("/hosts?policy_id={global}&policy_response=maybe"))
        .await;
    assert_eq!(status, 400);

    // The hosts' own view: their policies with their answers.
    let mac_host = host_id(&admin, &mac).await;
    let (policies, issues) = host_policies(&admin, mac_host).await;
    assert_eq!(policies, vec![("Is Ubuntu".to_owned(), "fail".to_owned())]);
    assert_eq!(issues["failing_policies_count"], 1);
    let (policies, issues) = host_policies(&admin, team_host).await;
    assert_eq!(
        policies,
        vec![
            ("Is Ubuntu".to_owned(), "pass".to_owned()),
            ("Linux team check".to_owned(), "pass".to_owned()),
        ]
    );
    assert_eq!(issues["failing_policies_count"], 0);

    // Answered: nothing is handed out again before the interval.
    assert!(policy_names(&cycle(&mut ubuntu).await).is_empty());

    // A host cannot report on a policy it was never handed: the mac answers the team's
    // policy (and, to know when the write has been flushed, the global one it was handed).
    let mut forged = WriteBody::default();
    let row = [("1".to_owned(), "1".to_owned())].into_iter().collect();
    forged.insert(&query_name(team_policy), QueryAnswer::rows(vec![row]));
    let row = [("1".to_owned(), "1".to_owned())].into_iter().collect();
    forged.insert(&query_name(global), QueryAnswer::rows(vec![row]));
    mac.distributed_write(&forged).await.unwrap();
    eventually("the mac's answer to its own policy is counted", || async {
        counts(&admin, &global_path).await == (3, 0)
    })
    .await;
    assert_eq!(
        counts(&admin, &team_path).await,
        (1, 0),
        "the answer to a policy the mac was not handed is dropped"
    );

    // A changed policy is sent again with its new query; the old answers are forgotten.
    let (status, body) = admin
        .patch(&global_path, &json!({"query": DARWIN_ONLY}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy"]["query"], DARWIN_ONLY);
    assert_eq!(counts(&admin, &global_path).await, (0, 0));
    for agent in [&mut ubuntu, &mut mac, &mut in_team] {
        assert!(policy_names(&cycle(agent).await).contains(&query_name(global)));
    }
    eventually("the new query's answers are counted", || async {
        counts(&admin, &global_path).await == (1, 2)
    })
    .await;

    // Deleting: the policy is no longer handed out, its answers are gone.
    let (status, body) = admin
        .post("/global/policies/delete", &json!({"ids": [global, 99_999]}))
        .await;
    assert_eq!((status, &body["deleted"]), (200, &json!(1)), "{body}");
    assert_eq!(admin.get(&global_path).await.0, 404);
    assert_eq!(admin.get("/policies/count").await.1["count"], 0);
    assert!(policy_names(&cycle(&mut mac).await).is_empty());
    let (policies, _) = host_policies(&admin, mac_host).await;
    assert!(policies.is_empty(), "{policies:?}");

    let (_, activities) = admin.get("/activities").await;
    let kinds: Vec<&str> = activities["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    for kind in ["created_policy", "edited_policy", "deleted_policy"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn who_may_write_policies_and_what_bad_input_gets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (_, team) = admin.post("/teams", &json!({"name": "Laptops"})).await;
    let team = team["team"]["id"].as_u64().unwrap();
    let global = create(
        &admin,
        "/global/policies",
        json!({"name": "Global", "query": "SELECT 1;"}),
    )
    .await;

    let login = |email: &'static str, roles: Value| {
        let admin = &admin;
        let server = &server;
        async move {
            let mut body = json!({"name": email, "email": email, "password": "user-password-1!"});
            body.as_object_mut()
                .unwrap()
                .extend(roles.as_object().unwrap().clone());
            let (status, created) = admin.post("/users/admin", &body).await;
            assert_eq!(status, 200, "{created}");
            server.login(email, "user-password-1!").await
        }
    };
    let observer = login("observer@example.com", json!({"global_role": "observer"})).await;
    let team_maintainer = login(
        "maintainer@example.com",
        json!({"teams": [{"id": team, "role": "maintainer"}]}),
    )
    .await;

    // Observers read and cannot write.
    assert_eq!(observer.get("/global/policies").await.0, 200);
    assert_eq!(
        observer.get(&format!("/global/policies/{global}")).await.0,
        200
    );
    let body = json!({"name": "Mine", "query": "SELECT 1;"});
    for (path, status) in [
        ("/global/policies".to_owned(), 403),
        (format!("/teams/{team}/policies"), 403),
    ] {
        let (got, error) = observer.post(&path, &body).await;
        assert_eq!(got, status, "{path}: {error}");
        assert_fleet_error(&error);
    }
    let (status, _) = observer
        .patch(
            &format!("/global/policies/{global}"),
            &json!({"critical": true}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = observer
        .post("/global/policies/delete", &json!({"ids": [global]}))
        .await;
    assert_eq!(status, 403);

    // A team maintainer writes the team's policies, not the global ones.
    let (status, _) = team_maintainer.post("/global/policies", &body).await;
    assert_eq!(status, 403);
    let (status, created) = team_maintainer
        .post(&format!("/teams/{team}/policies"), &body)
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["policy"]["team_id"], team);

    // Bad input: Fleet's JSON error with a 4xx.
    for (body, status) in [
        ("not json", 400),
        (
            r#"{"name": "x", "query": "SELECT 1", "critical": "yes"}"#,
            400,
        ),
        (r#"{"name": "", "query": "SELECT 1"}"#, 422),
        (r#"{"name": "No query"}"#, 422),
        (
            r#"{"name": "p", "query": "SELECT 1", "platform": "ubuntu"}"#,
            422,
        ),
        (r#"{"name": "Global", "query": "SELECT 2"}"#, 409),
    ] {
        let (got, error) = admin
            .send_text(reqwest::Method::POST, "/global/policies", body)
            .await;
        assert_eq!(got, status, "{body}: {error}");
        assert_fleet_error(&error);
    }
    let (status, error) = admin
        .patch(
            &format!("/global/policies/{global}"),
            &json!({"platform": "plan9"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, error) = admin
        .post("/global/policies/delete", &json!({"ids": "all"}))
        .await;
    assert_eq!(status, 400, "{error}");
    assert_fleet_error(&error);
    assert_eq!(admin.get("/global/policies/abc").await.0, 400);
    assert_eq!(admin.get("/global/policies/99999").await.0, 404);
    assert_eq!(admin.get("/teams/99999/policies").await.0, 404);
    // A team's policy is not found under the global path.
    let team_policy = created["policy"]["id"].as_u64().unwrap();
    assert_eq!(
        admin
            .get(&format!("/global/policies/{team_policy}"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn policy_specs_create_and_replace_by_team_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (_, team) = admin.post("/teams", &json!({"name": "Servers"})).await;
    let team = team["team"]["id"].as_u64().unwrap();
    let specs = json!({"specs": [
        {"name": "Firewall", "query": "SELECT 1;", "platform": "darwin", "critical": true,
         "resolution": "turn it on", "description": "d", "team": ""},
        {"name": "Firewall", "query": "SELECT 2;", "team": "Servers"},
    ]});
    let (status, body) = admin.post("/spec/policies", &specs).await;
    assert_eq!(status, 200, "{body}");
    let (_, global) = admin.get("/global/policies").await;
    assert_eq!(global["policies"][0]["platform"], "darwin");
    assert_eq!(global["policies"][0]["critical"], true);
    let (_, in_team) = admin.get(&format!("/teams/{team}/policies")).await;
    assert_eq!(in_team["policies"][0]["query"], "SELECT 2;");

    // Applied again: replaced by name, not duplicated.
    let again = json!({"specs": [{"name": "Firewall", "query": "SELECT 3;"}]});
    assert_eq!(admin.post("/spec/policies", &again).await.0, 200);
    let (_, global) = admin.get("/global/policies").await;
    assert_eq!(global["policies"].as_array().unwrap().len(), 1);
    assert_eq!(global["policies"][0]["query"], "SELECT 3;");

    let unknown = json!({"specs": [{"name": "x", "query": "SELECT 1;", "team": "Nope"}]});
    let (status, error) = admin.post("/spec/policies", &unknown).await;
    assert_eq!(status, 422, "{error}");
    assert_fleet_error(&error);
    let (_, activities) = admin.get("/activities").await;
    assert_eq!(activities["activities"][0]["type"], "applied_spec_policy");
}

#[tokio::test]
async fn on_mysql_a_policy_created_on_one_node_is_sent_by_another() {
    if skip_mysql() {
        eprintln!("FLOTILLA_TEST_SKIP_MYSQL=1: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = ScratchDatabase::create().await;
    let redis = flotilla_tests::RedisServer::start();
    let url = redis.url();
    let node = |name: &'static str| {
        Server::start_with_admin(
            dir.path(),
            &[
                "--redis-url",
                &url,
                "--node-name",
                name,
                "--mysql-url",
                &database.url,
            ],
        )
    };
    let a = node("node-a");
    let b = node("node-b");
    let mut agent = b.agent("ubuntu-b", OsTemplate::Ubuntu);
    cycle(&mut agent).await;

    let admin_a = a.admin().await;
    let id = create(
        &admin_a,
        "/global/policies",
        json!({"name": "Is Ubuntu", "query": UBUNTU_ONLY}),
    )
    .await;
    // Node B learns of it through the relay and hands it out at the next check-in there.
    let mut handed = false;
    for _ in 0..100 {
        if policy_names(&cycle(&mut agent).await).contains(&query_name(id)) {
            handed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        handed,
        "node B never handed out the policy created on node A"
    );
    let path = format!("/global/policies/{id}");
    eventually("node B's answer is counted on node A", || async {
        counts(&admin_a, &path).await == (1, 0)
    })
    .await;
    let host = host_id(&admin_a, &agent).await;
    let (policies, _) = host_policies(&admin_a, host).await;
    assert_eq!(policies, vec![("Is Ubuntu".to_owned(), "pass".to_owned())]);
}

/// Runs `flotilla ARGS --config CONFIG` with `stdin`; returns its standard output, asserting
/// success.
async fn flotilla(config: &std::path::Path, args: &[&str], stdin: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(flotilla_tests::flotilla_binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("FLOTILLA_CONTEXT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running flotilla");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("flotilla did not exit within 120 s")
        .unwrap();
    assert!(
        out.status.success(),
        "flotilla {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn policies_are_applied_listed_and_deleted_from_spec_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("flotilla/config.yml");
    let ca = server.data_dir.join("tls/ca.pem");
    flotilla(
        &config,
        &[
            "login",
            "--address",
            &server.url(),
            "--ca",
            ca.to_str().unwrap(),
            "--email",
            flotilla_tests::ADMIN_EMAIL,
            "--password-stdin",
        ],
        &format!("{}\n", flotilla_tests::ADMIN_PASSWORD),
    )
    .await;
    let specs = home.path().join("policies.yml");
    std::fs::write(
        &specs,
        "apiVersion: v1\nkind: team\nspec:\n  team:\n    name: Servers\n---\n\
         apiVersion: v1\nkind: policy\nspec:\n  name: Is Ubuntu\n  query: SELECT 1 FROM os_version WHERE platform = 'ubuntu';\n  critical: true\n  resolution: reinstall\n---\n\
         apiVersion: v1\nkind: policy\nspec:\n  name: Team check\n  query: SELECT 1;\n  platform: linux\n  team: Servers\n",
    )
    .unwrap();
    let specs = specs.to_str().unwrap();
    // A dry run checks the policies' teams, which must exist already for that.
    let admin = server.admin().await;
    assert_eq!(
        admin.post("/teams", &json!({"name": "Servers"})).await.0,
        200
    );
    let out = flotilla(&config, &["apply", "-f", specs, "--dry-run"], "").await;
    assert!(out.contains("would've applied 2 policies"), "{out}");
    let out = flotilla(&config, &["get", "policies", "--json"], "").await;
    assert_eq!(out.trim(), "[]", "a dry run stores nothing");
    let out = flotilla(&config, &["apply", "-f", specs], "").await;
    assert!(out.contains("applied 2 policies"), "{out}");

    // The host answers, and the table shows the counts.
    let mut agent = server.agent("ubuntu-1", OsTemplate::Ubuntu);
    cycle(&mut agent).await;
    cycle(&mut agent).await;
    let (_, list) = admin.get("/global/policies").await;
    let id = list["policies"][0]["id"].as_u64().unwrap();
    let path = format!("/global/policies/{id}");
    eventually("the host's answer is counted", || async {
        counts(&admin, &path).await == (1, 0)
    })
    .await;
    let table = flotilla(&config, &["get", "policies"], "").await;
    let header = table.lines().find(|l| l.contains("NAME")).unwrap();
    assert!(
        header.contains("NAME") && header.contains("PASSING"),
        "{table}"
    );
    let row = table.lines().find(|l| l.contains("Is Ubuntu")).unwrap();
    assert!(row.contains('1') && row.contains("true"), "{table}");
    assert!(
        table.contains("Team check") && table.contains("Servers"),
        "{table}"
    );
    let yaml = flotilla(&config, &["get", "policies", "--yaml"], "").await;
    assert!(yaml.contains("name: Is Ubuntu"), "{yaml}");

    let out = flotilla(&config, &["delete", "-f", specs], "").await;
    assert!(out.contains("deleted policy \"Is Ubuntu\""), "{out}");
    assert!(out.contains("deleted policy \"Team check\""), "{out}");
    let out = flotilla(&config, &["get", "policies", "--json"], "").await;
    assert_eq!(out.trim(), "[]", "{out}");
}
