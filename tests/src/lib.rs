//! Test harness: the real `flotilla` binary on a free port, with its own data directory, and
//! simulated osquery agents (from `flotilla-loadtest`) that trust the CA it generated.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use flotilla_loadtest::{AgentConfig, OsTemplate, RetryPolicies, SimAgent};

/// The enroll secret every test server is started with.
pub const SECRET: &str = "test-enroll-secret";

/// The global admin [`Server::start_with_admin`] creates.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1!";

/// Path of the `flotilla` binary of the same profile as the tests.
///
/// `cargo test --workspace` builds it (the `flotilla-api` package has integration tests of
/// its own, so cargo builds its binary with the workspace's features). When it is missing or
/// older than any source it is built from — `cargo test -p flotilla-tests` after an edit —
/// it is built here first, so the tests never run a stale server.
pub fn flotilla_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            workspace_binary(
                "flotilla",
                "flotilla-api",
                &["api", "engine", "storage", "vulns", "updates", "Cargo.lock"],
            )
        })
        .clone()
}

/// Path of the `flotilla-loadtest` binary, built the same way as [`flotilla_binary`].
pub fn loadtest_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            workspace_binary(
                "flotilla-loadtest",
                "flotilla-loadtest",
                &["loadtest", "Cargo.lock"],
            )
        })
        .clone()
}

/// A binary of this workspace next to the test executable, built first if it is missing or
/// older than any of `sources` (paths relative to the workspace root).
fn workspace_binary(name: &str, package: &str, sources: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir.join(name);
    if is_fresh(&binary, sources) {
        return binary;
    }
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", name]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "building {name} failed");
    binary
}

