//! The agent update server: a repository made and changed with `flotilla updates`, served by
//! `flotilla serve --tuf-repo`, and read by a TUF client that is not Flotilla's — python-tuf's
//! ngclient, the reference implementation (`tests/tuf/tuf_client.py`; `pip install tuf`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flotilla_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Server, flotilla_binary};
use serde_json::{Value, json};

const PASSPHRASES: [(&str, &str); 4] = [
    ("FLOTILLA_ROOT_PASSPHRASE", "root passphrase"),
    ("FLOTILLA_TARGETS_PASSPHRASE", "targets passphrase"),
    ("FLOTILLA_SNAPSHOT_PASSPHRASE", "snapshot passphrase"),
    ("FLOTILLA_TIMESTAMP_PASSPHRASE", "timestamp passphrase"),
];

/// `flotilla updates ARGS --path repo`, with every role's passphrase in its variable unless
/// `env` says otherwise. Returns (success, stdout, stderr).
fn updates(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(flotilla_binary());
    command.arg("updates").args(args).arg("--path").arg(repo);
    for (name, value) in PASSPHRASES {
        command.env(name, value);
    }
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running flotilla updates");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn updates_ok(repo: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = updates(repo, args, &[]);
    assert!(ok, "flotilla updates {args:?} failed: {stderr}");
    stdout
}

/// `updates add` publishing `file` as NAME/PLATFORM at VERSION and on each tag.
fn add_args<'a>(
    file: &'a Path,
    name: &'a str,
    platform: &'a str,
    version: &'a str,
    tags: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "add",
        "--target",
        file.to_str().unwrap(),
        "--name",
        name,
        "--platform",
        platform,
        "--version",
        version,
    ];
    for tag in tags {
        args.extend(["-t", tag]);
    }
    args
}

/// A stand-in for an orbit build: a script that answers `--help`, as orbit checks each
/// download before it replaces the running one.
fn fake_orbit(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join(format!("orbit-{version}"));
    std::fs::write(&path, format!("#!/bin/sh\necho \"orbit {version}\"\n")).unwrap();
    path
}

/// The python-tuf client, starting from the trusted root in `metadata/root.json`.
struct Client {
    url: String,
    ca: PathBuf,
    metadata: PathBuf,
    downloads: PathBuf,
}

impl Client {
    fn new(server: &Server, work: &Path, trusted_root: &str) -> Client {
        let ca = work.join("ca.pem");
        std::fs::write(&ca, server.ca_pem()).unwrap();
        let metadata = work.join("client-metadata");
        std::fs::create_dir_all(&metadata).unwrap();
        std::fs::write(metadata.join("root.json"), trusted_root).unwrap();
        Client {
            url: format!("{}/tuf/", server.url()),
            ca,
            metadata,
            downloads: work.join("client-downloads"),
        }
    }

