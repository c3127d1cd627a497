//! API-only users end to end, as Fleet's vulnerability dashboard uses them: a global admin
//! creates one through `POST /users/admin` (or `flotilla user create --api-only`), the answer
//! carries a session token that works at once as `Authorization: Bearer`, is limited by the
//! user's roles, never expires, and ends when the user's sessions are revoked.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use flotilla_loadtest::OsTemplate;
use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, AdminClient, Server, flotilla_binary};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// Asserts Fleet's error shape and returns the first error's reason.
fn fleet_error(body: &Value) -> String {
    assert!(body["message"].is_string(), "not a Fleet error: {body}");
    assert!(body["errors"][0]["name"].is_string(), "{body}");
    body["errors"][0]["reason"].as_str().unwrap().to_owned()
}

fn hostnames(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no hosts in {body}"))
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Creates an API-only user; returns the answer's user id and token.
async fn api_only_user(admin: &AdminClient, email: &str, roles: Value) -> (u64, String) {
    let mut body = json!({"name": email, "email": email, "api_only": true});
    body.as_object_mut()
        .unwrap()
        .extend(roles.as_object().unwrap().clone());
    let (status, created) = admin.post("/users/admin", &body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["user"]["api_only"], true, "{created}");
    assert_eq!(created["user"]["email"], email);
    let token = created["token"].as_str().expect("a token").to_owned();
    assert!(!token.is_empty());
    (created["user"]["id"].as_u64().unwrap(), token)
}

/// Sets every session's last use back by `seconds`, as if that much idle time had passed.
async fn age_sessions(server: &Server, seconds: i64) {
    let url = format!(
        "sqlite://{}?mode=rw",
        server.data_dir.join("flotilla.db").display()
    );
    let db = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("opening the server's database");
    sqlx::query("UPDATE sessions SET accessed_at = accessed_at - ?")
        .bind(seconds)
        .execute(&db)
        .await
        .expect("ageing the sessions");
    db.close().await;
}

#[tokio::test]
async fn an_api_only_observer_reads_with_its_token_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;
    let host = server.agent("global-host", OsTemplate::Ubuntu);
    host.enroll().await.unwrap();

    // No password: the server sets one; the answer has the user and a token.
    let (id, token) = api_only_user(
        &admin,
        "dashboard@example.com",
        json!({"global_role": "observer"}),
    )
    .await;
    let bot = server.admin_client().with_token(&token);

    // The token works at once, under every prefix.
    let (status, me) = bot.get("/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["id"], id);
    assert_eq!(me["user"]["api_only"], true);
    assert_eq!(me["user"]["global_role"], "observer");
    assert!(me["available_teams"].is_array(), "{me}");
    let (status, me) = bot.with_prefix("/api/v1/fleet").get("/me").await;
    assert_eq!(status, 200, "{me}");
    let (status, hosts) = bot.get("/hosts").await;
    assert_eq!(status, 200, "{hosts}");
    assert_eq!(hostnames(&hosts), vec![host.profile().hostname.clone()]);
    assert_eq!(bot.get("/labels").await.0, 200);

    // An observer's token writes nothing, in Fleet's error shape.
    let (status, error) = bot
        .post("/labels", &json!({"name": "mine", "hosts": []}))
        .await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["message"], "Permission Denied");
    fleet_error(&error);
    let (status, error) = bot
        .patch("/config", &json!({"org_info": {"org_name": "Taken"}}))
        .await;
    assert_eq!(status, 403, "{error}");
    fleet_error(&error);
    let (status, error) = bot
        .post("/users/admin", &json!({"name": "X", "email": "x@example.com", "global_role": "admin", "api_only": true}))
        .await;
    assert_eq!(
        status, 403,
        "an API-only observer creates no users: {error}"
    );
    fleet_error(&error);

    // Lists show the flag.
    let (_, users) = admin.get("/users").await;
    let listed = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .expect("the API-only user is listed")
        .clone();
    assert_eq!(listed["api_only"], true);

    // Six idle days later an ordinary session has expired; the API-only token has not.
    age_sessions(&server, 6 * 24 * 3600).await;
    let (status, error) = admin.get("/me").await;
    assert_eq!(status, 401, "the admin's idle session expired: {error}");
    fleet_error(&error);
    let (status, me) = bot.get("/me").await;
    assert_eq!(status, 200, "the API-only token does not expire: {me}");
    assert_eq!(bot.get("/hosts").await.0, 200);

    // The admin revokes the user's sessions: the token is refused from then on.
    let admin = server.admin().await;
    let (status, body) = admin.delete(&format!("/users/{id}/sessions")).await;
    assert_eq!(status, 200, "{body}");
    let (status, error) = bot.get("/hosts").await;
    assert_eq!(status, 401, "{error}");
    fleet_error(&error);
    assert_eq!(
        admin.get("/me").await.0,
        200,
        "the admin's own session lives on"
    );
    let (status, error) = admin.delete("/users/999999/sessions").await;
    assert_eq!(status, 404, "{error}");
    fleet_error(&error);

    // Deleting an API-only user ends its sessions too.
    let (id2, token2) = api_only_user(
        &admin,
        "scanner@example.com",
        json!({"global_role": "observer"}),
    )
    .await;
    let scanner = server.admin_client().with_token(&token2);
    assert_eq!(scanner.get("/me").await.0, 200);
    // Someone else's sessions are not an observer's to revoke.
    let (status, error) = scanner.delete(&format!("/users/{id}/sessions")).await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(admin.delete(&format!("/users/{id2}")).await.0, 200);
    assert_eq!(scanner.get("/me").await.0, 401);
}

