//! The agent side beside osqueryd: orbit (fleetd's agent manager) and Fleet Desktop, driven by
//! a simulated fleetd that follows their client code (`flotilla_loadtest::fleetd`), against the
//! real server on its embedded defaults — and the osqueryd that orbit starts, enrolling into
//! the same host.

use std::time::Duration;

use flotilla_loadtest::fleetd::{FleetdError, FleetdHost};
use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{SECRET, Server};
use serde_json::{Value, json};

fn host(uuid: &str, hostname: &str) -> FleetdHost {
    FleetdHost {
        hardware_uuid: uuid.into(),
        hardware_serial: "SER-1".into(),
        hostname: hostname.into(),
        computer_name: hostname.into(),
        hardware_model: "ThinkPad".into(),
        platform: "ubuntu".into(),
        osquery_identifier: String::new(),
    }
}

/// An answerer for osqueryd started by orbit: its registry has orbit's `orbit_info` table.
fn orbit_answerer(agent: &SimAgent) -> TemplateAnswerer {
    let mut profile = agent.profile().clone();
    profile.orbit = Some(flotilla_loadtest::fleetd::FLEETD_VERSION.into());
    TemplateAnswerer::new(profile, LiveQueryProfile::default())
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn raw(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .client()
        .request(method, format!("{}{path}", server.url()));
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

#[tokio::test]
async fn orbit_enrolls_pulls_config_and_shares_one_host_with_the_osqueryd_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;

    // A wrong secret is a 401 (orbit backs off and retries); no hardware UUID a clear 400.
    let stranger = server.fleetd(host("U-X", "x"), "not-the-secret", 1);
    assert!(matches!(
        stranger.enroll().await,
        Err(FleetdError::Unauthenticated)
    ));
    let (status, _, body) = raw(
        &server,
        reqwest::Method::POST,
        "/api/fleet/orbit/enroll",
        Some(&json!({"enroll_secret": SECRET, "hostname": "h"}).to_string()),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["reason"], "hardware uuid is empty");

    // Agent options orbit reads: flags and an extension for Linux.
    let (status, _) = admin
        .patch(
            "/config",
            &json!({"agent_options": {
                "config": {"options": {"distributed_interval": 10}},
                "command_line_flags": {"verbose": true},
                "extensions": {"hello": {"channel": "stable", "platform": "linux"},
                               "mac_only": {"channel": "stable", "platform": "macos"}},
                "update_channels": {"orbit": "stable", "osqueryd": "5.12.1", "desktop": "stable"}
            }}),
        )
        .await;
    assert_eq!(status, 200);

    // orbit first: osqueryd, started by orbit with --host_identifier=uuid, comes second.
    let uuid = "6f1c1a5e-0d3b-4c2a-9b8e-1f2d3c4b5a69";
    let fleetd = server.fleetd(host(uuid, "laptop-1"), SECRET, 1);
    let config = fleetd.config().await.unwrap();
    assert!(fleetd.node_key().is_some(), "config enrolled orbit first");
    assert_eq!(
        config["command_line_startup_flags"],
        json!({"verbose": true})
    );
    assert_eq!(
        config["extensions"],
        json!({"hello": {"channel": "stable", "platform": "linux"}})
    );
    assert_eq!(config["update_channels"]["osqueryd"], "5.12.1");
    assert!(config["script_execution_timeout"].as_u64().unwrap() > 0);
    assert_eq!(
        config["notifications"]["pending_script_execution_ids"],
        json!([])
    );
    let caps = fleetd.ping().await.unwrap();
    for cap in ["orbit_endpoints", "token_rotation", "end_user_email"] {
        assert!(caps.split(',').any(|c| c == cap), "{cap} in {caps}");
    }

    let mut osqueryd = server.agent(uuid, OsTemplate::Ubuntu);
    osqueryd.enroll().await.unwrap();
    let answers = orbit_answerer(&osqueryd);
    let report = osqueryd.run_distributed_cycle(&answers).await;
    assert!(
        report
            .answered
            .iter()
            .any(|q| q == "fleet_detail_query_orbit_info"),
        "orbit_info goes out with the details: {:?}",
        report.answered
    );
    // The second machine: osquery enrolled first under its hostname; orbit (no identifier of
    // its own) is matched by hardware UUID.
    let web = server.agent("web-2", OsTemplate::Ubuntu);
    web.enroll().await.unwrap();
    let web_fleetd = server.fleetd(host(&web.profile().hardware_uuid, "web-2"), SECRET, 1);
    web_fleetd.config().await.unwrap();

    until("the host list shows one row per machine", || async {
        let (_, hosts) = admin.get("/hosts").await;
        hosts["hosts"].as_array().is_some_and(|h| h.len() == 2)
    })
    .await;
    let (_, hosts) = admin.get("/hosts").await;
    let laptop = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["uuid"]
                .as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
                || h["osquery_host_id"] == uuid
        })
        .cloned()
        .expect("the laptop is listed");
    let id = laptop["id"].as_u64().unwrap();
    until("orbit_info fills the agent versions", || async {
        let (_, detail) = admin.get(&format!("/hosts/{id}")).await;
        detail["host"]["orbit_version"] == "1.38.0"
    })
    .await;
    let (_, detail) = admin.get(&format!("/hosts/{id}")).await;
    assert_eq!(detail["host"]["fleet_desktop_version"], "1.38.0");
    assert_eq!(detail["host"]["scripts_enabled"], false);

    // Someone else enrolls the same machine's orbit (a reinstall): the first orbit's key is
    // retired, its next config pull is a 401, it wipes the key and enrolls again — one host.
    let reinstall = server.fleetd(host(uuid, "laptop-1"), SECRET, 1);
    reinstall.config().await.unwrap();
    assert!(matches!(
        fleetd.config().await,
        Err(FleetdError::Unauthenticated)
    ));
    assert!(
        fleetd.node_key().is_none(),
        "a 401 makes orbit forget its key"
    );
    fleetd.config().await.unwrap();
    assert!(matches!(
        reinstall.config().await,
        Err(FleetdError::Unauthenticated)
    ));
    // The osqueryd of that machine kept working throughout.
    assert!(osqueryd.run_distributed_cycle(&answers).await.read_ok);
    let (_, count) = admin.get("/hosts/count").await;
    assert_eq!(count["count"], 2);

    // Bad input: Fleet's JSON errors, never a plain-text one.
    for (method, path, body, want) in [
        (
            reqwest::Method::POST,
            "/api/fleet/orbit/config",
            Some("{not json"),
            400,
        ),
        (
            reqwest::Method::POST,
            "/api/fleet/orbit/config",
            Some("{}"),
            401,
        ),
        (
            reqwest::Method::POST,
            "/api/fleet/orbit/config",
            Some(r#"{"orbit_node_key":"nope"}"#),
            401,
        ),
        (
            reqwest::Method::POST,
            "/api/fleet/orbit/no_such_route",
            Some("{}"),
            404,
        ),
        (
            reqwest::Method::POST,
            "/api/fleet/orbit/scripts/request",
            Some(r#"{"orbit_node_key":"nope","execution_id":"e"}"#),
            401,
        ),
    ] {
        let (status, headers, body) = raw(&server, method, path, body).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(
            body["message"].is_string(),
            "{path}: Fleet's JSON error, got {body}"
        );
        assert!(headers.contains_key("x-fleet-capabilities"), "{path}");
    }
    // With a valid key, queued work is simply not there.
    let key = fleetd.node_key().unwrap();
    let (status, _, _) = raw(
        &server,
        reqwest::Method::POST,
        "/api/fleet/orbit/scripts/request",
        Some(&json!({"orbit_node_key": key, "execution_id": "e-1"}).to_string()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = raw(
        &server,
        reqwest::Method::PUT,
        "/api/fleet/orbit/device_mapping",
        Some(&json!({"orbit_node_key": key, "email": "pat@example.com"}).to_string()),
    )
    .await;
    assert_eq!(status, 200);
    let (_, detail) = admin.get(&format!("/hosts/{id}")).await;
    assert_eq!(
        detail["host"]["device_mapping"],
        json!([{"email": "pat@example.com", "source": "custom"}])
    );
}

#[tokio::test]
async fn fleet_desktop_authenticates_with_the_rotating_device_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let fleetd = server.fleetd(host("U-DESK", "desk-1"), SECRET, 1);
    let other = server.fleetd(host("U-OTHER", "desk-2"), SECRET, 1);

    // The first tick enrolls, pulls config, sets a token and polls Desktop's summary.
    fleetd.tick().await;
    let token = fleetd.device_token().expect("orbit set a device token");
    assert_eq!(fleetd.failing_policies(), Some(0));
    assert_eq!(fleetd.counters.desktop.errors(), 0);
    fleetd.check_device_token(&token).await.unwrap();

    // A token another host holds is refused (409); an empty or URL-unsafe one is a 400.
    other.tick().await;
    assert!(matches!(
        other.set_device_token(&token).await,
        Err(FleetdError::Conflict)
    ));
    for bad in ["", "has space", "slash/inside"] {
        match other.set_device_token(bad).await {
            Err(FleetdError::Status(400, _)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }

    // Rotation: the new token works at once and the old one still does (a page opened just
    // before the rotation keeps working).
    let rotated = fleetd.rotate_device_token().await.unwrap();
    assert_ne!(rotated, token);
    fleetd.check_device_token(&rotated).await.unwrap();
    fleetd.check_device_token(&token).await.unwrap();
    fleetd.rotate_device_token().await.unwrap();
    assert!(
        fleetd.check_device_token(&token).await.is_err(),
        "two rotations ago"
    );

    let current = fleetd.device_token().unwrap();
    let device = |path: &str| format!("/api/latest/fleet/device/{current}{path}");
    let (status, _, page) = raw(&server, reqwest::Method::GET, &device(""), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["host"]["hostname"], "desk-1");
    assert!(page["global_config"]["features"].is_object());
    assert!(page["host"]["labels"].is_array());
    let (status, _, desktop) = raw(&server, reqwest::Method::GET, &device("/desktop"), None).await;
    assert_eq!(status, 200);
    assert_eq!(desktop["failing_policies_count"], 0);
    assert!(desktop["config"]["org_info"].is_object());
    let (status, _, software) =
        raw(&server, reqwest::Method::GET, &device("/software"), None).await;
    assert_eq!((status, software["count"].clone()), (200, json!(0)));
    let (status, _, _) = raw(&server, reqwest::Method::POST, &device("/refetch"), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = raw(
        &server,
        reqwest::Method::POST,
        &device("/debug/errors"),
        Some(r#"{"error_source":"fleet-desktop","error_message":"boom","vital":false}"#),
    )
    .await;
    assert_eq!(status, 200);

    // The transparency link goes where the settings say, else to Fleet's page.
    let no_redirects = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", server.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = |response: reqwest::Response| {
        assert_eq!(response.status().as_u16(), 307);
        response.headers()["location"].to_str().unwrap().to_owned()
    };
    let url = format!("{}{}", server.url(), device("/transparency"));
    let first = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(location(first), "https://fleetdm.com/transparency");
    let (status, _) = admin
        .patch(
            "/config",
            &json!({"fleet_desktop": {"transparency_url": "https://intranet.example.com/it"}}),
        )
        .await;
    assert_eq!(status, 200);
    until("the new transparency URL is served", || {
        let request = no_redirects.get(&url).send();
        async move { location(request.await.unwrap()) == "https://intranet.example.com/it" }
    })
    .await;

    // A bad token is a 401 in Fleet's JSON, and the host refetch took.
    let (status, _, body) = raw(
        &server,
        reqwest::Method::GET,
        "/api/latest/fleet/device/not-a-token/desktop",
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["errors"][0]["reason"],
        "invalid device authentication token"
    );
    let (status, headers, _) = raw(
        &server,
        reqwest::Method::HEAD,
        "/api/fleet/device/ping",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-fleet-capabilities"));

    // A deleted host's token stops working at once.
    let (_, hosts) = admin.get("/hosts?query=desk-1").await;
    let id = hosts["hosts"][0]["id"].as_u64().unwrap();
    let (_, detail) = admin.get(&format!("/hosts/{id}")).await;
    assert_eq!(detail["host"]["refetch_requested"], true);
    let (status, _) = admin.delete(&format!("/hosts/{id}")).await;
    assert_eq!(status, 200);
    assert!(matches!(
        fleetd.check_device_token(&current).await,
        Err(FleetdError::Unauthenticated)
    ));
    // …and orbit's key with it: orbit enrolls again as a new host, and sets a new token.
    assert!(matches!(
        fleetd.config().await,
        Err(FleetdError::Unauthenticated)
    ));
    fleetd.config().await.unwrap();
    let renewed = fleetd.rotate_device_token().await.unwrap();
    fleetd.check_device_token(&renewed).await.unwrap();
    let (_, count) = admin.get("/hosts/count").await;
    assert_eq!(count["count"], 2, "desk-2 and desk-1 enrolled anew");
}

/// Two nodes on MySQL and Redis, as behind a round-robin load balancer.
struct Pair {
    _dir: tempfile::TempDir,
    _database: flotilla_tests::ScratchDatabase,
    _redis: flotilla_tests::RedisServer,
    a: Server,
    b: Server,
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let database = flotilla_tests::ScratchDatabase::create().await;
        let redis = flotilla_tests::RedisServer::start();
        let url = redis.url();
        let node = |name: &str| {
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
        Pair {
            _dir: dir,
            _database: database,
            _redis: redis,
            a,
            b,
        }
    }
}

#[tokio::test]
async fn orbit_keys_and_device_tokens_work_on_every_node_at_once() {
    if flotilla_tests::skip_mysql() {
        return;
    }
    let pair = Pair::start().await;
    let on_a = pair.a.fleetd(host("U-PAIR", "pair-1"), SECRET, 1);
    on_a.config().await.unwrap();
    let key = on_a.node_key().unwrap();
    let token = on_a.rotate_device_token().await.unwrap();

    // Node B never saw this orbit enroll or set its token, and answers both at once.
    let config = json!({ "orbit_node_key": key }).to_string();
    let (status, _, body) = raw(
        &pair.b,
        reqwest::Method::POST,
        "/api/fleet/orbit/config",
        Some(&config),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let desktop = |token: &str| format!("/api/latest/fleet/device/{token}/desktop");
    let (status, _, _) = raw(&pair.b, reqwest::Method::GET, &desktop(&token), None).await;
    assert_eq!(status, 200);

    // Rotated on A: the new token and the one it replaced both work on B.
    let rotated = on_a.rotate_device_token().await.unwrap();
    for t in [&rotated, &token] {
        let (status, _, _) = raw(&pair.b, reqwest::Method::GET, &desktop(t), None).await;
        assert_eq!(status, 200, "{t}");
    }
    // A token in use is refused on the other node too.
    let on_b = pair.b.fleetd(host("U-PAIR-2", "pair-2"), SECRET, 1);
    assert!(matches!(
        on_b.set_device_token(&rotated).await,
        Err(FleetdError::Conflict)
    ));

    // orbit and osqueryd of one machine enrolling on different nodes are still one host.
    let mut osqueryd = pair.b.agent("U-PAIR", OsTemplate::Ubuntu);
    osqueryd.enroll().await.unwrap();
    assert!(
        osqueryd
            .run_distributed_cycle(&orbit_answerer(&osqueryd))
            .await
            .read_ok
    );
    let admin = pair.a.admin().await;
    let (_, count) = admin.get("/hosts/count").await;
    assert_eq!(count["count"], 2, "pair-1 (orbit and osquery) and pair-2");

    // Deleted on A: B stops taking the host's token and orbit key.
    let (_, hosts) = admin.get("/hosts?query=U-PAIR").await;
    let id = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["osquery_host_id"] == "U-PAIR")
        .unwrap()["id"]
        .as_u64()
        .unwrap();
    let (status, _) = admin.delete(&format!("/hosts/{id}")).await;
    assert_eq!(status, 200);
    until("node B forgets the deleted host's token", || async {
        raw(&pair.b, reqwest::Method::GET, &desktop(&rotated), None)
            .await
            .0
            == 401
    })
    .await;
    let (status, _, _) = raw(
        &pair.b,
        reqwest::Method::POST,
        "/api/fleet/orbit/config",
        Some(&config),
    )
    .await;
    assert_eq!(status, 401);
}

/// Creates a global policy through the admin API; answers its id.
async fn create_policy(admin: &flotilla_tests::AdminClient, name: &str, query: &str) -> u64 {
    let (status, body) = admin
        .post(
            "/global/policies",
            &json!({"name": name, "query": query, "resolution": "Fix it", "critical": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["policy"]["id"].as_u64().unwrap()
}

#[tokio::test]
async fn fleet_desktop_shows_a_failing_policy_as_soon_as_the_host_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let uuid = "1b7e0d52-8a8c-4d8e-b0c1-0c5d1e2f3a4b";
    let fleetd = server.fleetd(host(uuid, "laptop-9"), SECRET, 1);
    let mut osqueryd = server.agent(uuid, OsTemplate::Ubuntu);
    osqueryd.enroll().await.unwrap();
    fleetd.tick().await;
    let answers = orbit_answerer(&osqueryd);
    osqueryd.run_distributed_cycle(&answers).await;
    assert_eq!(fleetd.desktop_summary().await.unwrap(), 0, "no policy yet");

    // One policy this Ubuntu host fails, one it passes.
    let failing = create_policy(
        &admin,
        "FileVault on",
        "SELECT 1 FROM os_version WHERE platform = 'darwin';",
    )
    .await;
    let passing = create_policy(&admin, "Any OS", "SELECT 1 FROM os_version;").await;
    let report = osqueryd.run_distributed_cycle(&answers).await;
    for id in [failing, passing] {
        let name = format!("fleet_policy_query_{id}");
        assert!(
            report.answered.contains(&name),
            "{name} at the next check-in: {:?}",
            report.answered
        );
    }
    until(
        "Desktop's title turns red with one failing policy",
        || async { fleetd.desktop_summary().await.ok() == Some(1) },
    )
    .await;

    let token = fleetd.device_token().unwrap();
    let (status, _, body) = raw(
        &server,
        reqwest::Method::GET,
        &format!("/api/latest/fleet/device/{token}/policies"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let responses: std::collections::BTreeMap<u64, String> = body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_u64().unwrap(),
                p["response"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(responses[&failing], "fail");
    assert_eq!(responses[&passing], "pass");

    // The policy is fixed (changed so the host passes it): re-sent at the next check-in, and
    // the count goes back to zero.
    let (status, _) = admin
        .patch(
            &format!("/global/policies/{failing}"),
            &json!({"query": "SELECT 1 FROM os_version WHERE platform = 'ubuntu';"}),
        )
        .await;
    assert_eq!(status, 200);
    osqueryd.run_distributed_cycle(&answers).await;
    until("Desktop's title turns green again", || async {
        fleetd.desktop_summary().await.ok() == Some(0)
    })
    .await;
}

#[tokio::test]
async fn a_policy_created_on_one_node_reaches_desktop_through_the_other() {
    if flotilla_tests::skip_mysql() {
        return;
    }
    let pair = Pair::start().await;
    let uuid = "4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let fleetd = pair.b.fleetd(host(uuid, "pair-9"), SECRET, 1);
    fleetd.tick().await;
    let mut osqueryd = pair.b.agent(uuid, OsTemplate::Ubuntu);
    osqueryd.enroll().await.unwrap();
    let answers = orbit_answerer(&osqueryd);
    osqueryd.run_distributed_cycle(&answers).await;

    let admin = pair.a.admin().await;
    let id = create_policy(
        &admin,
        "Never true",
        "SELECT 1 FROM os_version WHERE 1 = 0;",
    )
    .await;
    let name = format!("fleet_policy_query_{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !osqueryd
        .run_distributed_cycle(&answers)
        .await
        .answered
        .contains(&name)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B never handed out the policy node A created"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until("Desktop on node B counts it", || async {
        fleetd.desktop_summary().await.ok() == Some(1)
    })
    .await;
    let (_, count) = admin.get("/hosts/count").await;
    assert_eq!(count["count"], 1);
}

#[tokio::test]
async fn refetch_is_for_whoever_may_see_the_host_and_bad_ids_get_fleets_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let agent = server.agent("refetch-1", OsTemplate::Ubuntu);
    agent.enroll().await.unwrap();
    let (_, hosts) = admin.get("/hosts").await;
    let id = hosts["hosts"][0]["id"].as_u64().unwrap();
    let (status, team) = admin.post("/teams", &json!({"name": "Elsewhere"})).await;
    assert_eq!(status, 200, "{team}");
    let team = team["team"]["id"].as_u64().unwrap();
    let user = |email: &'static str, roles: Value| {
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
    let observer = user("observer@example.com", json!({"global_role": "observer"})).await;
    let other_team = user(
        "team@example.com",
        json!({"teams": [{"id": team, "role": "maintainer"}]}),
    )
    .await;
    let path = format!("/hosts/{id}/refetch");
    assert_eq!(
        observer.post(&path, &json!({})).await.0,
        200,
        "observers may refetch"
    );
    assert_eq!(
        other_team.post(&path, &json!({})).await.0,
        403,
        "not their team's host"
    );
    assert_eq!(server.admin_client().post(&path, &json!({})).await.0, 401);
    let (status, body) = admin.post("/hosts/999999/refetch", &json!({})).await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string(), "{body}");
    let (status, body) = admin.post("/hosts/abc/refetch", &json!({})).await;
    assert_eq!(status, 400);
    assert!(body["message"].is_string(), "{body}");
    let (_, detail) = admin.get(&format!("/hosts/{id}")).await;
    assert_eq!(detail["host"]["refetch_requested"], true);
}