    /// Refreshes and downloads `target`: the client's one-line JSON verdict.
    fn fetch(&self, target: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuf/tuf_client.py");
        let output = Command::new("python3")
            .arg(script)
            .args(["--url", &self.url])
            .arg("--ca")
            .arg(&self.ca)
            .arg("--metadata")
            .arg(&self.metadata)
            .arg("--downloads")
            .arg(&self.downloads)
            .arg(target)
            .output()
            .expect("running python3");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("No module named 'tuf'"),
            "python-tuf is missing: `pip install tuf` (.ci/run installs it)"
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!("the TUF client printed no verdict: {stdout}\nstderr: {stderr}")
        })
    }

    fn accepts(&self, target: &str) -> Value {
        let verdict = self.fetch(target);
        assert_eq!(
            verdict["ok"], true,
            "the client refused {target}: {verdict}"
        );
        verdict
    }

    fn refuses(&self, target: &str) -> String {
        let verdict = self.fetch(target);
        assert_eq!(
            verdict["ok"], false,
            "the client accepted {target}: {verdict}"
        );
        verdict["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// What is on disk under the repository, for checking that a refused command wrote nothing.
fn snapshot_of(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn timestamp_version(repo: &Path) -> u64 {
    let text = std::fs::read_to_string(repo.join("repository/timestamp.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    value["signed"]["version"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tuf_follows_releases_and_rotations_and_refuses_what_it_must() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("tuf");
    updates_ok(&repo, &["init"]);
    let trusted_root = updates_ok(&repo, &["roots", "--signed"]);
    let v1 = fake_orbit(work.path(), "1.0.0");
    let published = updates_ok(
        &repo,
        &add_args(&v1, "orbit", "linux", "1.0.0", &["1", "stable"]),
    );
    assert!(
        published.contains("orbit/linux/stable/orbit"),
        "{published}"
    );

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--tuf-repo", repo.to_str().unwrap()]);
    let client = Client::new(&server, work.path(), &trusted_root);
    const STABLE: &str = "orbit/linux/stable/orbit";

    let first = client.accepts(STABLE);
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(
        first["help"], "orbit 1.0.0",
        "the download runs with --help"
    );

    // A new release moves the channel; the version path stays.
    let v2 = fake_orbit(work.path(), "1.1.0");
    updates_ok(
        &repo,
        &add_args(&v2, "orbit", "linux", "1.1.0", &["stable"]),
    );
    let second = client.accepts(STABLE);
    assert_eq!(second["version"], "1.1.0");
    assert_eq!(second["help"], "orbit 1.1.0");
    assert_eq!(
        client.accepts("orbit/linux/1.0.0/orbit")["version"],
        "1.0.0"
    );

    // New targets and root keys: a client holding root 1 follows 2.root.json and 3.root.json.
    updates_ok(&repo, &["rotate", "targets"]);
    let rotated = client.accepts(STABLE);
    assert_eq!(rotated["roots"], 2, "{rotated}");
    updates_ok(&repo, &["rotate", "root"]);
    updates_ok(&repo, &["rotate", "timestamp"]);
    let rotated = client.accepts(STABLE);
    assert_eq!(rotated["roots"], 4, "{rotated}");
    assert_eq!(rotated["version"], "1.1.0");
    // A fresh client that only knows the first root gets there too.
    std::fs::create_dir_all(work.path().join("fresh")).unwrap();
    let fresh = Client::new(&server, &work.path().join("fresh"), &trusted_root);
    assert_eq!(fresh.accepts(STABLE)["roots"], 4);

    // A target changed on disk, even at the same length, is refused.
    let on_disk = repo.join("repository/targets").join(STABLE);
    let genuine = std::fs::read(&on_disk).unwrap();
    let mut tampered = genuine.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 0x20;
    std::fs::write(&on_disk, &tampered).unwrap();
    let error = client.refuses(STABLE);
    assert!(error.contains("LengthOrHashMismatch"), "{error}");
    std::fs::write(&on_disk, &genuine).unwrap();
    client.accepts(STABLE);

    // Rollback: an older timestamp.json put back is refused once a newer one was seen.
    let timestamp = repo.join("repository/timestamp.json");
    let older = std::fs::read(&timestamp).unwrap();
    updates_ok(&repo, &["timestamp"]);
    client.accepts(STABLE);
    std::fs::write(&timestamp, &older).unwrap();
    let error = client.refuses(STABLE);
    assert!(error.contains("BadVersionNumber"), "{error}");
    updates_ok(&repo, &["timestamp"]);
    client.accepts(STABLE);

    // An expired timestamp is refused.
    updates_ok(&repo, &["timestamp", "--expires-in", "1s"]);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let error = client.refuses(STABLE);
    assert!(error.contains("ExpiredMetadata"), "{error}");

    // Given the timestamp key, the server re-signs the expired timestamp at once, and the
    // client updates again.
    drop(server);
    let before = timestamp_version(&repo);
    let key = repo.join("keys/timestamp.json");
    let server = Server::start_with_env(
        data.path(),
        &[
            "--tuf-repo",
            repo.to_str().unwrap(),
            "--tuf-timestamp-key",
            key.to_str().unwrap(),
        ],
        &[PASSPHRASES[3]],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while timestamp_version(&repo) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not re-sign the expired timestamp"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Client {
        url: format!("{}/tuf/", server.url()),
        ..client
    };
    std::fs::write(client.ca.clone(), server.ca_pem()).unwrap();
    client.accepts(STABLE);
    let metrics = server.metrics_text().await;
    let left: f64 = metrics
        .lines()
        .find(|l| l.starts_with("flotilla_tuf_metadata_expiry_seconds{role=\"timestamp\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no timestamp expiry in /metrics:\n{metrics}"));
    assert!(
        left > 13.0 * 86_400.0,
        "re-signed for 14 days, {left} s left"
    );
    assert!(
        metrics.contains("flotilla_tuf_resign_runs_total{result=\"signed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tuf_routes_serve_exact_files_with_caching_ranges_and_plain_404s() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("tuf");
    updates_ok(&repo, &["init"]);
    let v1 = fake_orbit(work.path(), "5.12.1");
    updates_ok(
        &repo,
        &add_args(&v1, "osqueryd", "linux", "5.12.1", &["stable"]),
    );
    // A separate listener for /tuf/ as well as the main one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tuf_listen = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_admin(
        data.path(),
        &[
            "--tuf-repo",
            repo.to_str().unwrap(),
            "--tuf-listen",
            &tuf_listen,
        ],
    );
    let http = server.client();
    let get = |path: &str| http.get(format!("{}/tuf/{path}", server.url()));

    let response = get("timestamp.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["content-type"], "application/json");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        std::fs::read(repo.join("repository/timestamp.json")).unwrap()
    );
    let revalidated = get("timestamp.json")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    // Version paths never change and are cached long; channel paths move and are not.
    let version = get("targets/osqueryd/linux/5.12.1/osqueryd")
        .send()
        .await
        .unwrap();
    assert_eq!(version.status(), 200);
    assert!(
        version.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        version.bytes().await.unwrap().as_ref(),
        std::fs::read(&v1).unwrap()
    );
    let channel = get("targets/osqueryd/linux/stable/osqueryd")
        .header("range", "bytes=2-8")
        .send()
        .await
        .unwrap();
    assert_eq!(channel.status(), 206, "range requests are answered");
    assert_eq!(channel.headers()["cache-control"], "no-cache");
    assert_eq!(
        channel.bytes().await.unwrap().as_ref(),
        &std::fs::read(&v1).unwrap()[2..=8]
    );
    assert_eq!(get("1.root.json").send().await.unwrap().status(), 200);

    // What is not published is a plain 404: the next root (clients probe for it), keys,
    // directories, paths out of the repository, staging files.
    for missing in [
        "2.root.json",
        "targets/",
        "targets/osqueryd/linux",
        "../keys/timestamp.json",
        "..%2Fkeys%2Ftimestamp.json",
        "targets/..%2F..%2Fkeys%2Froot.json",
        "keys/root.json",
        "mirrors.json",
    ] {
        let response = get(missing).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("ed25519"), "{missing}: {text}");
    }

    // The separate listener serves the same files, and nothing else.
    let separate = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&server.ca_pem()).unwrap()])
        .resolve("localhost", tuf_listen.parse().unwrap())
        .build()
        .unwrap();
    let on_separate = separate
        .get(format!("https://localhost:{port}/tuf/root.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_separate.status(), 200);
    let api_there = separate
        .get(format!("https://localhost:{port}/api/latest/fleet/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(api_there.status(), 404);

    // The API lists channels, and agent options may only name channels that exist.
    let admin = server.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, body) = admin.get("/api/latest/fleet/updates").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["served"], true);
    assert_eq!(
        body["components"]["osqueryd"]["linux"]["stable"], "5.12.1",
        "{body}"
    );
    assert_eq!(body["metadata"]["timestamp"]["version"], 2, "{body}");
    // Any signed-in role may read it (an observer here); no session is a 401.
    let (status, created) = admin
        .post(
            "/users/admin",
            &json!({"name": "watcher", "email": "watcher@example.com", "api_only": true,
                    "global_role": "observer"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let observer = server
        .admin_client()
        .with_token(created["token"].as_str().unwrap());
    let (status, seen) = observer.get("/api/latest/fleet/updates").await;
    assert_eq!(
        (status, seen["served"].clone()),
        (200, json!(true)),
        "{seen}"
    );
    let (status, _) = server.admin_client().get("/api/latest/fleet/updates").await;
    assert_eq!(status, 401);
    let (status, body) = admin
        .patch(
            "/api/latest/fleet/config",
            &json!({"agent_options": {"config": {}, "update_channels": {"osqueryd": "edge"}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("channel \\\"edge\\\" does not exist") && message.contains("stable"),
        "{message}"
    );
    let (status, body) = admin
        .patch(
            "/api/latest/fleet/config",
            &json!({"agent_options": {"config": {}, "update_channels": {"osqueryd": "stable"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[test]
fn refused_commands_say_why_and_change_nothing() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("tuf");
    updates_ok(&repo, &["init"]);
    let before = snapshot_of(&repo);
    let (ok, _, stderr) = updates(&repo, &["init"], &[]);
    assert!(
        !ok && stderr.contains("already holds a repository"),
        "{stderr}"
    );

    let orbit = fake_orbit(work.path(), "1.0.0");
    let add = |extra_env: &[(&str, &str)], target: &Path| {
        updates(
            &repo,
            &add_args(target, "orbit", "linux", "1.0.0", &[]),
            extra_env,
        )
    };
    let (ok, _, stderr) = add(&[("FLOTILLA_SNAPSHOT_PASSPHRASE", "not it")], &orbit);
    assert!(!ok, "a wrong passphrase signs nothing");
    assert!(
        stderr.contains("wrong passphrase for the snapshot key"),
        "{stderr}"
    );
    let (ok, _, stderr) = add(&[("FLOTILLA_TARGETS_PASSPHRASE", "")], &orbit);
    assert!(!ok);
    assert!(
        stderr.contains("FLOTILLA_TARGETS_PASSPHRASE"),
        "no terminal to prompt at: {stderr}"
    );
    let (ok, _, stderr) = add(&[], &work.path().join("no-such-file"));
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
    let (ok, _, stderr) = updates(&repo, &add_args(&orbit, "../orbit", "linux", "1", &[]), &[]);
    assert!(!ok && stderr.contains("path component"), "{stderr}");
    let key = repo.join("keys/targets.json");
    let aside = work.path().join("targets-key.json");
    std::fs::rename(&key, &aside).unwrap();
    let (ok, _, stderr) = add(&[], &orbit);
    assert!(
        !ok && stderr.contains("the targets key is missing"),
        "{stderr}"
    );
    std::fs::rename(&aside, &key).unwrap();
    let (ok, _, stderr) = updates(
        &repo,
        &["rotate", "snapshot"],
        &[("FLOTILLA_ROOT_PASSPHRASE", "wrong")],
    );
    assert!(
        !ok && stderr.contains("wrong passphrase for the root key"),
        "{stderr}"
    );
    assert_eq!(
        snapshot_of(&repo),
        before,
        "refused commands changed the repository"
    );

    // And the list shows what was published, once something is.
    updates_ok(
        &repo,
        &add_args(&orbit, "desktop", "windows", "1.0.0", &["stable"]),
    );
    let listed: Value = serde_json::from_str(&updates_ok(&repo, &["list", "--json"])).unwrap();
    let targets: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "desktop/windows/1.0.0/fleet-desktop.exe",
            "desktop/windows/stable/fleet-desktop.exe"
        ]
    );
    let keys: Value = serde_json::from_str(&updates_ok(&repo, &["roots"])).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["keytype"], "ed25519");
}