#[tokio::test]
async fn creation_rules_and_team_scope() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let admin = server.admin().await;

    // A team with a host, and a host in no team.
    let (status, body) = admin.post("/teams", &json!({"name": "Servers"})).await;
    assert_eq!(status, 200, "{body}");
    let team = body["team"]["id"].as_u64().unwrap();
    let secret = body["team"]["secrets"][0]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let team_host = server.agent_with_secret("team-host", OsTemplate::Ubuntu, &secret);
    team_host.enroll().await.unwrap();
    let global_host = server.agent("global-host", OsTemplate::Windows);
    global_host.enroll().await.unwrap();
    let (_, all) = admin.get("/hosts").await;
    assert_eq!(hostnames(&all).len(), 2);

    // A team observer API-only user sees only its team's hosts.
    let (_, token) = api_only_user(
        &admin,
        "team-bot@example.com",
        json!({"teams": [{"id": team, "role": "observer"}]}),
    )
    .await;
    let team_bot = server.admin_client().with_token(&token);
    let (status, hosts) = team_bot.get("/hosts").await;
    assert_eq!(status, 200, "{hosts}");
    assert_eq!(
        hostnames(&hosts),
        vec![team_host.profile().hostname.clone()]
    );
    let (_, me) = team_bot.get("/me").await;
    assert_eq!(me["user"]["teams"][0]["id"], team, "{me}");
    assert_eq!(me["user"]["teams"][0]["role"], "observer");
    let global_id = hostnames(&all)
        .iter()
        .position(|h| *h == global_host.profile().hostname)
        .map(|i| all["hosts"][i]["id"].as_u64().unwrap())
        .unwrap();
    let (status, _) = team_bot.get(&format!("/hosts/{global_id}")).await;
    assert!(
        status == 403 || status == 404,
        "another team's host is not shown: {status}"
    );

    // With a password given, it is checked like anyone's: too short is a 422.
    let (status, error) = admin
        .post("/users/admin", &json!({"name": "Short", "email": "short@example.com", "password": "short-1!", "global_role": "observer", "api_only": true}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["message"], "Validation Failed");
    assert_eq!(error["errors"][0]["name"], "password");
    fleet_error(&error);
    // A valid one works, and the user can also log in with it.
    let (status, body) = admin
        .post("/users/admin", &json!({"name": "Pw", "email": "pw@example.com", "password": "bot-password-1!", "global_role": "maintainer", "api_only": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].is_string(), "{body}");
    let logged_in = server.login("pw@example.com", "bot-password-1!").await;
    assert_eq!(logged_in.get("/me").await.1["user"]["api_only"], true);
    let answer_token = server
        .admin_client()
        .with_token(body["token"].as_str().unwrap());
    let (status, _) = answer_token
        .post(
            "/queries",
            &json!({"name": "bot query", "query": "SELECT 1;"}),
        )
        .await;
    assert_eq!(
        status, 200,
        "a maintainer's API-only token writes what maintainers may"
    );

    // Ordinary users: a password is still required, and the answer has no token (as Fleet's).
    let (status, error) = admin
        .post(
            "/users/admin",
            &json!({"name": "Nopw", "email": "nopw@example.com", "global_role": "observer"}),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["errors"][0]["name"], "password");
    let (status, body) = admin
        .post("/users/admin", &json!({"name": "Olga", "email": "olga@example.com", "password": "olga-password-1!", "global_role": "observer"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["api_only"], false);
    assert!(
        body.get("token").is_none(),
        "no token for ordinary users: {body}"
    );

    // A non-admin creates no users.
    let olga = server.login("olga@example.com", "olga-password-1!").await;
    let (status, error) = olga
        .post("/users/admin", &json!({"name": "Sneaky", "email": "sneaky@example.com", "global_role": "admin", "api_only": true}))
        .await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["message"], "Permission Denied");
    fleet_error(&error);
    let (_, users) = admin.get("/users").await;
    assert!(!users.to_string().contains("sneaky@example.com"), "{users}");
}

/// One user's terminal: a config file of their own and the `flotilla` binary.
struct Terminal {
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn new() -> Terminal {
        let dir = tempfile::tempdir().unwrap();
        Terminal {
            config: dir.path().join("flotilla/config.yml"),
            _dir: dir,
        }
    }

    async fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = tokio::process::Command::new(flotilla_binary())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("FLOTILLA_CONTEXT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("running flotilla");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("flotilla did not exit within 120 s")
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn cli_user_create_api_only_prints_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(dir.path(), &[]);
    let terminal = Terminal::new();
    let ca = server.data_dir.join("tls/ca.pem");
    let login = terminal
        .run(
            &[
                "login",
                "--address",
                &server.url(),
                "--ca",
                ca.to_str().unwrap(),
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    assert!(login.status.success(), "{}", text(&login.stderr));

    let out = terminal
        .run(
            &[
                "user",
                "create",
                "--email",
                "vulns@example.com",
                "--name",
                "Vulnerability dashboard",
                "--global-role",
                "observer",
                "--api-only",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the token alone: {stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does not expire"), "{stderr}");
    assert!(stderr.contains("Authorization: Bearer"), "{stderr}");

    let bot = server.admin_client().with_token(token);
    let (status, me) = bot.get("/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], "vulns@example.com");
    assert_eq!(me["user"]["api_only"], true);
    assert_eq!(bot.get("/hosts").await.0, 200);

    // An ordinary user: the created user is printed, no token.
    let out = terminal
        .run(
            &[
                "user",
                "create",
                "--email",
                "ops@example.com",
                "--name",
                "Ops",
                "--team",
                "1:observer",
                "--password",
                "ops-password-1!",
            ],
            "",
        )
        .await;
    // There is no team 1: the server's own message comes back in one line.
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.starts_with("Error: "), "{error}");
    let out = terminal
        .run(
            &[
                "user",
                "create",
                "--email",
                "ops@example.com",
                "--name",
                "Ops",
                "--global-role",
                "maintainer",
                "--password",
                "ops-password-1!",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("ops@example.com"), "{table}");
    assert!(table.contains("maintainer"), "{table}");
    assert!(!table.contains(token), "{table}");

    // A bad password: the server's validation message, one line.
    let out = terminal
        .run(
            &[
                "user",
                "create",
                "--email",
                "weak@example.com",
                "--name",
                "Weak",
                "--password",
                "short",
                "--api-only",
            ],
            "",
        )
        .await;
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(error.contains("Password must meet"), "{error}");

    // `get users` shows the flag.
    let out = terminal.run(&["get", "users", "--json"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    let vulns = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "vulns@example.com")
        .unwrap();
    assert_eq!(vulns["api_only"], true);
    let out = terminal.run(&["get", "users"], "").await;
    let table = text(&out.stdout);
    assert!(table.contains("API ONLY"), "{table}");

    // The help says what --api-only does.
    let out = terminal.run(&["user", "create", "--help"], "").await;
    let help = text(&out.stdout);
    assert!(
        help.contains("--api-only") && help.contains("never expires"),
        "{help}"
    );
}
