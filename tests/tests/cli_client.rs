//! The admin's command line end to end: the real `flotilla` binary as a user runs it (login,
//! query, get, logout, setup) against a real server, with simulated osquery hosts answering
//! live queries.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use flotilla_loadtest::{LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Server, flotilla_binary};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

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

    /// Runs `flotilla ARGS --config …` with `stdin` piped in; waits for it to exit.
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

    async fn login(&self, server: &Server, password: &str) -> Output {
        let ca = server.data_dir.join("tls/ca.pem");
        self.run(
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
            &format!("{password}\n"),
        )
        .await
    }

    /// Runs a command that must succeed; returns its standard output.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, "").await;
        assert!(
            out.status.success(),
            "flotilla {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed command: non-zero exit and exactly one line on standard error, `Error: …`.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {text}");
    assert!(lines[0].starts_with("Error: "), "{text}");
    lines[0].to_owned()
}

/// Simulated hosts checking in every 100 ms until stopped.
struct Hosts {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Hosts {
    fn run(agents: Vec<SimAgent>) -> Hosts {
        let (stop, stopped) = watch::channel(false);
        let tasks = agents
            .into_iter()
            .map(|mut agent| {
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let answerer = TemplateAnswerer::new(
                        agent.profile().clone(),
                        LiveQueryProfile {
                            rows_per_result: 1,
                            error_prob: 0.0,
                            no_result_prob: 0.0,
                        },
                    );
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
        Hosts { stop, tasks }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Enrolls agents named `names` and runs their first check-in so their vitals are known.
async fn enrolled(server: &Server, names: &[&str]) -> Vec<SimAgent> {
    let mut agents = Vec::new();
    for name in names {
        let mut agent = server.agent(name, OsTemplate::Ubuntu);
        let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
        assert!(agent.run_distributed_cycle(&answerer).await.read_ok);
        agents.push(agent);
    }
    agents
}

const SQL: &str = "SELECT hostname, uuid FROM system_info";

#[tokio::test]
async fn login_query_in_every_format_get_and_logout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(data.path(), &[]);
    let names = ["cli-0", "cli-1", "cli-2"];
    let hosts = Hosts::run(enrolled(&server, &names).await);
    let user = Terminal::new();

    // A wrong password: refused in one line, nothing stored.
    let out = user.login(&server, "not-the-password-1!").await;
    let error = one_line_error(&out);
    assert!(error.contains("Authentication failed"), "{error}");

    // The right one, through standard input.
    let out = user.login(&server, ADMIN_PASSWORD).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Logged in"), "{}", stderr(&out));
    let config = std::fs::read_to_string(&user.config).unwrap();
    assert!(config.contains("token:"), "{config}");
    assert!(config.contains(&server.url()), "{config}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&user.config)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token is private to its user");
    }

    let query = |format: &'static str| {
        let user = &user;
        async move {
            let out = user
                .run(
                    &[
                        "query",
                        "--query",
                        SQL,
                        "--labels",
                        "All Hosts",
                        "--format",
                        format,
                        "--timeout",
                        "60s",
                    ],
                    "",
                )
                .await;
            assert!(out.status.success(), "{format}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("3 of 3 targeted hosts responded"),
                "{format}: {}",
                stderr(&out)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };

    // table: a header of host + the query's columns, a row per host.
    let table = query("table").await;
    let header = table.lines().find(|l| l.contains("HOST")).unwrap();
    let columns: Vec<&str> = header
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(columns, ["HOST", "HOSTNAME", "UUID"], "{table}");
    for name in names {
        assert!(
            table.lines().any(|l| l.matches(name).count() == 2),
            "{name} (host and hostname column) missing from\n{table}"
        );
    }

    // json: one array of row objects.
    let json: Value = serde_json::from_str(&query("json").await).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let mut seen: Vec<&str> = rows.iter().map(|r| r["host"].as_str().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, names);
    for row in rows {
        assert_eq!(row["host"], row["hostname"]);
        assert!(row["uuid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(row.get("host_hostname").is_none(), "decorations dropped");
    }

    // jsonl: one JSON object per line.
    let jsonl = query("jsonl").await;
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{jsonl}");
    assert!(lines.iter().all(|l| l["uuid"].is_string()));

    // csv: a header, then a line per row.
    let csv = query("csv").await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("host,hostname,uuid"), "{csv}");
    let mut hosts_in_csv: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    hosts_in_csv.sort();
    assert_eq!(hosts_in_csv, names);

    // One host by name.
    let out = user
        .run(
            &[
                "query", "--query", SQL, "--hosts", "cli-1", "--format", "jsonl",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let only: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(only["host"], "cli-1");
    assert!(stderr(&out).contains("1 of 1 targeted hosts responded"));

    // A label nobody has: the server's message in one line.
    let out = user
        .run(&["query", "--query", SQL, "--labels", "nope"], "")
        .await;
    let error = one_line_error(&out);
    assert!(error.contains("Invalid label name(s): nope"), "{error}");

    // get, in each kind.
    let admin = server.admin().await;
    let (status, _) = admin
        .post(
            "/queries",
            &serde_json::json!({"name": "uptime check", "query": "SELECT * FROM uptime"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin
        .post("/teams", &serde_json::json!({"name": "Workstations"}))
        .await;
    assert_eq!(status, 200);

    let listing = user.ok(&["get", "hosts"]).await;
    assert!(listing.contains("HOSTNAME"), "{listing}");
    for name in names {
        assert!(listing.contains(name), "{listing}");
    }
    assert!(listing.contains("online"), "{listing}");
    let host = user.ok(&["get", "host", "cli-2"]).await;
    assert!(
        host.contains("hostname") && host.contains("cli-2"),
        "{host}"
    );
    assert!(
        host.contains("platform") && host.contains("ubuntu"),
        "{host}"
    );
    let labels = user.ok(&["get", "labels"]).await;
    assert!(labels.contains("All Hosts"), "{labels}");
    let queries = user.ok(&["get", "queries"]).await;
    assert!(queries.contains("uptime check"), "{queries}");
    let teams = user.ok(&["get", "teams"]).await;
    assert!(teams.contains("Workstations"), "{teams}");
    let users = user.ok(&["get", "users"]).await;
    assert!(users.contains(ADMIN_EMAIL), "{users}");
    let activities = user.ok(&["get", "activities"]).await;
    assert!(activities.contains("live_query"), "{activities}");

    let json: Value = serde_json::from_str(&user.ok(&["get", "hosts", "--json"]).await).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert!(json[0]["id"].is_u64(), "JSON has every field");
    let yaml = user.ok(&["get", "teams", "--yaml"]).await;
    assert!(yaml.contains("name: Workstations"), "{yaml}");

    // The server's settings: `GET /config` comes with the config work; until a server has it,
    // the command says so in one line.
    let out = user.run(&["get", "config"], "").await;
    if out.status.success() {
        let config = String::from_utf8(out.stdout).unwrap();
        assert!(config.contains("agent_options"), "{config}");
    } else {
        let error = one_line_error(&out);
        assert!(error.contains("Not Found"), "{error}");
    }

    // logout ends the session on the server, and the token is gone from the file.
    let token = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let out = user.run(&["logout"], "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, _) = admin.with_token(&token).get("/me").await;
    assert_eq!(status, 401, "the session ended on the server");
    assert!(
        !std::fs::read_to_string(&user.config)
            .unwrap()
            .contains("token:")
    );
    let error = one_line_error(&user.run(&["get", "hosts"], "").await);
    assert!(error.contains("not logged in"), "{error}");

    hosts.stop().await;
}

#[tokio::test]
async fn a_silent_host_is_named_when_the_timeout_ends_the_query() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(data.path(), &[]);
    let mut agents = enrolled(&server, &["talker-0", "talker-1", "silent-0"]).await;
    // silent-0 checked in once (so it is online) and then stops answering.
    let _silent = agents.pop();
    let hosts = Hosts::run(agents);
    let user = Terminal::new();
    assert!(user.login(&server, ADMIN_PASSWORD).await.status.success());

    let out = user
        .run(
            &[
                "query",
                "--query",
                SQL,
                "--labels",
                "All Hosts",
                "--format",
                "jsonl",
                "--timeout",
                "3s",
            ],
            "",
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let answered: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answered.len(), 2, "the two talking hosts answered");
    let summary = stderr(&out);
    assert!(
        summary.contains("2 of 3 targeted hosts responded"),
        "{summary}"
    );
    assert!(summary.contains("stopped at --timeout"), "{summary}");
    assert!(summary.contains("silent-0 (online)"), "{summary}");

    // Ctrl-C: the results so far are out, the summary names who is missing, exit code 130.
    let mut child = tokio::process::Command::new(flotilla_binary())
        .args([
            "query",
            "--query",
            SQL,
            "--labels",
            "All Hosts",
            "--format",
            "jsonl",
        ])
        .arg("--config")
        .arg(&user.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("a result within 60 s")
            .unwrap()
            .expect("a result line");
        assert!(line.contains("talker-"), "{line}");
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("flotilla exits after Ctrl-C")
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let summary = stderr(&out);
    assert!(summary.contains("interrupted"), "{summary}");
    assert!(summary.contains("silent-0 (online)"), "{summary}");
    hosts.stop().await;
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn connection_problems_are_one_clear_line() {
    let user = Terminal::new();
    let port = closed_port();
    let address = format!("https://127.0.0.1:{port}");
    let out = user
        .run(
            &[
                "login",
                "--address",
                &address,
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            "whatever\n",
        )
        .await;
    let error = one_line_error(&out);
    assert!(
        error.contains(&format!("cannot reach the server at {address}")),
        "{error}"
    );
    assert!(error.contains("refused"), "{error}");

    // A server whose certificate the system does not trust: the error says how to trust it.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(data.path(), &[]);
    let out = user
        .run(
            &[
                "login",
                "--address",
                &server.url(),
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    let error = one_line_error(&out);
    assert!(error.contains("--ca"), "{error}");

    // Nothing configured yet for a context.
    let error = one_line_error(&user.run(&["get", "hosts", "--context", "prod"], "").await);
    assert!(error.contains("context `prod`"), "{error}");
    assert!(error.contains("flotilla login"), "{error}");
}

#[tokio::test]
async fn setup_creates_the_first_admin_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let user = Terminal::new();
    let ca = server.data_dir.join("tls/ca.pem");
    let setup = |email: &'static str| {
        let (user, server, ca) = (&user, &server, &ca);
        async move {
            user.run(
                &[
                    "setup",
                    "--address",
                    &server.url(),
                    "--ca",
                    ca.to_str().unwrap(),
                    "--email",
                    email,
                    "--name",
                    "First Admin",
                    "--password-stdin",
                ],
                "first-password-1!\n",
            )
            .await
        }
    };
    let out = setup("first@example.com").await;
    assert!(out.status.success(), "{}", stderr(&out));
    // setup logs in: the new admin can look around at once.
    let users = user.ok(&["get", "users"]).await;
    assert!(users.contains("first@example.com"), "{users}");
    assert!(users.contains("admin"), "{users}");

    let error = one_line_error(&setup("second@example.com").await);
    assert!(error.contains("already"), "{error}");
}

#[tokio::test]
async fn contexts_keep_servers_apart() {
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with_admin(data_a.path(), &[]);
    let b = Server::start_with_admin(data_b.path(), &[]);
    let _agents_a = enrolled(&a, &["only-on-a"]).await;
    let _agents_b = enrolled(&b, &["only-on-b"]).await;
    let user = Terminal::new();
    assert!(user.login(&a, ADMIN_PASSWORD).await.status.success());
    let ca_b: &Path = &b.data_dir.join("tls/ca.pem");
    let out = user
        .run(
            &[
                "login",
                "--context",
                "b",
                "--address",
                &b.url(),
                "--ca",
                ca_b.to_str().unwrap(),
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            &format!("{ADMIN_PASSWORD}\n"),
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let on_a = user.ok(&["get", "hosts"]).await;
    let on_b = user.ok(&["get", "hosts", "--context", "b"]).await;
    assert!(
        on_a.contains("only-on-a") && !on_a.contains("only-on-b"),
        "{on_a}"
    );
    assert!(
        on_b.contains("only-on-b") && !on_b.contains("only-on-a"),
        "{on_b}"
    );
}

#[tokio::test]
async fn apply_dry_run_apply_get_and_delete_round_trip_a_spec_file() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(data.path(), &[]);
    let user = Terminal::new();
    let out = user.login(&server, ADMIN_PASSWORD).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let specs = data.path().join("fleet.yml");
    std::fs::write(
        &specs,
        "apiVersion: v1\n\
         kind: query\n\
         spec:\n  name: uptime-report\n  query: SELECT * FROM uptime;\n  description: how long up\n  interval: 300\n\
         ---\n\
         apiVersion: v1\n\
         kind: label\n\
         spec:\n  name: Ubuntu boxes\n  query: SELECT 1 FROM os_version WHERE platform = 'ubuntu';\n  label_membership_type: dynamic\n\
         ---\n\
         apiVersion: v1\n\
         kind: team\n\
         spec:\n  team:\n    name: ops\n",
    )
    .unwrap();
    let specs = specs.to_str().unwrap();

    // A dry run checks and changes nothing.
    user.ok(&["apply", "-f", specs, "--dry-run"]).await;
    let queries = user.ok(&["get", "queries", "--json"]).await;
    assert!(!queries.contains("uptime-report"), "{queries}");

    user.ok(&["apply", "-f", specs]).await;
    let queries = user.ok(&["get", "queries", "--json"]).await;
    assert!(queries.contains("uptime-report"), "{queries}");
    assert!(queries.contains("SELECT * FROM uptime;"), "{queries}");
    let labels = user.ok(&["get", "labels", "--json"]).await;
    assert!(labels.contains("Ubuntu boxes"), "{labels}");
    let teams = user.ok(&["get", "teams", "--json"]).await;
    assert!(teams.contains("\"ops\""), "{teams}");

    // Applying the same file again changes nothing and does not fail.
    user.ok(&["apply", "-f", specs]).await;
    let again = user.ok(&["get", "queries", "--json"]).await;
    assert_eq!(again.matches("uptime-report").count(), 1, "{again}");

    user.ok(&["delete", "-f", specs]).await;
    let queries = user.ok(&["get", "queries", "--json"]).await;
    assert!(!queries.contains("uptime-report"), "{queries}");
    let labels = user.ok(&["get", "labels", "--json"]).await;
    assert!(!labels.contains("Ubuntu boxes"), "{labels}");
    let teams = user.ok(&["get", "teams", "--json"]).await;
    assert!(!teams.contains("\"ops\""), "{teams}");
}
