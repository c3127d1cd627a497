//! A simulated fleetd: orbit (the agent manager) and Fleet Desktop on one host, as their client
//! code talks to a Fleet server (see `/work/shared/reference/fleet-agent-side.md` §1–2).
//!
//! - **orbit** enrolls (`POST /api/fleet/orbit/enroll`) when it holds no node key, retrying
//!   with doubling back-off (10 s, 20 s, … six attempts); every authenticated request carries
//!   `orbit_node_key` in a JSON body sent without a `Content-Type`, as Go's client sends it;
//!   only a 200 is success; on a 401 orbit deletes its node key, so the next request enrolls
//!   again. It pulls its config every 30 s and pings (`HEAD …/orbit/ping`) for the server's
//!   capabilities.
//! - **The device token**: orbit generates a UUIDv4, sets it on the server
//!   (`POST …/orbit/device_token`, 3 attempts 5 s apart) and only then writes it to its
//!   `identifier` file. It rotates when the file is an hour old or when the remote check
//!   (`HEAD /api/latest/fleet/device/{token}/ping`, falling back to `GET …/desktop` on a 404)
//!   fails.
//! - **Fleet Desktop** polls `GET …/device/{token}/desktop` for the failing-policy count of its
//!   "My device (N)" title; on a 401 it re-reads the token file and tries again.
//!
//! Time is the caller's: [`SimFleetd::tick`] runs whatever is due at an instant, so tests and
//! the load tester drive the same code on any clock, and intervals scale with
//! [`FleetdIntervals`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::endpoints::Endpoint;
use crate::stats::AgentCounters;

