//! The Fleet-compatible admin REST API, end to end: the real `flotilla serve`, an admin client
//! over TLS, and simulated osqueryd agents so hosts have real vitals.

use std::time::Duration;

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, AdminClient, Server};
use futures_util::StreamExt;
use serde_json::{Value, json};

fn answerer(agent: &SimAgent) -> TemplateAnswerer {
    TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default())
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

/// Asserts Fleet's error shape and returns the first error's reason.
fn fleet_error(body: &Value) -> String {
    assert!(body["message"].is_string(), "not a Fleet error: {body}");
    assert!(body["errors"][0]["name"].is_string(), "{body}");
    body["errors"][0]["reason"].as_str().unwrap().to_owned()
}

/// Creates a user through the API and logs in as them.
async fn user_with(
    server: &Server,
    admin: &AdminClient,
    email: &str,
    roles: Value,
) -> (u64, AdminClient) {
    let mut body = json!({"name": email, "email": email, "password": "user-password-1!"});
    body.as_object_mut()
        .unwrap()
        .extend(roles.as_object().unwrap().clone());
    let (status, created) = admin.post("/users/admin", &body).await;
    assert_eq!(status, 200, "{created}");
    let id = created["user"]["id"].as_u64().unwrap();
    (id, server.login(email, "user-password-1!").await)
}

/// Enrolls agents and runs one distributed cycle each, so their vitals are filled.
async fn hosts_with_vitals(server: &Server, agents: &[(&str, OsTemplate)]) -> Vec<SimAgent> {
    let mut enrolled = Vec::new();
    for &(name, template) in agents {
        let mut agent = server.agent(name, template);
        let report = agent.run_distributed_cycle(&answerer(&agent)).await;
        assert!(report.read_ok && report.write_error.is_none(), "{report:?}");
        enrolled.push(agent);
    }
    enrolled
}

fn hostnames(body: &Value) -> Vec<String> {
    body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn setup_creates_the_first_admin_once_and_sessions_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(
        server.banner.contains("POST /api/v1/setup"),
        "{}",
        server.banner
    );
    let anonymous = server.admin_client();

    let weak = json!({"admin": {"email": "root@example.com", "name": "Root", "password": "password"},
                      "org_info": {"org_name": "Acme"}, "server_url": server.url()});
    let (status, body) = anonymous.post("/api/v1/setup", &weak).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["name"], "password");

    let mut good = weak.clone();
    good["admin"]["password"] = json!("root-password-1!");
    let (status, body) = anonymous.post("/api/v1/setup", &good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["admin"]["global_role"], "admin");
    assert_eq!(body["org_info"]["org_name"], "Acme");
    let setup_session = anonymous.with_token(body["token"].as_str().unwrap());
    let (status, me) = setup_session.get("/me").await;
    assert_eq!(
        (status, me["user"]["email"].as_str()),
        (200, Some("root@example.com"))
    );

    for path in ["/api/v1/setup", "/api/setup"] {
        let (status, body) = anonymous.post(path, &good).await;
        assert_eq!(status, 409, "setup again on {path}: {body}");
        assert!(fleet_error(&body).contains("already"));
    }

    // Login: a bad password and an unknown email fail alike.
    for (email, password) in [
        ("root@example.com", "wrong-password-1!"),
        ("nobody@example.com", "root-password-1!"),
    ] {
        let (status, body) = anonymous
            .post("/login", &json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["message"], "Authentication failed");
        assert_eq!(fleet_error(&body), "Authentication failed");
    }
    let session = server.login("ROOT@example.com", "root-password-1!").await;
    let token = session.token.clone().unwrap();
    assert!(token.len() >= 43, "32 random bytes or more");

    // The same handlers under every version prefix.
    for prefix in ["/api/v1/fleet", "/api/2022-04/fleet", "/api/latest/fleet"] {
        let (status, me) = session.with_prefix(prefix).get("/me").await;
        assert_eq!(status, 200, "{prefix}");
        assert_eq!(me["user"]["name"], "Root");
    }

    // No bearer, a wrong one, malformed JSON: Fleet's error shapes, never plain text.
    let (status, body) = anonymous.get("/hosts").await;
    assert_eq!(status, 401);
    fleet_error(&body);
    let forged = anonymous.with_token("not-a-session");
    assert_eq!(forged.get("/me").await.0, 401);
    let response = server
        .client()
        .post(format!("{}/api/latest/fleet/login", server.url()))
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    fleet_error(&response.json::<Value>().await.unwrap());
    let (status, body) = session.get("/no/such/endpoint").await;
    assert_eq!(status, 404);
    fleet_error(&body);

    // Logout ends that session only.
    let (status, _) = session.post("/logout", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(session.get("/me").await.0, 401, "the token is dead");
    assert_eq!(
        setup_session.get("/me").await.0,
        200,
        "other sessions live on"
    );

    // The database holds a hash of the token, never the token.
    let db = server.database().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(!stored.is_empty() && !stored.contains(&token));
}