/// Whether `binary` exists and is newer than every file below `sources`.
fn is_fresh(binary: &Path, sources: &[&str]) -> bool {
    let Some(built) = modified(binary) else {
        return false;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    sources
        .iter()
        .all(|part| newest_modification(&workspace.join(part)).is_none_or(|t| t <= built))
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of a file, or of any file below a directory.
fn newest_modification(path: &Path) -> Option<std::time::SystemTime> {
    if !path.is_dir() {
        return modified(path);
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|entry| newest_modification(&entry.path()))
        .max()
}

/// A running `flotilla serve`. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Everything the server printed on stdout before it was ready.
    pub banner: String,
}

impl Server {
    /// Starts a server on `127.0.0.1:0` over `data_dir` with the test secret and a short flush
    /// interval (unless `extra` sets them), plus `extra` arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(data_dir, extra, Stdio::inherit(), &[])
    }

    /// [`Server::start`] with environment variables set for the server only (passphrases,
    /// say), not for the whole test process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, extra, Stdio::inherit(), env)
    }

    /// [`Server::start`] with the server's log (its standard error) written to `log` instead of
    /// the test's, for tests that read what the server logged.
    pub fn start_logging_to(data_dir: &Path, extra: &[&str], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("creating the server log file");
        Server::spawn(data_dir, extra, Stdio::from(file), &[])
    }

    fn spawn(data_dir: &Path, extra: &[&str], stderr: Stdio, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(flotilla_binary());
        command.envs(env.iter().copied());
        command.args(["serve", "--enroll-secret", SECRET]);
        if !extra.contains(&"--log-level") {
            command.args(["--log-level", "info,flotilla_api=debug"]);
        }
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--flush-interval") {
            command.args(["--flush-interval", "200ms"]);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting flotilla");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep draining so the server never blocks.
                    continue;
                }
            }
        });
        let mut banner = String::new();
        let addr = loop {
            let line = lines_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("flotilla did not report its address within 60 s");
            banner.push_str(&line);
            banner.push('\n');
            if let Some(url) = line.split(" is listening on ").nth(1) {
                let authority = url.split("://").nth(1).expect("url with scheme");
                break authority.parse().expect("socket address");
            }
        };
        // Collect the rest of the banner (it ends with an empty line).
        while let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(5)) {
            if line.is_empty() && banner.contains("--carver_continue_endpoint") {
                break;
            }
            banner.push_str(&line);
            banner.push('\n');
        }
        Server {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
            banner,
        }
    }

    /// [`Server::start`] with `--admin-email`/`--admin-password` for [`ADMIN_EMAIL`].
    pub fn start_with_admin(data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
        ];
        args.extend_from_slice(extra);
        Server::start(data_dir, &args)
    }

    /// The server process's id (for `/proc/<pid>/…`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:<port>`: the name the generated certificate is checked against.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port())
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir.join("tls/ca.pem")).expect("generated CA")
    }

    /// `GET /metrics` (no credentials), as text.
    pub async fn metrics_text(&self) -> String {
        self.client()
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics body")
    }

    /// A reqwest client that trusts only the generated CA, for raw requests.
    pub fn client(&self) -> reqwest::Client {
        flotilla_loadtest::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(&self.ca_pem()).expect("CA PEM");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("localhost", self.addr)
            .build()
            .expect("client")
    }

    /// A simulated osqueryd for this server, with retry pauses scaled down to milliseconds.
    pub fn agent(&self, identifier: &str, template: OsTemplate) -> SimAgent {
        let mut config = AgentConfig::new(self.url(), SECRET, identifier, template);
        config.ca_pem = Some(self.ca_pem());
        config.resolve = Some(("localhost".into(), self.addr));
        config.retries = RetryPolicies::scaled(Duration::from_millis(10));
        SimAgent::new(config).expect("agent")
    }

    /// A simulated fleetd (orbit and Fleet Desktop) for this server, its intervals divided by
    /// `speedup`.
    pub fn fleetd(
        &self,
        host: flotilla_loadtest::fleetd::FleetdHost,
        secret: &str,
        speedup: u32,
    ) -> flotilla_loadtest::fleetd::SimFleetd {
        let tls = flotilla_loadtest::agent::tls_client_config(Some(&self.ca_pem()), false)
            .expect("TLS config");
        flotilla_loadtest::fleetd::SimFleetd::new(
            &self.url(),
            secret,
            host,
            flotilla_loadtest::fleetd::FleetdIntervals::scaled(speedup),
            tls,
            Some(("localhost".into(), self.addr)),
        )
        .expect("fleetd")
    }

    /// A simulated osqueryd enrolling with `secret` instead of the test secret.
    pub fn agent_with_secret(
        &self,
        identifier: &str,
        template: OsTemplate,
        secret: &str,
    ) -> SimAgent {
        let mut config = self.agent(identifier, template).agent_config().clone();
        config.enroll_secret = secret.into();
        SimAgent::new(config).expect("agent")
    }

    /// A client of the admin API (`/api/latest/fleet`) without a session.
    pub fn admin_client(&self) -> AdminClient {
        AdminClient {
            http: self.client(),
            base: self.url(),
            prefix: "/api/latest/fleet".into(),
            token: None,
        }
    }

    /// Logs in through `POST /login` and returns a client holding the session token.
    pub async fn login(&self, email: &str, password: &str) -> AdminClient {
        let mut client = self.admin_client();
        let (status, body) = client
            .post(
                "/login",
                &serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login as {email}: {body}");
        client.token = Some(body["token"].as_str().expect("a token").to_owned());
        client
    }

    /// Logs in as [`ADMIN_EMAIL`].
    pub async fn admin(&self) -> AdminClient {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// SIGTERM and wait: the graceful path an operator takes.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("flotilla did not stop within 30 s of SIGTERM");
    }

    /// Opens the server's SQLite database, to check what reached disk.
    pub async fn database(&self) -> sqlx::SqlitePool {
        let url = format!(
            "sqlite://{}?mode=ro",
            self.data_dir.join("flotilla.db").display()
        );
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("opening the server's database")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client of the admin REST API. Every call returns the status and the JSON body (`null`
/// when the body is not JSON).
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    /// `/api/latest/fleet`, or another version prefix.
    pub prefix: String,
    /// The session token sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

impl AdminClient {
    /// The same client presenting `token`.
    pub fn with_token(&self, token: &str) -> AdminClient {
        AdminClient {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same session under another path prefix (`/api/v1/fleet`, say).
    pub fn with_prefix(&self, prefix: &str) -> AdminClient {
        AdminClient {
            prefix: prefix.into(),
            ..self.clone()
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = if path.starts_with("/api/") {
            format!("{}{path}", self.base)
        } else {
            format!("{}{}{path}", self.base, self.prefix)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("admin API request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A request whose body is `text` as given (malformed JSON, say), sent as JSON.
    pub async fn send_text(
        &self,
        method: reqwest::Method,
        path: &str,
        text: &str,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}{path}", self.base, self.prefix))
            .header("content-type", "application/json")
            .body(text.to_owned());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("admin API request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// A results-websocket client (`/api/latest/fleet/results/websocket`) that trusts the
/// server's generated CA, speaking Fleet's `{"type", "data"}` text messages.
pub struct ResultsSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Server {
    pub async fn results_socket(&self) -> ResultsSocket {
        use rustls_pki_types::pem::PemObject;
        flotilla_loadtest::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&self.ca_pem()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let url = format!(
            "wss://localhost:{}/api/latest/fleet/results/websocket",
            self.port()
        );
        let (socket, _) = tokio_tungstenite::client_async_tls_with_config(
            url,
            tcp,
            None,
            Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
                config,
            ))),
        )
        .await
        .expect("websocket handshake");
        ResultsSocket { socket }
    }
}

impl ResultsSocket {
    pub async fn send(&mut self, kind: &str, data: serde_json::Value) {
        use futures_util::SinkExt;
        let text = serde_json::json!({ "type": kind, "data": data }).to_string();
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("websocket send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("websocket send");
    }

    /// The next JSON message, or `None` once the server closed the socket. Panics after 60 s.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .expect("no websocket message within 60 s");
            match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON message"));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Every message until the server closes the socket.
    pub async fn until_closed(&mut self) -> Vec<serde_json::Value> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await {
            messages.push(message);
        }
        messages
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

impl Server {
    /// SIGKILL: a node dying without a chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 100 ms until it holds, for effects that land asynchronously (a flush, a
/// delivery); panics after `within`.
pub async fn eventually_within<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// A scheduled query's result line as osquery logs it (differential, one added row whose
/// `seq` column is `seq`), from `host`; tests count lines at a log destination by `seq`.
pub fn result_line(host: &str, name: &str, seq: u64) -> serde_json::Value {
    serde_json::json!({
        "name": name, "hostIdentifier": host, "calendarTime": "Tue Aug  4 10:00:00 2026 UTC",
        "unixTime": 1_785_837_600 + seq, "epoch": 0, "counter": seq, "numerics": false,
        "columns": {"seq": seq.to_string()}, "action": "added"
    })
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A service the tests run as a child process on its own port (Redis, NATS, an S3 server),
/// so a test can stop it and start it again on the same port and see what a real outage
/// does. Stopped (SIGKILL) when dropped.
pub struct ServiceProcess {
    child: Option<Child>,
    pub port: u16,
    program: String,
    args: Vec<String>,
    /// What to install when the program is missing, for the panic message.
    package: &'static str,
    /// The working directory, for programs that keep their files relative to it.
    dir: Option<PathBuf>,
}

impl ServiceProcess {
    /// Starts `program args…` and waits until it accepts connections on `port`.
    pub fn start(program: &str, args: &[String], port: u16, package: &'static str) -> Self {
        Self::start_in(None, program, args, port, package)
    }

    /// [`ServiceProcess::start`] with `dir`, when given, as the working directory.
    pub fn start_in(
        dir: Option<&Path>,
        program: &str,
        args: &[String],
        port: u16,
        package: &'static str,
    ) -> Self {
        let mut service = ServiceProcess {
            child: None,
            port,
            program: program.to_owned(),
            args: args.to_vec(),
            package,
            dir: dir.map(Path::to_path_buf),
        };
        service.restart();
        service
    }

    /// Stops the process (SIGKILL: no chance to flush or say goodbye).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same arguments.
    pub fn restart(&mut self) {
        self.stop();
        let mut command = Command::new(&self.program);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {} (install {}): {e}", self.program, self.package)
            });
        self.child = Some(child);
        // Python servers (moto) take a few seconds to start on a busy machine.
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen on {} within 30 s",
            self.program, self.port
        );
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A MariaDB server of the test's own — its own data directory and port — so a test can kill
/// it with SIGKILL and start it again, as a crash of the database machine would, without
/// touching the server other tests share. Needs Debian's `mariadb-server` (`mariadbd`,
/// `mariadb-install-db`). Grants are off: any user may connect, and `root` is used.
pub struct OwnMariaDb {
    pub service: ServiceProcess,
    _dir: tempfile::TempDir,
}

impl OwnMariaDb {
    pub fn start() -> OwnMariaDb {
        let dir = tempfile::tempdir().expect("a directory for MariaDB");
        let data = dir.path().join("data");
        let installed = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running mariadb-install-db (install mariadb-server)");
        assert!(installed.success(), "mariadb-install-db failed");
        let port = free_port();
        let args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", dir.path().join("mysqld.sock").display()),
            format!("--pid-file={}", dir.path().join("mysqld.pid").display()),
            "--user=root".to_owned(),
            "--skip-grant-tables".to_owned(),
            "--skip-name-resolve".to_owned(),
            "--innodb-buffer-pool-size=32M".to_owned(),
            format!("--log-error={}", dir.path().join("error.log").display()),
        ];
        OwnMariaDb {
            service: ServiceProcess::start("mariadbd", &args, port, "mariadb-server"),
            _dir: dir,
        }
    }

    /// `mysql://root@127.0.0.1:<port>/<database>`; `database` empty for none.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.service.port)
    }

    /// Creates `name` and answers its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut conn = sqlx::MySqlConnection::connect(&self.url(""))
            .await
            .expect("connecting to the test's own MariaDB");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("creating a database");
        let _ = conn.close().await;
        self.url(name)
    }
}

/// A private `redis-server` on a free port, with nothing kept on disk (like a cache that loses
/// everything when it restarts).
pub struct RedisServer {
    service: ServiceProcess,
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (Debian package `redis-server`) on a free port.
    pub fn start() -> RedisServer {
        let port = free_port();
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        RedisServer {
            service: ServiceProcess::start("redis-server", &args, port, "Debian's redis-server"),
            port,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: whatever it held is gone).
    pub fn stop(&mut self) {
        self.service.stop();
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.service.restart();
    }
}

// ---------------------------------------------------------------------------------------------
// MySQL: scratch databases and a proxy that can cut the server off from its database.

/// The MySQL/MariaDB server the tests use, without a database: `FLOTILLA_TEST_MYSQL_URL`,
/// default `mysql://root@127.0.0.1:3306`.
pub fn mysql_server_url() -> String {
    std::env::var("FLOTILLA_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
        .trim_end_matches('/')
        .to_owned()
}

/// True when `FLOTILLA_TEST_SKIP_MYSQL=1` asks to skip tests that need MySQL. Without it, an
/// unreachable server fails them with a message saying so.
pub fn skip_mysql() -> bool {
    let skip = std::env::var("FLOTILLA_TEST_SKIP_MYSQL").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("FLOTILLA_TEST_SKIP_MYSQL=1: skipping a test that needs MySQL");
    }
    skip
}

/// A fresh database `flotilla_t_<random>` on [`mysql_server_url`], dropped (with everything
/// in it) when this is dropped, also when the test panics.
pub struct ScratchDatabase {
    pub name: String,
    /// `mysql://…/<name>`: what `--mysql-url` takes.
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create() -> ScratchDatabase {
        use sqlx::Connection;
        let server = mysql_server_url();
        let random = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let name = format!("flotilla_t_{random:016x}");
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::MySqlConnection::connect(&server),
        )
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            panic!(
                "MySQL/MariaDB at {server} is unreachable ({e}); start MariaDB \
                 (apt-get install mariadb-server), set FLOTILLA_TEST_MYSQL_URL, or set \
                 FLOTILLA_TEST_SKIP_MYSQL=1 to skip the MySQL tests"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("creating the scratch database");
        let _ = conn.close().await;
        ScratchDatabase {
            url: format!("{server}/{name}"),
            name,
        }
    }

    /// The URL of this database reached through `proxy` instead of directly.
    pub fn url_via(&self, proxy: &TcpProxy) -> String {
        let server = mysql_server_url();
        let (scheme, rest) = server.split_once("://").expect("mysql://… URL");
        let user = rest.rsplit_once('@').map(|(user, _)| format!("{user}@"));
        format!(
            "{scheme}://{}{}/{}",
            user.unwrap_or_default(),
            proxy.addr,
            self.name
        )
    }

    /// A direct connection pool on this database, to read what the server wrote.
    pub async fn pool(&self) -> sqlx::MySqlPool {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("connecting to the scratch database")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        // The test's runtime may be gone or unwinding: use a thread with a runtime of its own.
        let (server, name) = (mysql_server_url(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    let mut conn = sqlx::MySqlConnection::connect(&server).await?;
                    drop_database(&mut conn, &name).await?;
                    conn.close().await
                })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("could not drop the scratch database {}: {error}", self.name)
            }
            Err(_) => eprintln!("could not drop the scratch database {}", self.name),
        }
    }
}

/// A TCP proxy on `127.0.0.1:<free port>` to `upstream`, that a test can cut (every open
/// connection closed, new ones closed as soon as accepted) and restore: a database outage
/// without touching the database server other tests share.
pub struct TcpProxy {
    pub addr: SocketAddr,
    open: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let open = std::sync::Arc::new(tokio::sync::watch::channel(true).0);
        let accept = {
            let open = open.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !*open.borrow() {
                        drop(client);
                        continue;
                    }
                    let mut cut = open.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.wait_for(|open| !*open) => {}
                        }
                    });
                }
            })
        };
        TcpProxy { addr, open, accept }
    }

    /// The upstream of [`mysql_server_url`].
    pub async fn to_mysql() -> TcpProxy {
        let server = mysql_server_url();
        let authority = server
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&server);
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:3306")
        };
        let upstream = tokio::net::lookup_host(&host_port)
            .await
            .expect("resolving the MySQL server")
            .next()
            .expect("an address for the MySQL server");
        TcpProxy::start(upstream).await
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Drops `name` after ending every session still using it: a test that panicked mid-transaction
/// leaves a pooled connection holding a metadata lock that `DROP DATABASE` would wait on.
async fn drop_database(conn: &mut sqlx::MySqlConnection, name: &str) -> Result<(), sqlx::Error> {
    let sessions: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    for id in sessions {
        // Already gone is fine.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .execute(&mut *conn)
            .await;
    }
    sqlx::raw_sql("SET SESSION lock_wait_timeout = 30")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{name}`"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