/// What a fleetd request can end in, as orbit's and Desktop's clients tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum FleetdError {
    /// 401: the node key or device token is not (or no longer) valid.
    #[error("unauthenticated")]
    Unauthenticated,
    /// 409 (`device_token`: another host holds the token).
    #[error("conflict")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("status {0}: {1}")]
    Status(u16, String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// The host orbit runs on, as its enroll request describes it.
#[derive(Clone, Debug)]
pub struct FleetdHost {
    pub hardware_uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub hardware_model: String,
    /// osquery's platform name (`ubuntu`, `darwin`, `windows`).
    pub platform: String,
    /// Set only when the hardware UUID is not unique (VM clones).
    pub osquery_identifier: String,
}

/// fleetd's intervals; `scaled` divides them for tests.
#[derive(Clone, Copy, Debug)]
pub struct FleetdIntervals {
    pub config: Duration,
    pub ping: Duration,
    /// How often orbit looks at the token file's age.
    pub token_check: Duration,
    /// How often orbit asks the server whether the token is still valid.
    pub token_remote_check: Duration,
    pub token_ttl: Duration,
    pub desktop: Duration,
    pub enroll_retry: Duration,
    pub enroll_attempts: u32,
    pub token_write_retry: Duration,
}

impl FleetdIntervals {
    /// Every interval divided by `factor` (tests run fleetd's hour in seconds).
    pub fn scaled(factor: u32) -> FleetdIntervals {
        let d = FleetdIntervals::default();
        let f = factor.max(1);
        FleetdIntervals {
            config: d.config / f,
            ping: d.ping / f,
            token_check: d.token_check / f,
            token_remote_check: d.token_remote_check / f,
            token_ttl: d.token_ttl / f,
            desktop: d.desktop / f,
            enroll_retry: d.enroll_retry / f,
            enroll_attempts: d.enroll_attempts,
            token_write_retry: d.token_write_retry / f,
        }
    }
}

impl Default for FleetdIntervals {
    fn default() -> Self {
        FleetdIntervals {
            config: Duration::from_secs(30),
            ping: Duration::from_secs(300),
            token_check: Duration::from_secs(30),
            token_remote_check: Duration::from_secs(300),
            token_ttl: Duration::from_secs(3600),
            desktop: Duration::from_secs(300),
            enroll_retry: Duration::from_secs(10),
            enroll_attempts: 6,
            token_write_retry: Duration::from_secs(5),
        }
    }
}

/// Requests and errors per fleetd endpoint.
#[derive(Debug, Default)]
pub struct FleetdCounters {
    pub enroll: EndpointCount,
    pub config: EndpointCount,
    pub ping: EndpointCount,
    pub device_token: EndpointCount,
    pub token_check: EndpointCount,
    pub desktop: EndpointCount,
}

#[derive(Debug, Default)]
pub struct EndpointCount {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

impl EndpointCount {
    fn record<T>(&self, result: &Result<T, FleetdError>) {
        let counter = if result.is_ok() {
            &self.ok
        } else {
            &self.errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// The device token file: the token and when it was written (its mtime).
#[derive(Clone, Debug)]
struct TokenFile {
    token: String,
    written: Instant,
}

#[derive(Default)]
struct Due {
    config: Option<Instant>,
    ping: Option<Instant>,
    token_check: Option<Instant>,
    token_remote: Option<Instant>,
    desktop: Option<Instant>,
}

/// One host's orbit and Fleet Desktop.
pub struct SimFleetd {
    server: String,
    secret: String,
    host: FleetdHost,
    intervals: FleetdIntervals,
    client: reqwest::Client,
    /// When many simulated hosts share `client`: at most this many of their requests in flight
    /// (the connections a load balancer would hold open to the server).
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    /// orbit's `secret-orbit-node-key.txt`.
    node_key: Mutex<Option<String>>,
    /// orbit's `identifier` file, read by Desktop.
    token_file: Mutex<Option<TokenFile>>,
    server_capabilities: Mutex<String>,
    /// The latest `failing_policies_count` Desktop showed.
    failing_policies: Mutex<Option<u64>>,
    due: Mutex<Due>,
    pub counters: Arc<FleetdCounters>,
    /// The load tester's shared counters and latency histograms, when it runs this fleetd.
    shared: Option<Arc<AgentCounters>>,
}

/// The fleetd version the simulation reports (`orbit_info.version`).
pub const FLEETD_VERSION: &str = "1.38.0";

/// An HTTP client as fleetd's: TLS 1.2+, the given trust, and optionally a pinned address.
pub fn client(
    tls: Option<rustls::ClientConfig>,
    resolve: Option<(String, std::net::SocketAddr)>,
) -> Result<reqwest::Client, FleetdError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent("Go-http-client/1.1")
        .no_proxy();
    if let Some(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls);
    }
    if let Some((host, addr)) = resolve {
        builder = builder.resolve(&host, addr);
    }
    builder
        .build()
        .map_err(|e| FleetdError::Transport(e.to_string()))
}

/// What orbit advertises in its own capabilities header (Linux orbit).
const CLIENT_CAPABILITIES: &str = "end_user_auth";

impl SimFleetd {
    pub fn new(
        server: &str,
        secret: &str,
        host: FleetdHost,
        intervals: FleetdIntervals,
        tls: Option<rustls::ClientConfig>,
        resolve: Option<(String, std::net::SocketAddr)>,
    ) -> Result<SimFleetd, FleetdError> {
        Ok(SimFleetd::with_client(
            server,
            secret,
            host,
            intervals,
            client(tls, resolve)?,
        ))
    }

    /// A fleetd that sends its requests through `client` (shared by many simulated hosts).
    pub fn with_client(
        server: &str,
        secret: &str,
        host: FleetdHost,
        intervals: FleetdIntervals,
        client: reqwest::Client,
    ) -> SimFleetd {
        SimFleetd {
            server: server.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            host,
            intervals,
            client,
            node_key: Mutex::new(None),
            token_file: Mutex::new(None),
            server_capabilities: Mutex::new(String::new()),
            failing_policies: Mutex::new(None),
            due: Mutex::new(Due::default()),
            counters: Arc::default(),
            shared: None,
            in_flight: None,
        }
    }

    /// Lets at most `limit`'s permits of requests (shared with the other hosts holding it) be in
    /// flight at once; the wait for one counts in each request's latency.
    pub fn with_in_flight_limit(mut self, limit: Arc<tokio::sync::Semaphore>) -> SimFleetd {
        self.in_flight = Some(limit);
        self
    }

    /// Also counts every request, with its latency, into `counters` under fleetd's endpoints.
    pub fn with_counters(mut self, counters: Arc<AgentCounters>) -> SimFleetd {
        self.shared = Some(counters);
        self
    }

    fn record<T>(&self, endpoint: Endpoint, started: Instant, result: &Result<T, FleetdError>) {
        let count = match endpoint {
            Endpoint::OrbitEnroll => &self.counters.enroll,
            Endpoint::OrbitConfig => &self.counters.config,
            Endpoint::OrbitPing => &self.counters.ping,
            Endpoint::OrbitDeviceToken => &self.counters.device_token,
            Endpoint::DeviceTokenCheck => &self.counters.token_check,
            _ => &self.counters.desktop,
        };
        count.record(result);
        if let Some(shared) = &self.shared {
            shared.record(endpoint, started.elapsed(), result.is_err());
        }
    }

    /// The orbit node key orbit holds, if any.
    pub fn node_key(&self) -> Option<String> {
        lock(&self.node_key).clone()
    }

    /// Forgets the node key, as deleting orbit's key file does.
    pub fn forget_node_key(&self) {
        *lock(&self.node_key) = None;
    }

    /// The device token in the token file, if any.
    pub fn device_token(&self) -> Option<String> {
        lock(&self.token_file).as_ref().map(|f| f.token.clone())
    }

    /// The capabilities the server sent last.
    pub fn server_capabilities(&self) -> String {
        lock(&self.server_capabilities).clone()
    }

    /// What Desktop's title shows: `None` before its first successful poll.
    pub fn failing_policies(&self) -> Option<u64> {
        *lock(&self.failing_policies)
    }

    /// One request as orbit's and Desktop's base client makes it: JSON body without a
    /// `Content-Type`, the client's capabilities header; only 200 is success.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), FleetdError> {
        let _permit = match &self.in_flight {
            Some(limit) => Some(
                limit
                    .acquire()
                    .await
                    .map_err(|e| FleetdError::Transport(e.to_string()))?,
            ),
            None => None,
        };
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server))
            .header("X-Fleet-Capabilities", CLIENT_CAPABILITIES);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| FleetdError::Transport(e.to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| FleetdError::Transport(e.to_string()))?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(FleetdError::Unauthenticated),
            StatusCode::NOT_FOUND => return Err(FleetdError::NotFound),
            StatusCode::CONFLICT => return Err(FleetdError::Conflict),
            other => {
                return Err(FleetdError::Status(
                    other.as_u16(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
        if let Some(caps) = headers
            .get("x-fleet-capabilities")
            .and_then(|v| v.to_str().ok())
        {
            *lock(&self.server_capabilities) = caps.to_owned();
        }
        Ok((headers, bytes.to_vec()))
    }

    fn json(bytes: &[u8]) -> Result<Value, FleetdError> {
        serde_json::from_slice(bytes).map_err(|e| FleetdError::BadResponse(e.to_string()))
    }

    /// One enroll request.
    pub async fn enroll(&self) -> Result<String, FleetdError> {
        let body = json!({
            "enroll_secret": self.secret,
            "hardware_uuid": self.host.hardware_uuid,
            "hardware_serial": self.host.hardware_serial,
            "hostname": self.host.hostname,
            "platform": self.host.platform,
            "osquery_identifier": self.host.osquery_identifier,
            "computer_name": self.host.computer_name,
            "hardware_model": self.host.hardware_model,
        });
        let started = Instant::now();
        let result = async {
            let (_, bytes) = self
                .request(Method::POST, "/api/fleet/orbit/enroll", Some(&body))
                .await?;
            Self::json(&bytes)?["orbit_node_key"]
                .as_str()
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| FleetdError::BadResponse("no orbit_node_key".into()))
        }
        .await;
        self.record(Endpoint::OrbitEnroll, started, &result);
        result
    }

    /// The node key, enrolling first when orbit has none: retried with doubling back-off.
    async fn node_key_or_enroll(&self) -> Result<String, FleetdError> {
        if let Some(key) = self.node_key() {
            return Ok(key);
        }
        let mut wait = self.intervals.enroll_retry;
        let mut attempt = 1;
        loop {
            match self.enroll().await {
                Ok(key) => {
                    *lock(&self.node_key) = Some(key.clone());
                    return Ok(key);
                }
                Err(FleetdError::NotFound) => return Err(FleetdError::NotFound),
                Err(error) if attempt >= self.intervals.enroll_attempts => return Err(error),
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    /// An authenticated orbit request; a 401 deletes the node key.
    async fn authenticated(
        &self,
        method: Method,
        path: &str,
        mut body: Value,
    ) -> Result<Vec<u8>, FleetdError> {
        let key = self.node_key_or_enroll().await?;
        body["orbit_node_key"] = json!(key);
        match self.request(method, path, Some(&body)).await {
            Ok((_, bytes)) => Ok(bytes),
            Err(FleetdError::Unauthenticated) => {
                let mut held = lock(&self.node_key);
                if held.as_deref() == Some(key.as_str()) {
                    *held = None;
                }
                Err(FleetdError::Unauthenticated)
            }
            Err(error) => Err(error),
        }
    }

    /// `POST /api/fleet/orbit/config`.
    pub async fn config(&self) -> Result<Value, FleetdError> {
        let started = Instant::now();
        let result = async {
            let bytes = self
                .authenticated(Method::POST, "/api/fleet/orbit/config", json!({}))
                .await?;
            Self::json(&bytes)
        }
        .await;
        self.record(Endpoint::OrbitConfig, started, &result);
        result
    }

    /// `HEAD /api/fleet/orbit/ping`; answers the server's capabilities.
    pub async fn ping(&self) -> Result<String, FleetdError> {
        let started = Instant::now();
        let result = self
            .request(Method::HEAD, "/api/fleet/orbit/ping", None)
            .await
            .map(|_| self.server_capabilities());
        self.record(Endpoint::OrbitPing, started, &result);
        result
    }

    /// `POST /api/fleet/orbit/device_token` with `token`.
    pub async fn set_device_token(&self, token: &str) -> Result<(), FleetdError> {
        let started = Instant::now();
        let result = self
            .authenticated(
                Method::POST,
                "/api/fleet/orbit/device_token",
                json!({ "device_auth_token": token }),
            )
            .await
            .map(|_| ());
        self.record(Endpoint::OrbitDeviceToken, started, &result);
        result
    }

    /// A new token: set on the server (3 attempts), then written to the token file.
    pub async fn rotate_device_token(&self) -> Result<String, FleetdError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut attempt = 1;
        loop {
            match self.set_device_token(&token).await {
                Ok(()) => break,
                Err(error) if attempt >= 3 => return Err(error),
                Err(_) => {
                    tokio::time::sleep(self.intervals.token_write_retry).await;
                    attempt += 1;
                }
            }
        }
        *lock(&self.token_file) = Some(TokenFile {
            token: token.clone(),
            written: Instant::now(),
        });
        Ok(token)
    }

    /// orbit's remote check of the token: `HEAD …/device/{token}/ping`, or `GET …/desktop`
    /// from a server that has no ping route.
    pub async fn check_device_token(&self, token: &str) -> Result<(), FleetdError> {
        let ping = format!("/api/latest/fleet/device/{token}/ping");
        let started = Instant::now();
        let result = match self.request(Method::HEAD, &ping, None).await {
            Err(FleetdError::NotFound) => {
                let desktop = format!("/api/latest/fleet/device/{token}/desktop");
                self.request(Method::GET, &desktop, None).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        self.record(Endpoint::DeviceTokenCheck, started, &result);
        result
    }

    /// Fleet Desktop's poll: the failing-policy count. On a 401 it re-reads the token file
    /// (orbit may just have rotated it) and tries again, as Desktop's retry hook does.
    pub async fn desktop_summary(&self) -> Result<u64, FleetdError> {
        let mut tried: Option<String> = None;
        let started = Instant::now();
        let result = loop {
            let Some(token) = self.device_token() else {
                break Err(FleetdError::Unauthenticated);
            };
            if tried.as_deref() == Some(token.as_str()) {
                break Err(FleetdError::Unauthenticated);
            }
            let path = format!("/api/latest/fleet/device/{token}/desktop");
            match self.request(Method::GET, &path, None).await {
                Ok((_, bytes)) => {
                    break Self::json(&bytes).and_then(|summary| {
                        summary["failing_policies_count"].as_u64().ok_or_else(|| {
                            FleetdError::BadResponse("no failing_policies_count".into())
                        })
                    });
                }
                Err(FleetdError::Unauthenticated) => tried = Some(token),
                Err(error) => break Err(error),
            }
        };
        if let Ok(count) = &result {
            *lock(&self.failing_policies) = Some(*count);
        }
        self.record(Endpoint::Desktop, started, &result);
        result
    }

    /// Runs whatever is due at `now`: the config pull, the ping, the token's age and remote
    /// checks (rotating when either says so), Desktop's poll. The first tick does all of them.
    /// Errors are counted, not returned: fleetd logs them and carries on.
    pub async fn tick(&self) {
        let now = Instant::now();
        let due = |slot: fn(&mut Due) -> &mut Option<Instant>, every: Duration| {
            let mut d = lock(&self.due);
            let at = slot(&mut d);
            if at.is_none_or(|at| now >= at) {
                *at = Some(now + every);
                true
            } else {
                false
            }
        };
        let iv = self.intervals;
        if due(|d| &mut d.config, iv.config) {
            let _ = self.config().await;
        }
        if due(|d| &mut d.ping, iv.ping) {
            let _ = self.ping().await;
        }
        if due(|d| &mut d.token_check, iv.token_check) {
            let file = lock(&self.token_file).clone();
            let stale = file
                .as_ref()
                .is_none_or(|f| f.written.elapsed() + Duration::from_secs(1) >= iv.token_ttl);
            let remote_due = due(|d| &mut d.token_remote, iv.token_remote_check);
            let failed = match (&file, remote_due && !stale) {
                (Some(f), true) => self.check_device_token(&f.token).await.is_err(),
                _ => false,
            };
            if stale || failed {
                let _ = self.rotate_device_token().await;
            }
        }
        if due(|d| &mut d.desktop, iv.desktop) {
            let _ = self.desktop_summary().await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