#[tokio::test]
async fn login_is_rate_limited_and_admin_flags_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_admin(dir.path(), &[]);
    assert!(
        server.banner.contains("admin@example.com (created)"),
        "{}",
        server.banner
    );
    let anonymous = server.admin_client();
    let attempt = |password: &'static str| {
        let anonymous = anonymous.clone();
        async move {
            anonymous
                .post(
                    "/login",
                    &json!({"email": ADMIN_EMAIL, "password": password}),
                )
                .await
        }
    };
    // Logging in often uses none of the budget: only failures count.
    for _ in 0..12 {
        assert_eq!(attempt(ADMIN_PASSWORD).await.0, 200);
    }
    // Ten failures at once are allowed; the eleventh within the minute closes this address.
    for _ in 0..11 {
        assert_eq!(attempt("wrong-password-1!").await.0, 401);
    }
    let (status, body) = attempt(ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "even the right password waits: {body}");
    assert!(fleet_error(&body).contains("retry after"));
    let response = server
        .client()
        .post(format!("{}/api/latest/fleet/login", server.url()))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // A restart with another password leaves the existing admin (and its password) alone.
    assert!(server.stop().success());
    let server = Server::start(
        dir.path(),
        &[
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            "another-password-2@",
        ],
    );
    assert!(
        server.banner.contains("admin@example.com (exists)"),
        "{}",
        server.banner
    );
    let admin = server.admin().await;
    let (_, users) = admin.get("/users").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .admin_client()
        .post(
            "/login",
            &json!({"email": ADMIN_EMAIL, "password": "another-password-2@"}),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn users_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;

    let (status, body) = admin
        .post("/users/admin", &json!({"name": "Weak", "email": "weak@example.com", "password": "short", "global_role": "observer"}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = admin
        .post(
            "/users/admin",
            &json!({"name": "Nobody", "email": "none@example.com", "password": "user-password-1!"}),
        )
        .await;
    assert_eq!(status, 422, "a role is required: {body}");
    let (observer_id, observer) = user_with(
        &server,
        &admin,
        "observer@example.com",
        json!({"global_role": "observer"}),
    )
    .await;
    let (status, body) = admin
        .post("/users/admin", &json!({"name": "Dup", "email": "Observer@example.com", "password": "user-password-1!", "global_role": "admin"}))
        .await;
    assert_eq!(status, 409, "emails are unique: {body}");

    let (status, me) = observer.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["global_role"], "observer");
    assert_eq!(me["user"]["api_only"], false);
    assert!(me["user"]["teams"].as_array().unwrap().is_empty());

    // Observers read but never write users, labels, queries or teams.
    assert_eq!(observer.get("/users").await.0, 200);
    for (path, body) in [
        (
            "/users/admin",
            json!({"name": "X", "email": "x@example.com", "password": "user-password-1!", "global_role": "admin"}),
        ),
        ("/labels", json!({"name": "mine", "hosts": []})),
        ("/queries", json!({"name": "mine", "query": "SELECT 1;"})),
        ("/teams", json!({"name": "mine"})),
    ] {
        let (status, error) = observer.post(path, &body).await;
        assert_eq!(status, 403, "{path}: {error}");
        assert_eq!(error["message"], "Permission Denied");
    }
    let (status, _) = observer
        .patch(
            &format!("/users/{observer_id}"),
            &json!({"global_role": "admin"}),
        )
        .await;
    assert_eq!(status, 403, "no promoting oneself");

    // An API-only user for scripts.
    let (status, body) = admin
        .post("/users/admin", &json!({"name": "CI", "email": "ci@example.com", "password": "ci-password-1!", "global_role": "maintainer", "api_only": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["api_only"], true);
    let ci = server.login("ci@example.com", "ci-password-1!").await;
    let (status, _) = ci
        .post(
            "/queries",
            &json!({"name": "ci query", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(status, 200, "maintainers write queries");

    // The admin changes a role; the user sees it on the next request.
    let (status, body) = admin
        .patch(
            &format!("/users/{observer_id}"),
            &json!({"global_role": "maintainer", "name": "Olivia"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["name"], "Olivia");
    let (status, _) = observer
        .post(
            "/queries",
            &json!({"name": "now allowed", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(status, 200);

    // Changing one's own password takes the current one, and ends the user's other sessions.
    let laptop = server
        .login("observer@example.com", "user-password-1!")
        .await;
    assert_eq!(laptop.get("/me").await.0, 200);
    let (status, _) = observer
        .patch(
            &format!("/users/{observer_id}"),
            &json!({"new_password": "next-password-2@"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = observer
        .patch(
            &format!("/users/{observer_id}"),
            &json!({"password": "user-password-1!", "new_password": "next-password-2@"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        observer.get("/me").await.0,
        200,
        "the session that changed it stays"
    );
    assert_eq!(laptop.get("/me").await.0, 401, "the other session ended");
    let desk = server
        .login("observer@example.com", "next-password-2@")
        .await;
    // An admin setting someone's password ends all of that user's sessions.
    let (status, body) = admin
        .patch(
            &format!("/users/{observer_id}"),
            &json!({"new_password": "admin-chose-3#"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(desk.get("/me").await.0, 401);
    assert_eq!(observer.get("/me").await.0, 401);
    let observer = server.login("observer@example.com", "admin-chose-3#").await;
    // Fleet's own-password route: the old password must match, the new one must be a good
    // password and differ from it, and the new one works at once.
    let (status, body) = observer
        .post(
            "/change_password",
            &json!({"old_password": "wrong-one-9!", "new_password": "mine-again-4$"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["name"], "old_password", "{body}");
    for (new_password, why) in [
        ("admin-chose-3#", "the old password again"),
        ("short", "too weak"),
    ] {
        let (status, body) = observer
            .post(
                "/change_password",
                &json!({"old_password": "admin-chose-3#", "new_password": new_password}),
            )
            .await;
        assert_eq!(status, 422, "{why}: {body}");
        assert_eq!(body["errors"][0]["name"], "new_password", "{why}: {body}");
    }
    let (status, body) = observer
        .post(
            "/change_password",
            &json!({"old_password": "admin-chose-3#", "new_password": "mine-again-4$"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(observer.get("/me").await.0, 200);
    let (status, _) = server
        .admin_client()
        .post(
            "/login",
            &json!({"email": "observer@example.com", "password": "admin-chose-3#"}),
        )
        .await;
    assert_eq!(status, 401, "the old password no longer logs in");
    server.login("observer@example.com", "mine-again-4$").await;

    let (_, admin_me) = admin.get("/me").await;
    let admin_id = admin_me["user"]["id"].as_u64().unwrap();
    let (status, body) = admin.delete(&format!("/users/{admin_id}")).await;
    assert_eq!(status, 422, "the last admin stays: {body}");
    let (status, _) = admin.delete(&format!("/users/{observer_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        observer.get("/me").await.0,
        401,
        "a deleted user's session ends"
    );
    assert_eq!(admin.get(&format!("/users/{observer_id}")).await.0, 404);
    let (_, users) = admin.get("/users?query=ci@").await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn hosts_list_filter_page_get_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let mut agents = hosts_with_vitals(
        &server,
        &[
            ("ubuntu-1", OsTemplate::Ubuntu),
            ("mac-1", OsTemplate::MacOs),
            ("win-1", OsTemplate::Windows),
        ],
    )
    .await;
    let ubuntu = agents[0].profile().clone();
    eventually("vitals flushed", || async {
        let (_, body) = admin.get("/hosts").await;
        body["hosts"]
            .as_array()
            .is_some_and(|h| h.len() == 3 && h.iter().all(|h| h["primary_ip"] != ""))
    })
    .await;

    let (status, body) = admin
        .get("/hosts?order_key=hostname&order_direction=desc")
        .await;
    assert_eq!(status, 200);
    let names = hostnames(&body);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    let host = body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == ubuntu.hostname.as_str())
        .unwrap()
        .clone();
    assert_eq!(host["status"], "online");
    assert_eq!(host["platform"], "ubuntu");
    assert_eq!(host["hardware_serial"], ubuntu.hardware_serial.as_str());
    assert!(host["memory"].as_i64().unwrap() > 0);
    assert!(host["osquery_version"].as_str().unwrap().starts_with('5'));
    let expected_display = if host["computer_name"] == "" {
        &host["hostname"]
    } else {
        &host["computer_name"]
    };
    assert_eq!(&host["display_name"], expected_display);
    assert!(host["distributed_interval"].as_i64().unwrap() > 0);
    let seen = chrono_seconds(host["seen_time"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - seen).abs() < 30,
        "seen_time is the exact check-in time"
    );

    // Paging.
    let (_, first) = admin.get("/hosts?per_page=2&page=0&order_key=id").await;
    let (_, second) = admin.get("/hosts?per_page=2&page=1&order_key=id").await;
    assert_eq!(hostnames(&first).len(), 2);
    assert_eq!(hostnames(&second).len(), 1);
    assert!(!hostnames(&first).contains(&hostnames(&second)[0]));
    assert_eq!(admin.get("/hosts?order_key=password").await.0, 400);
    assert_eq!(admin.get("/hosts?status=sleepy").await.0, 400);
    // A page is at most 10,000 rows: a million is refused, not built.
    let (status, refused) = admin.get("/hosts?per_page=1000000").await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.to_string().contains("at most 10000"), "{refused}");
    assert_eq!(admin.get("/hosts?per_page=10000").await.0, 200);
    assert_eq!(admin.get("/activities?per_page=10001").await.0, 400);
    assert_eq!(admin.get("/users?per_page=10001").await.0, 400);

    // Filters and counts.
    let count = |query: &'static str| {
        let admin = admin.clone();
        async move {
            let (status, body) = admin.get(&format!("/hosts/count{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            body["count"].as_u64().unwrap()
        }
    };
    assert_eq!(count("").await, 3);
    assert_eq!(count("?status=online").await, 3);
    assert_eq!(count("?status=offline").await, 0);
    assert_eq!(count("?status=new").await, 3);
    assert_eq!(count("?status=missing").await, 0);
    let search = format!("?query={}", &ubuntu.hardware_serial[..6]);
    let (_, found) = admin.get(&format!("/hosts{search}")).await;
    assert_eq!(hostnames(&found), vec![ubuntu.hostname.clone()]);

    let (_, summary) = admin.get("/host_summary").await;
    assert_eq!(summary["totals_hosts_count"], 3);
    assert_eq!(summary["online_count"], 3);
    assert_eq!(summary["offline_count"], 0);
    assert_eq!(summary["new_count"], 3);
    assert_eq!(summary["all_linux_count"], 1);
    assert_eq!(summary["platforms"].as_array().unwrap().len(), 3);
    assert_eq!(summary["builtin_labels"].as_array().unwrap().len(), 5);

    // One host, by id and by each identifier.
    let id = host["id"].as_u64().unwrap();
    let (status, detail) = admin.get(&format!("/hosts/{id}")).await;
    assert_eq!(status, 200);
    let labels: Vec<&str> = detail["host"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["All Hosts", "Ubuntu Linux"]);
    assert!(detail["host"]["packs"].as_array().unwrap().is_empty());
    for identifier in [
        &ubuntu.hostname,
        &ubuntu.hardware_uuid,
        &ubuntu.hardware_serial,
        &"ubuntu-1".to_owned(),
    ] {
        let (status, body) = admin.get(&format!("/hosts/identifier/{identifier}")).await;
        assert_eq!(status, 200, "{identifier}");
        assert_eq!(body["host"]["id"], id);
    }
    assert_eq!(admin.get("/hosts/identifier/nothing-like-it").await.0, 404);
    assert_eq!(admin.get("/hosts/99999").await.0, 404);
    assert_eq!(admin.get("/hosts/abc").await.0, 400);

    // Deleting a host: gone from the API, and its agent is told to enroll again.
    let (status, _) = admin.delete(&format!("/hosts/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(admin.get(&format!("/hosts/{id}")).await.0, 404);
    assert_eq!(count("").await, 2);
    let agent = &mut agents[0];
    let report = agent.run_distributed_cycle(&answerer(agent)).await;
    assert!(report.read_ok, "{report:?}");
    assert_eq!(
        agent.stats().node_invalid,
        1,
        "the deleted host's key was refused"
    );
    let (_, again) = admin
        .get(&format!("/hosts/identifier/{}", ubuntu.hostname))
        .await;
    assert_ne!(again["host"]["id"], id, "it came back as a new host");
    let (_, activities) = admin.get("/activities").await;
    assert_eq!(activities["activities"][0]["type"], "deleted_host");
    assert_eq!(activities["activities"][0]["details"]["host_id"], id);
}

/// Unix seconds of an RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` time.
fn chrono_seconds(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

#[tokio::test]
async fn teams_secrets_transfer_and_scoped_views() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    hosts_with_vitals(
        &server,
        &[
            ("global-1", OsTemplate::Ubuntu),
            ("global-2", OsTemplate::MacOs),
        ],
    )
    .await;

    let (status, body) = admin
        .post(
            "/teams",
            &json!({"name": "Servers", "description": "racks"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let team = body["team"]["id"].as_u64().unwrap();
    let secret = body["team"]["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 24, "a generated secret: {secret}");
    assert_eq!(
        admin.post("/teams", &json!({"name": "servers"})).await.0,
        409
    );
    let (_, secrets) = admin.get(&format!("/teams/{team}/secrets")).await;
    assert_eq!(secrets["secrets"][0]["secret"], secret.as_str());
    assert_eq!(secrets["secrets"][0]["team_id"], team);

    // A host enrolling with the team's secret lands in the team.
    let team_agent = server.agent_with_secret("team-host", OsTemplate::Ubuntu, &secret);
    team_agent.enroll().await.unwrap();
    let (_, in_team) = admin.get(&format!("/hosts?team_id={team}")).await;
    let in_team = hostnames(&in_team);
    assert_eq!(in_team.len(), 1);
    assert_eq!(in_team[0], team_agent.profile().hostname);

    // Transfer: one global host joins the team, in the database and the registry.
    let (_, global) = admin.get("/hosts/identifier/global-1").await;
    let global_id = global["host"]["id"].as_u64().unwrap();
    let (status, _) = admin
        .post(
            "/hosts/transfer",
            &json!({"team_id": team, "hosts": [global_id]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, moved) = admin.get(&format!("/hosts/{global_id}")).await;
    assert_eq!(moved["host"]["team_id"], team);
    assert_eq!(moved["host"]["team_name"], "Servers");
    let (_, no_team) = admin.get("/hosts/count?team_id=0").await;
    assert_eq!(no_team["count"], 1);
    let (_, team_body) = admin.get(&format!("/teams/{team}")).await;
    assert_eq!(team_body["team"]["host_count"], 2);

    // A team observer sees only the team's hosts and cannot change anything.
    let (_, observer) = user_with(
        &server,
        &admin,
        "watcher@example.com",
        json!({"teams": [{"id": team, "role": "observer"}]}),
    )
    .await;
    let (_, visible) = observer.get("/hosts").await;
    assert_eq!(hostnames(&visible).len(), 2);
    let (_, outside) = admin.get("/hosts/identifier/global-2").await;
    let outside_id = outside["host"]["id"].as_u64().unwrap();
    assert_eq!(observer.get(&format!("/hosts/{outside_id}")).await.0, 403);
    assert_eq!(observer.delete(&format!("/hosts/{global_id}")).await.0, 403);
    assert_eq!(observer.get(&format!("/teams/{team}/secrets")).await.0, 403);
    let (_, teams) = observer.get("/teams").await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 1);
    assert_eq!(teams["teams"][0]["user_count"], 1);
    let (_, summary) = observer.get("/host_summary").await;
    assert_eq!(summary["totals_hosts_count"], 2);

    // Replacing the team's secrets: the old one stops enrolling, the new one works.
    let (status, replaced) = admin
        .patch(
            &format!("/teams/{team}/secrets"),
            &json!({"secrets": [{"secret": "new-team-secret"}]}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["secrets"].as_array().unwrap().len(), 1);
    let stale = server.agent_with_secret("stale-host", OsTemplate::Ubuntu, &secret);
    assert!(
        stale.enroll().await.is_err(),
        "the replaced secret no longer enrolls"
    );
    let fresh = server.agent_with_secret("fresh-host", OsTemplate::Windows, "new-team-secret");
    fresh.enroll().await.unwrap();
    let (_, fresh_host) = admin.get("/hosts/identifier/fresh-host").await;
    assert_eq!(fresh_host["host"]["team_id"], team);

    // Global secrets.
    let (_, spec) = admin.get("/spec/enroll_secret").await;
    assert_eq!(spec["spec"]["secrets"][0]["secret"], flotilla_tests::SECRET);
    let (status, _) = admin
        .post(
            "/spec/enroll_secret",
            &json!({"spec": {"secrets": [{"secret": "global-2"}]}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        server
            .agent("late", OsTemplate::Ubuntu)
            .enroll()
            .await
            .is_err()
    );
    server
        .agent_with_secret("late", OsTemplate::Ubuntu, "global-2")
        .enroll()
        .await
        .unwrap();

    // Renaming, then deleting the team: its hosts move to no team, its secret stops working.
    let (status, renamed) = admin
        .patch(&format!("/teams/{team}"), &json!({"name": "Racks"}))
        .await;
    assert_eq!(
        (status, renamed["team"]["name"].as_str()),
        (200, Some("Racks"))
    );
    assert_eq!(admin.delete(&format!("/teams/{team}")).await.0, 200);
    assert_eq!(admin.get(&format!("/teams/{team}")).await.0, 404);
    let (_, moved) = admin.get(&format!("/hosts/{global_id}")).await;
    assert_eq!(moved["host"]["team_id"], Value::Null);
    let orphan = server.agent_with_secret("orphan", OsTemplate::Ubuntu, "new-team-secret");
    assert!(orphan.enroll().await.is_err());
    let (_, activities) = admin.get("/activities?per_page=50").await;
    let kinds: Vec<&str> = activities["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    for kind in [
        "created_team",
        "deleted_team",
        "transferred_hosts",
        "edited_enroll_secrets",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn labels_builtin_by_platform_and_manual() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    hosts_with_vitals(
        &server,
        &[
            ("lab-ubuntu", OsTemplate::Ubuntu),
            ("lab-mac", OsTemplate::MacOs),
            ("lab-win", OsTemplate::Windows),
        ],
    )
    .await;

    let (status, labels) = admin.get("/labels").await;
    assert_eq!(status, 200);
    let label = |name: &str| {
        labels["labels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("label {name}"))
            .clone()
    };
    assert_eq!(label("All Hosts")["host_count"], 3);
    assert_eq!(label("All Hosts")["query"], "SELECT 1;");
    assert_eq!(label("macOS")["host_count"], 1);
    assert_eq!(label("MS Windows")["host_count"], 1);
    assert_eq!(label("CentOS Linux")["host_count"], 0);
    assert_eq!(label("macOS")["label_type"], "builtin");
    let macos = label("macOS")["id"].as_u64().unwrap();
    let (_, mac_hosts) = admin.get(&format!("/labels/{macos}/hosts")).await;
    assert_eq!(hostnames(&mac_hosts).len(), 1);
    assert_eq!(mac_hosts["hosts"][0]["platform"], "darwin");
    let (status, body) = admin
        .patch(&format!("/labels/{macos}"), &json!({"name": "Apple"}))
        .await;
    assert_eq!(status, 422, "builtins are fixed: {body}");
    assert_eq!(admin.delete("/labels/macOS").await.0, 422);

    // A manual label from identifiers.
    let (status, body) = admin
        .post("/labels", &json!({"name": "canaries", "description": "upgrade first", "hosts": ["lab-ubuntu", "lab-win"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"]["label_membership_type"], "manual");
    assert_eq!(body["label"]["host_count"], 2);
    let canaries = body["label"]["id"].as_u64().unwrap();
    let (_, members) = admin.get(&format!("/hosts?label_id={canaries}")).await;
    assert_eq!(hostnames(&members).len(), 2);
    let (status, body) = admin
        .post(
            "/labels",
            &json!({"name": "typo", "hosts": ["no-such-host"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(fleet_error(&body).contains("no-such-host"));
    assert_eq!(
        admin
            .post("/labels", &json!({"name": "canaries", "hosts": []}))
            .await
            .0,
        409
    );

    let (status, body) = admin
        .patch(
            &format!("/labels/{canaries}"),
            &json!({"hosts": ["lab-mac"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"]["host_count"], 1);
    let (_, detail) = admin.get("/hosts/identifier/lab-mac").await;
    let names: Vec<&str> = detail["host"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["All Hosts", "macOS", "canaries"]);

    // A dynamic label is stored with its query; its members come from the hosts' answers.
    let (status, body) = admin
        .post("/labels", &json!({"name": "docker hosts", "query": "SELECT 1 FROM processes WHERE name = 'dockerd';", "platform": "ubuntu"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["label"]["label_membership_type"], "dynamic");
    assert_eq!(body["label"]["host_count"], 0);
    let dynamic = body["label"]["id"].as_u64().unwrap();

    let (_, summary) = admin.get("/labels/summary").await;
    assert_eq!(summary["labels"].as_array().unwrap().len(), 7);
    assert_eq!(admin.delete("/labels/canaries").await.0, 200);
    assert_eq!(admin.delete(&format!("/labels/id/{dynamic}")).await.0, 200);
    assert_eq!(admin.get(&format!("/labels/{canaries}")).await.0, 404);
    let (_, activities) = admin.get("/activities").await;
    assert_eq!(activities["activities"][0]["type"], "deleted_label");
    assert_eq!(
        activities["activities"][0]["details"]["label_name"],
        "docker hosts"
    );
}

#[tokio::test]
async fn saved_queries_and_the_activity_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let (_, observer) = user_with(
        &server,
        &admin,
        "reader@example.com",
        json!({"global_role": "observer"}),
    )
    .await;

    let (status, body) = admin
        .post("/queries", &json!({"name": "osquery info", "query": "SELECT * FROM osquery_info;", "description": "versions", "observer_can_run": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    let query = body["query"].clone();
    assert_eq!(query["saved"], true);
    assert_eq!(query["logging"], "snapshot");
    assert_eq!(query["interval"], 0);
    assert_eq!(query["author_email"], ADMIN_EMAIL);
    assert_eq!(query["team_id"], Value::Null);
    assert!(query["packs"].as_array().unwrap().is_empty());
    assert_eq!(query["stats"]["total_executions"], 0);
    let id = query["id"].as_u64().unwrap();
    let (status, _) = admin
        .post(
            "/queries",
            &json!({"name": "osquery info", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(status, 409, "names are unique");
    for bad in [
        json!({"name": "", "query": "SELECT 1;"}),
        json!({"name": "x", "query": ""}),
        json!({"name": "x", "query": "SELECT 1;", "logging": "sometimes"}),
        json!({"name": "x", "query": "SELECT 1;", "platform": "amiga"}),
    ] {
        assert_eq!(admin.post("/queries", &bad).await.0, 422, "{bad}");
    }

    // Observers read queries but cannot change them.
    let (status, list) = observer.get("/queries").await;
    assert_eq!(status, 200);
    assert_eq!(list["queries"].as_array().unwrap().len(), 1);
    let (_, fetched) = observer.get(&format!("/queries/{id}")).await;
    assert_eq!(fetched["query"]["query"], "SELECT * FROM osquery_info;");
    assert_eq!(
        observer
            .patch(&format!("/queries/{id}"), &json!({"interval": 60}))
            .await
            .0,
        403
    );
    assert_eq!(observer.delete("/queries/osquery%20info").await.0, 403);

    let (status, patched) = admin
        .patch(
            &format!("/queries/{id}"),
            &json!({"interval": 3600, "logging": "differential", "platform": "darwin,linux"}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["query"]["interval"], 3600);
    assert_eq!(patched["query"]["logging"], "differential");
    assert_eq!(
        patched["query"]["description"], "versions",
        "unchanged fields stay"
    );
    let (_, found) = admin.get("/queries?query=osquery_info").await;
    assert_eq!(found["queries"].as_array().unwrap().len(), 1);
    let (_, none) = admin.get("/queries?query=nothing").await;
    assert!(none["queries"].as_array().unwrap().is_empty());

    // Three ways to delete.
    assert_eq!(admin.delete("/queries/osquery%20info").await.0, 200);
    assert_eq!(admin.get(&format!("/queries/{id}")).await.0, 404);
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let (_, body) = admin
            .post("/queries", &json!({"name": name, "query": "SELECT 1;"}))
            .await;
        ids.push(body["query"]["id"].as_u64().unwrap());
    }
    assert_eq!(
        admin.delete(&format!("/queries/id/{}", ids[0])).await.0,
        200
    );
    let (status, deleted) = admin
        .post("/queries/delete", &json!({"ids": [ids[1], ids[2], 9999]}))
        .await;
    assert_eq!((status, deleted["deleted"].as_u64()), (200, Some(2)));
    let (_, list) = admin.get("/queries").await;
    assert!(list["queries"].as_array().unwrap().is_empty());

    // The activity log, newest first, paged.
    let (status, log) = admin.get("/activities").await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = log["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "deleted_multiple_saved_query");
    for kind in [
        "created_user",
        "user_logged_in",
        "created_saved_query",
        "edited_saved_query",
        "deleted_saved_query",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let created = log["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "created_saved_query")
        .unwrap();
    assert_eq!(created["actor_email"], ADMIN_EMAIL);
    assert!(created["details"]["query_name"].is_string());
    assert_eq!(log["meta"]["has_previous_results"], false);
    let (_, page) = admin.get("/activities?per_page=2&page=1").await;
    assert_eq!(page["activities"].as_array().unwrap().len(), 2);
    assert_eq!(page["meta"]["has_next_results"], true);
    assert_eq!(page["meta"]["has_previous_results"], true);
    let (_, oldest) = admin
        .get("/activities?order_direction=asc&per_page=1")
        .await;
    assert_eq!(oldest["activities"][0]["type"], "user_logged_in");
}

/// An admin body over the 2 MiB the server takes is a 413 in Fleet's JSON, over HTTP/1.1 and
/// HTTP/2 alike, and nothing of it is stored.
#[tokio::test]
async fn an_oversized_admin_body_is_a_413_in_fleets_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let huge = json!({"name": "huge", "query": format!("SELECT '{}';", "x".repeat(3 << 20))});
    let (status, body) = admin.post("/queries", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["message"], "Request Entity Too Large", "{body}");
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2097152 bytes")),
        "{body}"
    );
    let (status, login) = admin
        .post(
            "/login",
            &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();
    for version in [reqwest::Version::HTTP_11, reqwest::Version::HTTP_2] {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
            .resolve("localhost", server.addr);
        builder = if version == reqwest::Version::HTTP_2 {
            builder.http2_prior_knowledge()
        } else {
            builder.http1_only()
        };
        let response = builder
            .build()
            .unwrap()
            .post(format!("{}/api/latest/fleet/queries", server.url()))
            .bearer_auth(&token)
            .json(&huge)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version:?}: no answer: {e}"));
        assert_eq!(response.version(), version);
        assert_eq!(response.status(), 413, "{version:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "Request Entity Too Large");
    }
    // A client still sending when the server has decided gets the 413, not a reset connection,
    // whether it declared the length or not.
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", server.addr)
        .http1_only()
        .build()
        .unwrap();
    const CHUNKS: usize = 12;
    const CHUNK: usize = 256 << 10;
    for declared in [true, false] {
        let slow = futures_util::stream::iter(0..CHUNKS).then(|_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, std::io::Error>(vec![b' '; CHUNK])
        });
        let mut request = client
            .post(format!("{}/api/latest/fleet/queries", server.url()))
            .bearer_auth(&token)
            .body(reqwest::Body::wrap_stream(slow));
        if declared {
            request = request.header("content-length", (CHUNKS * CHUNK).to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("declared length {declared}: no answer: {e:?}"));
        assert_eq!(response.status(), 413, "declared length {declared}");
    }
    let (_, queries) = admin.get("/queries").await;
    assert!(
        !queries.to_string().contains("\"huge\""),
        "nothing was stored: {queries}"
    );
}

/// Eleven failed logins that a load balancer says came from `attacker`, then the right password
/// from `admin_desk`: the status of that last login.
async fn login_after_an_attack_through_a_proxy(server: &Server) -> u16 {
    let url = format!("{}/api/latest/fleet/login", server.url());
    let client = server.client();
    let login = |from: &'static str, password: &'static str| {
        client
            .post(&url)
            .header("X-Forwarded-For", from)
            .json(&json!({"email": ADMIN_EMAIL, "password": password}))
            .send()
    };
    for _ in 0..11 {
        let response = login("203.0.113.66", "wrong-password-1!").await.unwrap();
        assert_eq!(response.status(), 401);
    }
    login("198.51.100.7", ADMIN_PASSWORD)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_client_addresses_count_only_from_trusted_proxies() {
    // Nobody is trusted by default: the header is ignored, every login comes from 127.0.0.1,
    // and the attacker's failures close that address for the admin too.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    assert_eq!(login_after_an_attack_through_a_proxy(&server).await, 429);
    drop(server);

    // Behind a trusted balancer each client is its own address: the admin logs in.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &["--trusted-proxies", "127.0.0.1"]);
    assert_eq!(login_after_an_attack_through_a_proxy(&server).await, 200);
    let (status, body) = server.admin().await.get("/activities").await;
    assert_eq!(status, 200, "{body}");
    // The login through the balancer is recorded with the client's address (this client's
    // own login, without the header, with the socket's).
    let addresses: Vec<&Value> = body["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["type"] == "user_logged_in")
        .map(|a| &a["details"]["public_ip"])
        .collect();
    assert!(addresses.contains(&&json!("198.51.100.7")), "{body}");
    assert!(addresses.contains(&&json!("127.0.0.1")), "{body}");
}

/// Opt-in usage statistics: nothing is sent until `enable_analytics` is on, then one POST per
/// period reaches the receiver with a stable anonymous identifier and exactly the preview's
/// fields, and nothing in it names a host, a person, an address or a secret; turned off, the
/// sending stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_statistics_are_opt_in_periodic_and_anonymous() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let receiver = axum::Router::new().route(
        "/receive",
        axum::routing::post({
            let received = received.clone();
            move |axum::Json(body): axum::Json<Value>| async move {
                received.lock().unwrap().push(body);
                "thanks"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let url = format!("http://127.0.0.1:{port}/receive");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        dir.path(),
        &[
            "--usage-statistics-url",
            &url,
            "--usage-statistics-interval",
            "1s",
        ],
    );
    let admin = server.admin().await;
    let _agents = hosts_with_vitals(
        &server,
        &[
            ("private-host-alpha", OsTemplate::Ubuntu),
            ("private-host-beta", OsTemplate::MacOs),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing is sent while enable_analytics is off"
    );

    let (status, body) = admin
        .patch(
            "/config",
            &json!({"server_settings": {"enable_analytics": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..150 {
        if received.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        received.lock().unwrap().len() >= 2,
        "statistics were sent each period"
    );
    let (status, preview) = admin.get("/statistics/preview").await;
    assert_eq!(status, 200, "{preview}");
    let sent = received.lock().unwrap().clone();
    let identifier = preview["anonymousIdentifier"].as_str().unwrap();
    assert!(identifier.len() >= 64, "{identifier}");
    assert!(sent.iter().all(|s| s["anonymousIdentifier"] == identifier));
    assert_eq!(preview["numHostsEnrolled"], 2);
    assert_eq!(sent.last().unwrap()["numHostsEnrolled"], 2);
    assert_eq!(preview["numUsers"], 1);
    assert_eq!(preview["resultLogDestination"], "filesystem");
    assert_eq!(
        preview["hostsEnrolledByOperatingSystem"]
            .as_object()
            .unwrap()
            .len(),
        2,
        "{preview}"
    );
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(sent.last().unwrap()), keys(&preview));

    // Nothing personal: no hostname, serial, UUID or address of a host, no email, no secret.
    let (_, hosts) = admin.get("/hosts").await;
    let mut private: Vec<String> = vec![
        ADMIN_EMAIL.into(),
        flotilla_tests::SECRET.into(),
        "127.0.0.1".into(),
        "private-host".into(),
    ];
    for host in hosts["hosts"].as_array().unwrap() {
        for field in [
            "hardware_serial",
            "uuid",
            "primary_ip",
            "primary_mac",
            "computer_name",
        ] {
            if let Some(value) = host[field].as_str().filter(|v| v.len() > 3) {
                private.push(value.to_owned());
            }
        }
    }
    let text = format!("{}{preview}", Value::Array(sent));
    for word in &private {
        assert!(!text.contains(word.as_str()), "{word} was sent: {text}");
    }

    // Only a global admin sees the preview.
    let (_, observer) = user_with(
        &server,
        &admin,
        "watcher@example.com",
        json!({"global_role": "observer"}),
    )
    .await;
    assert_eq!(observer.get("/statistics/preview").await.0, 403);

    // Turned off, the sending stops.
    let (status, _) = admin
        .patch(
            "/config",
            &json!({"server_settings": {"enable_analytics": false}}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = received.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(received.lock().unwrap().len(), before);
}

/// With `--activity-audit-log-plugin`, every activity is also one JSON line of the audit log,
/// in the activity's shape, with its actor; without it there is no audit log.
#[tokio::test]
async fn activities_go_to_the_audit_log_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with_admin(dir.path(), &["--activity-audit-log-plugin", "filesystem"]);
    let admin = server.admin().await;
    let (status, body) = admin
        .post(
            "/queries",
            &json!({"name": "audited", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let path = server.data_dir.join("logs/audit.log");
    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["user_logged_in", "created_saved_query"],
        "{lines:?}"
    );
    let created = &lines[1];
    assert_eq!(created["actor_email"], ADMIN_EMAIL);
    assert_eq!(created["details"]["query_name"], "audited");
    assert_eq!(created["fleet_initiated"], false);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let (_, activities) = admin.get("/activities").await;
    assert_eq!(activities["activities"].as_array().unwrap().len(), 2);

    let plain = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(plain.path(), &[]);
    server.admin().await;
    assert!(!server.data_dir.join("logs/audit.log").exists());
}
