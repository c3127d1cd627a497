//! [`SimAgent`]: a simulated osqueryd 5.23 speaking osquery's TLS remote API.
//!
//! One agent = one host. It keeps one keep-alive HTTP/1.1 connection per osquery "thread"
//! (start-up/config, config refresh, distributed, logger, carver), interprets responses exactly
//! like osquery (status codes ignored, `node_invalid` deletes the node key, …), retries on
//! osquery's schedules and, in [`SimAgent::run`], follows osqueryd's start-up order and loops.

use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue,
};
use serde_json::{Value, json};

use crate::answer::{AnswerContext, QueryAnswerer};
use crate::clock::unix_now;
use crate::endpoints::{Endpoint, EndpointPaths};
use crate::error::AgentError;
use crate::host::HostProfile;
use crate::intervals::Intervals;
use crate::logger::{LogBuffer, LogType, StatusEntry, status_line};
use crate::read::ReadResponse;
use crate::response::{
    check_carve_block_response, interpret_response, parse_carve_begin_response,
    parse_enroll_response,
};
use crate::retry::{RetryPolicies, RetryPolicy};
use crate::schedule::{ConfigOptions, Schedule, config_hash};
use crate::stats::{AgentCounters, AgentStats};
use crate::template::OsTemplate;
use crate::write::WriteBody;

/// osquery's per-request deadline (`http::Client` total timeout).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(16);
/// Boost.Beast's default response body limit, which osquery does not raise.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// The osquery version simulated by default.
pub const DEFAULT_OSQUERY_VERSION: &str = "5.23.1";

/// Install rustls' ring crypto provider as the process default (idempotent). Called by
/// [`SimAgent::new`]; exposed for programs that build other TLS clients first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How to build a [`SimAgent`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Base URL, e.g. `https://localhost:8443` (`http://` works too, for tests).
    pub server: String,
    /// PEM bundle of the only CAs to trust (`--tls_server_certs`); `None` = platform roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip certificate verification (osquery debug builds' `tls_allow_unsafe`).
    pub insecure: bool,
    /// Enroll secret sent at enrollment.
    pub enroll_secret: String,
    /// `host_identifier` sent at enrollment; also seeds all per-host values.
    pub host_identifier: String,
    /// Operating system to pretend to be.
    pub template: OsTemplate,
    /// Endpoint paths.
    pub endpoints: EndpointPaths,
    /// Send `Authorization: NodeKey <key>` (osquery ≥ 5.23.0).
    pub send_node_key_header: bool,
    /// Version reported in `User-Agent` and `osquery_info`.
    pub osquery_version: String,
    /// Resolve this host name to this address instead of using DNS.
    pub resolve: Option<(String, SocketAddr)>,
    /// Local address to bind outgoing connections to.
    pub local_address: Option<IpAddr>,
    /// Retry schedules (scale their base down in tests).
    pub retries: RetryPolicies,
    /// Total deadline of one HTTP request (16 s).
    pub request_timeout: Duration,
    /// `--tls_accept_gzip` (5.21+): send `Accept-Encoding: gzip`, accept gzip responses.
    pub accept_gzip: bool,
    /// A TLS client configuration to use instead of building one from `ca_pem`/`insecure`
    /// (see [`tls_client_config`]); the load tester shares one between all agents.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Counters to count into instead of the agent's own (the load tester shares one set,
    /// with latency histograms, between all agents; [`SimAgent::stats`] then reports the
    /// shared totals).
    pub counters: Option<Arc<AgentCounters>>,
    /// Called just before each `distributed/write` attempt is sent.
    pub write_hook: Option<WriteHook>,
    /// One keep-alive connection for all "threads" instead of one per thread (a cheaper,
    /// less faithful mode for very large runs; requests that overlap still open a second
    /// connection, which is closed after use).
    pub share_connection: bool,
    /// A fixed set of keep-alive connections shared with other agents ([`ConnectionPool`]),
    /// as when hosts reach the server through a load balancer that reuses its backend
    /// connections. Every thread of this agent uses it; `share_connection` is then moot.
    pub pool: Option<ConnectionPool>,
}

/// A callback told about every `distributed/write` the moment before it is sent: the body and
/// the send time. The load tester uses it to time live-query results end to end.
#[derive(Clone)]
pub struct WriteHook(pub Arc<WriteHookFn>);

/// The function inside a [`WriteHook`].
pub type WriteHookFn = dyn Fn(&WriteBody, Instant) + Send + Sync;

impl std::fmt::Debug for WriteHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteHook")
    }
}

/// Accepts any server certificate (`--insecure`; osquery debug builds' `tls_allow_unsafe`).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration of an agent: trust only the CAs in `ca_pem` (osquery's
/// `--tls_server_certs`; certificate chain and host name are verified), or nothing at all
/// with `insecure`. TLS 1.2 and 1.3, no session resumption (osquery reconnects with a full
/// handshake). `None` when neither is given: the platform's roots are used then.
///
/// One configuration can serve any number of agents and connections; building it once and
/// passing it in [`AgentConfig::tls`] saves a root store and verifier per connection.
pub fn tls_client_config(
    ca_pem: Option<&[u8]>,
    insecure: bool,
) -> Result<Option<rustls::ClientConfig>, AgentError> {
    use rustls_pki_types::pem::PemObject;
    install_crypto_provider();
    let builder = rustls::ClientConfig::builder();
    let mut config = if insecure {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else if let Some(pem) = ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| AgentError::Setup(format!("CA bundle: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| AgentError::Setup(format!("CA bundle: {e}")))?;
        }
        if roots.is_empty() {
            return Err(AgentError::Setup(
                "CA bundle contains no certificate".into(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        return Ok(None);
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Some(config))
}

impl AgentConfig {
    /// A config with osquery 5.23.1 defaults: `/api/v1/osquery` paths, `Authorization` header,
    /// platform trust roots, osquery's retry schedules and 16 s timeout.
    pub fn new(
        server: impl Into<String>,
        enroll_secret: impl Into<String>,
        host_identifier: impl Into<String>,
        template: OsTemplate,
    ) -> Self {
        AgentConfig {
            server: server.into(),
            ca_pem: None,
            insecure: false,
            enroll_secret: enroll_secret.into(),
            host_identifier: host_identifier.into(),
            template,
            endpoints: EndpointPaths::default(),
            send_node_key_header: true,
            osquery_version: DEFAULT_OSQUERY_VERSION.to_string(),
            resolve: None,
            local_address: None,
            retries: RetryPolicies::default(),
            request_timeout: REQUEST_TIMEOUT,
            accept_gzip: false,
            tls: None,
            counters: None,
            write_hook: None,
            share_connection: false,
            pool: None,
        }
    }
}

/// The osquery thread a request is made from; each has its own connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentThread {
    /// Start-up thread: initial enroll and config (also [`SimAgent::enroll`]/[`SimAgent::config`]).
    Main,
    /// Config refresh thread (`config_refresh > 0`).
    ConfigRefresh,
    /// Distributed thread.
    Distributed,
    /// Log forwarder thread.
    Logger,
    /// Carver thread.
    Carver,
}

impl AgentThread {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }
}

/// What one distributed cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// The read succeeded (possibly after retries).
    pub read_ok: bool,
    /// Why the read failed.
    pub read_error: Option<String>,
    /// Names in the read response's `queries`.
    pub received: Vec<String>,
    /// Names dropped by discovery (0 rows); nothing is written for them.
    pub skipped: Vec<String>,
    /// Why (part of) the read response was discarded (bad entry, discovery SQL error).
    pub discarded: Option<String>,
    /// Names executed this cycle, in execution (lexicographic) order.
    pub answered: Vec<String>,
    /// `accelerate` applied from this read, if any (integers only).
    pub accelerate: Option<i64>,
    /// Names sent in this cycle's write (includes results kept from failed writes);
    /// empty when no write was needed.
    pub written: Vec<String>,
    /// Why the write failed (its results are kept for the next cycle).
    pub write_error: Option<String>,
    /// Results still waiting to be written after this cycle.
    pub pending: usize,
}

/// A completed file carve upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarveReport {
    /// `carve_id` (the carve GUID).
    pub carve_id: String,
    /// `request_id` (a random UUID, not the distributed query name).
    pub request_id: String,
    /// `session_id` returned by the server.
    pub session_id: String,
    /// Blocks uploaded.
    pub block_count: u64,
    /// Bytes uploaded.
    pub carve_size: u64,
}

/// Flags that change at run time (server-pushed options, loaded config).
#[derive(Debug, Clone)]
struct Runtime {
    intervals: Intervals,
    config_hash: String,
    pack_delimiter: String,
    distributed_attempts: u32,
}

struct Shared {
    config: AgentConfig,
    profile: HostProfile,
    urls: Vec<reqwest::Url>,
    clients: Vec<reqwest::Client>,
    node_key: Mutex<String>,
    enroll_lock: tokio::sync::Mutex<()>,
    counters: Arc<AgentCounters>,
    runtime: Mutex<Runtime>,
}

/// A simulated osqueryd. See the module documentation.
pub struct SimAgent {
    shared: Arc<Shared>,
    pending: WriteBody,
    accelerate_until: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A fixed number of keep-alive connections for many agents. Each connection carries one
/// request at a time; a request waits (first come, first served) for a free one, and that
/// wait counts in its latency, as queueing at a load balancer would.
#[derive(Clone)]
pub struct ConnectionPool {
    /// One client per connection, never used by two requests at once, so each keeps exactly
    /// one connection open.
    clients: Arc<Vec<reqwest::Client>>,
    free_tx: tokio::sync::mpsc::Sender<usize>,
    free_rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<usize>>>,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("connections", &self.clients.len())
            .finish()
    }
}

/// One connection of a [`ConnectionPool`], handed back when dropped.
pub struct PoolLease {
    index: usize,
    client: reqwest::Client,
    free_tx: tokio::sync::mpsc::Sender<usize>,
}

impl Drop for PoolLease {
    fn drop(&mut self) {
        let _ = self.free_tx.try_send(self.index);
    }
}

impl ConnectionPool {
    /// `size` connections to `cfg`'s server, with its TLS, timeouts and addresses (opened on
    /// first use).
    pub fn new(cfg: &AgentConfig, size: usize) -> Result<ConnectionPool, AgentError> {
        install_crypto_provider();
        let tls = match &cfg.tls {
            Some(shared) => Some(rustls::ClientConfig::clone(shared)),
            None => tls_client_config(cfg.ca_pem.as_deref(), cfg.insecure)?,
        };
        let size = size.max(1);
        let clients = (0..size)
            .map(|_| build_client(cfg, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let (free_tx, free_rx) = tokio::sync::mpsc::channel(size);
        for index in 0..size {
            free_tx.try_send(index).expect("room for every connection");
        }
        Ok(ConnectionPool {
            clients: Arc::new(clients),
            free_tx,
            free_rx: Arc::new(tokio::sync::Mutex::new(free_rx)),
        })
    }

    /// Waits for a free connection.
    pub async fn acquire(&self) -> PoolLease {
        let index = {
            let mut free = self.free_rx.lock().await;
            free.recv().await.expect("the pool holds its own sender")
        };
        PoolLease {
            index,
            client: self.clients[index].clone(),
            free_tx: self.free_tx.clone(),
        }
    }
}

fn build_client(
    cfg: &AgentConfig,
    tls: Option<&rustls::ClientConfig>,
) -> Result<reqwest::Client, AgentError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let mut b = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        // osquery keeps a thread's socket until `tls_session_timeout` (3600 s).
        .pool_idle_timeout(Duration::from_secs(3600))
        .tcp_keepalive(Duration::from_secs(60))
        .timeout(cfg.request_timeout)
        .user_agent(format!("osquery/{}", cfg.osquery_version))
        .default_headers(headers)
        .no_proxy()
        .tls_version_min(reqwest::tls::Version::TLS_1_2);
    if !cfg.accept_gzip {
        b = b.no_gzip();
    }
    if let Some(tls) = tls {
        b = b.tls_backend_preconfigured(tls.clone());
    }
    if let Some((host, addr)) = &cfg.resolve {
        b = b.resolve(host, *addr);
    }
    if let Some(ip) = cfg.local_address {
        b = b.local_address(ip);
    }
    b.build().map_err(|e| AgentError::Setup(error_chain(&e)))
}

impl Shared {
    fn current_key(&self) -> String {
        lock(&self.node_key).clone()
    }

    /// The connection of `thread`, or a connection of the shared pool (held until the lease
    /// is dropped).
    async fn client(&self, thread: AgentThread) -> (reqwest::Client, Option<PoolLease>) {
        match &self.config.pool {
            Some(pool) => {
                let lease = pool.acquire().await;
                (lease.client.clone(), Some(lease))
            }
            None => (
                self.clients
                    .get(thread.index())
                    .unwrap_or(&self.clients[0])
                    .clone(),
                None,
            ),
        }
    }

    /// Replace the cached key (empty = none), keeping the counters' key-holder count right.
    fn store_key(&self, key: String) {
        let mut current = lock(&self.node_key);
        let (had, has) = (!current.is_empty(), !key.is_empty());
        *current = key;
        if had != has {
            self.counters.record_key_held(has);
        }
    }

    fn runtime(&self) -> Runtime {
        lock(&self.runtime).clone()
    }

    /// One HTTP exchange: send, read at most 8 MiB, interpret, count.
    async fn exchange<T>(
        &self,
        thread: AgentThread,
        endpoint: Endpoint,
        body: &Value,
        key: &str,
        gzip: bool,
        interpret: impl FnOnce(&[u8]) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let started = Instant::now();
        let result = self
            .send(thread, endpoint, body, key, gzip, interpret)
            .await;
        self.counters
            .record(endpoint, started.elapsed(), result.is_err());
        if let Err(e) = &result {
            tracing::debug!(host = %self.config.host_identifier, endpoint = endpoint.name(), error = %e, "request failed");
            if e.is_node_invalid() {
                self.counters.record_node_invalid();
                // osquery deletes whatever key is cached, even one a concurrent enroll just stored.
                self.store_key(String::new());
            }
        }
        result
    }

    async fn send<T>(
        &self,
        thread: AgentThread,
        endpoint: Endpoint,
        body: &Value,
        key: &str,
        gzip: bool,
        interpret: impl FnOnce(&[u8]) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut bytes =
            serde_json::to_vec(body).map_err(|e| AgentError::Protocol(e.to_string()))?;
        if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&bytes)
                .map_err(|e| AgentError::Transport(e.to_string()))?;
            bytes = enc
                .finish()
                .map_err(|e| AgentError::Transport(e.to_string()))?;
        }
        let (client, _lease) = self.client(thread).await;
        let mut req = client.post(self.urls[endpoint.index()].clone()).body(bytes);
        if gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        if self.config.send_node_key_header && !key.is_empty() && endpoint != Endpoint::Enroll {
            req = req.header(AUTHORIZATION, format!("NodeKey {key}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| AgentError::Transport(error_chain(&e)))?;
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(AgentError::Transport(
                "response body larger than 8 MiB".into(),
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| AgentError::Transport(error_chain(&e)))?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(AgentError::Transport(
                "response body larger than 8 MiB".into(),
            ));
        }
        interpret(&body)
    }

    /// Enroll with the enrollment retry schedule on `thread`'s connection; stores the key.
    /// The caller holds the enroll lock.
    async fn enroll_with_retries(&self, thread: AgentThread) -> Result<String, AgentError> {
        let policy = self.config.retries.enroll;
        let body = json!({
            "enroll_secret": self.config.enroll_secret,
            "host_identifier": self.config.host_identifier,
            "platform_type": self.config.template.platform_type(),
            "host_details": self.config.template.host_details(&self.profile),
        });
        let mut attempt = 1;
        loop {
            match self
                .exchange(
                    thread,
                    Endpoint::Enroll,
                    &body,
                    "",
                    false,
                    parse_enroll_response,
                )
                .await
            {
                Ok(key) => {
                    self.store_key(key.clone());
                    self.counters.record_enroll();
                    return Ok(key);
                }
                Err(e) => {
                    if !policy.allows(attempt + 1) {
                        tracing::warn!(host = %self.config.host_identifier, error = %e, "enrollment failed");
                        return Err(e);
                    }
                    tokio::time::sleep(policy.sleep_after(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// osquery's `getNodeKey`: the cached key, or enroll (once, under a lock other threads wait
    /// on). Returns `""` when enrollment fails — requests then go out with an empty key.
    async fn node_key_for(&self, thread: AgentThread) -> String {
        let key = self.current_key();
        if !key.is_empty() {
            return key;
        }
        let _guard = self.enroll_lock.lock().await;
        let key = self.current_key();
        if !key.is_empty() {
            return key;
        }
        self.enroll_with_retries(thread).await.unwrap_or_default()
    }

    /// osquery's `TLSRequestHelper::go`: up to `policy.attempts` attempts; every attempt
    /// re-reads the node key (enrolling first if it was deleted by `node_invalid`).
    async fn request(
        &self,
        thread: AgentThread,
        endpoint: Endpoint,
        policy: RetryPolicy,
        gzip: bool,
        make_body: impl Fn(&str) -> Value,
    ) -> Result<Value, AgentError> {
        let mut attempt = 1;
        loop {
            let key = self.node_key_for(thread).await;
            let body = make_body(&key);
            match self
                .exchange(thread, endpoint, &body, &key, gzip, interpret_response)
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !policy.allows(attempt + 1) {
                        return Err(e);
                    }
                    tokio::time::sleep(policy.sleep_after(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Fetch the config, check it is an object, apply pushed options and remember its hash.
    async fn fetch_config(&self, thread: AgentThread) -> Result<Value, AgentError> {
        let policy = self.config.retries.config;
        let config = self
            .request(
                thread,
                Endpoint::Config,
                policy,
                false,
                |key| json!({ "node_key": key }),
            )
            .await?;
        if !config.is_object() {
            return Err(AgentError::Protocol("config is not a JSON object".into()));
        }
        let options = ConfigOptions::from_config(&config);
        let mut rt = lock(&self.runtime);
        rt.config_hash = config_hash(&config);
        if let Some(d) = options.pack_delimiter {
            rt.pack_delimiter = d;
        }
        if rt.intervals.honor_server_options {
            if let Some(s) = options.distributed_interval {
                rt.intervals.distributed = Duration::from_secs(s);
            }
            if let Some(s) = options.logger_tls_period {
                rt.intervals.logger_period = Duration::from_secs(s.max(1));
            }
            if let Some(n) = options.logger_tls_max_lines {
                rt.intervals.logger_max_lines = usize::try_from(n).unwrap_or(usize::MAX);
            }
            if let Some(c) = options.logger_tls_compress {
                rt.intervals.logger_compress = c;
            }
            if let Some(n) = options.distributed_tls_max_attempts {
                rt.distributed_attempts = u32::try_from(n).unwrap_or(u32::MAX);
            }
        }
        Ok(config)
    }

    /// `GET /version` on `thread`'s connection, counted as a request to `endpoint` (the request
    /// it stands in for in the `/version` ceiling). Success = a 2xx status and a whole body.
    async fn version_request(&self, thread: AgentThread, endpoint: Endpoint) -> bool {
        let started = Instant::now();
        let (client, _lease) = self.client(thread).await;
        let url = &self.urls[Endpoint::OSQUERY.len()];
        let ok = match client.get(url.clone()).send().await {
            Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
            Err(e) => {
                tracing::debug!(host = %self.config.host_identifier, error = %error_chain(&e), "GET /version failed");
                false
            }
        };
        self.counters.record(endpoint, started.elapsed(), !ok);
        ok
    }

    async fn send_log(
        &self,
        log_type: LogType,
        data: Vec<Value>,
        gzip: bool,
    ) -> Result<(), AgentError> {
        let key = self.node_key_for(AgentThread::Logger).await;
        let body = json!({ "node_key": key, "log_type": log_type.as_str(), "data": data });
        self.exchange(
            AgentThread::Logger,
            Endpoint::Log,
            &body,
            &key,
            gzip,
            interpret_response,
        )
        .await
        .map(|_| ())
    }
}

impl SimAgent {
    /// Build an agent (no network traffic yet). Installs the ring crypto provider.
    pub fn new(config: AgentConfig) -> Result<Self, AgentError> {
        install_crypto_provider();
        let base = config.server.trim_end_matches('/');
        let mut urls = Vec::with_capacity(Endpoint::OSQUERY.len() + 1);
        for e in Endpoint::OSQUERY {
            let path = config.endpoints.path(e);
            let url = reqwest::Url::parse(&format!("{base}{path}"))
                .map_err(|err| AgentError::Setup(format!("bad URL {base}{path}: {err}")))?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(AgentError::Setup(format!("unsupported scheme in {url}")));
            }
            urls.push(url);
        }
        let version_url = reqwest::Url::parse(&format!("{base}/version"))
            .map_err(|err| AgentError::Setup(format!("bad URL {base}/version: {err}")))?;
        urls.push(version_url);
        let tls = match &config.tls {
            Some(shared) => Some(rustls::ClientConfig::clone(shared)),
            None => tls_client_config(config.ca_pem.as_deref(), config.insecure)?,
        };
        let client_count = match (&config.pool, config.share_connection) {
            (Some(_), _) => 0,
            (None, true) => 1,
            (None, false) => AgentThread::COUNT,
        };
        let clients = (0..client_count)
            .map(|_| build_client(&config, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let profile = HostProfile::new(
            config.template,
            &config.host_identifier,
            &config.osquery_version,
        );
        let runtime = Runtime {
            intervals: Intervals::default(),
            config_hash: String::new(),
            pack_delimiter: "_".into(),
            distributed_attempts: config.retries.distributed.attempts,
        };
        let counters = config.counters.clone().unwrap_or_default();
        Ok(SimAgent {
            shared: Arc::new(Shared {
                config,
                profile,
                urls,
                clients,
                node_key: Mutex::new(String::new()),
                enroll_lock: tokio::sync::Mutex::new(()),
                counters,
                runtime: Mutex::new(runtime),
            }),
            pending: WriteBody::default(),
            accelerate_until: None,
        })
    }

    /// The configuration the agent was built with.
    pub fn agent_config(&self) -> &AgentConfig {
        &self.shared.config
    }

    /// The host identity (hardware UUID, serial, addresses, …).
    pub fn profile(&self) -> &HostProfile {
        &self.shared.profile
    }

    /// The cached node key, `None` when there is none.
    pub fn node_key(&self) -> Option<String> {
        Some(self.shared.current_key()).filter(|k| !k.is_empty())
    }

    /// Reads this agent's node key later, after [`run`](SimAgent::run) has taken the agent.
    pub fn key_reader(&self) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || Some(shared.current_key()).filter(|k| !k.is_empty())
    }

    /// Replace the cached node key (e.g. to simulate a restart with a key persisted in
    /// osquery's database); `None` deletes it.
    pub fn set_node_key(&self, key: Option<String>) {
        self.shared.store_key(key.unwrap_or_default());
    }

    /// Snapshot of the request counters.
    pub fn stats(&self) -> AgentStats {
        self.shared.counters.snapshot(self.node_key().is_some())
    }

    /// Live counters, shared with the agent (for progress reporting while it runs).
    pub fn counters(&self) -> Arc<AgentCounters> {
        self.shared.counters.clone()
    }

    /// The current timing flags (after any server-pushed options).
    pub fn intervals(&self) -> Intervals {
        self.shared.runtime().intervals
    }

    /// Replace the timing flags.
    pub fn set_intervals(&self, intervals: Intervals) {
        lock(&self.shared.runtime).intervals = intervals;
    }

    /// Whether an `accelerate` from the server is still in effect.
    pub fn accelerated(&self) -> bool {
        self.accelerate_until.is_some_and(|t| Instant::now() < t)
    }

    /// Enroll now (with the enrollment retry schedule), replacing any cached key, and return
    /// the new key. Uses the start-up thread's connection.
    pub async fn enroll(&self) -> Result<String, AgentError> {
        let _guard = self.shared.enroll_lock.lock().await;
        self.shared.enroll_with_retries(AgentThread::Main).await
    }

    /// Fetch the config (3 attempts; enrolls first when there is no key). Pushed options are
    /// applied when [`Intervals::honor_server_options`] is set. Returns the whole JSON object.
    pub async fn config(&self) -> Result<Value, AgentError> {
        self.shared.fetch_config(AgentThread::Main).await
    }

    /// One distributed read (with retries), parsed.
    pub async fn distributed_read(&self) -> Result<ReadResponse, AgentError> {
        let policy = self.distributed_policy();
        let v = self
            .shared
            .request(
                AgentThread::Distributed,
                Endpoint::DistributedRead,
                policy,
                false,
                |key| json!({ "node_key": key }),
            )
            .await?;
        ReadResponse::from_json(&v)
    }

    /// One distributed write of `body` (with retries).
    pub async fn distributed_write(&self, body: &WriteBody) -> Result<(), AgentError> {
        let policy = self.distributed_policy();
        self.shared
            .request(
                AgentThread::Distributed,
                Endpoint::DistributedWrite,
                policy,
                false,
                |key| {
                    if let Some(hook) = &self.shared.config.write_hook {
                        (hook.0)(body, Instant::now());
                    }
                    body.to_json(key)
                },
            )
            .await
            .map(|_| ())
    }

    fn distributed_policy(&self) -> RetryPolicy {
        let attempts = self.shared.runtime().distributed_attempts;
        self.shared
            .config
            .retries
            .distributed
            .with_attempts(attempts.max(1))
    }

    /// Send one logger request (`{"node_key","log_type","data"}`, a single attempt as osquery's
    /// logger does). With `gzip` the whole body is gzip-compressed (level 9) and
    /// `Content-Encoding: gzip` is set.
    pub async fn log(
        &self,
        log_type: LogType,
        data: Vec<Value>,
        gzip: bool,
    ) -> Result<(), AgentError> {
        self.shared.send_log(log_type, data, gzip).await
    }

    /// Upload `data` as a file carve: a start request, then `ceil(len / block_size)` blocks,
    /// strictly in order, each with up to 3 attempts (osquery 5.22+). Block bodies carry no
    /// node key; the `Authorization` header is sent on all requests.
    pub async fn carve(&self, data: &[u8], block_size: usize) -> Result<CarveReport, AgentError> {
        if block_size == 0 {
            return Err(AgentError::Setup("carve block size must be > 0".into()));
        }
        let shared = &self.shared;
        let policy = shared.config.retries.carve;
        let thread = AgentThread::Carver;
        let key = shared.node_key_for(thread).await;
        let carve_id = uuid::Uuid::new_v4().to_string();
        let request_id = uuid::Uuid::new_v4().to_string();
        let block_count = data.len().div_ceil(block_size) as u64;
        let begin = json!({
            "block_count": block_count,
            "block_size": block_size,
            "carve_size": data.len(),
            "carve_id": carve_id,
            "request_id": request_id,
            "node_key": key,
        });
        let mut attempt = 1;
        let session_id = loop {
            match shared
                .exchange(
                    thread,
                    Endpoint::CarveBegin,
                    &begin,
                    &key,
                    false,
                    parse_carve_begin_response,
                )
                .await
            {
                Ok(s) => break s,
                Err(e) if !policy.allows(attempt + 1) => return Err(e),
                Err(_) => {
                    tokio::time::sleep(policy.sleep_after(attempt)).await;
                    attempt += 1;
                }
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        for (block_id, chunk) in data.chunks(block_size).enumerate() {
            let body = json!({
                "block_id": block_id,
                "session_id": session_id,
                "request_id": request_id,
                "data": b64.encode(chunk),
            });
            let mut attempt = 1;
            loop {
                let key = shared.current_key();
                match shared
                    .exchange(
                        thread,
                        Endpoint::CarveBlock,
                        &body,
                        &key,
                        false,
                        check_carve_block_response,
                    )
                    .await
                {
                    Ok(()) => break,
                    Err(e) if !policy.allows(attempt + 1) => return Err(e),
                    Err(_) => {
                        tokio::time::sleep(policy.sleep_after(attempt)).await;
                        attempt += 1;
                    }
                }
            }
        }
        Ok(CarveReport {
            carve_id,
            request_id,
            session_id,
            block_count,
            carve_size: data.len() as u64,
        })
    }

    /// One turn of osquery's distributed loop: read → discovery rule → run the accepted
    /// queries in name order → one write if there is at least one result (including results
    /// kept from an earlier failed write) → report.
    pub async fn run_distributed_cycle(&mut self, answerer: &dyn QueryAnswerer) -> CycleReport {
        let mut report = CycleReport::default();
        match self.distributed_read().await {
            Ok(read) => {
                report.read_ok = true;
                report.received = read.queries.keys().cloned().collect();
                let rt = self.shared.runtime();
                let ctx = AnswerContext {
                    config_hash: &rt.config_hash,
                    ..AnswerContext::new(&rt.intervals)
                };
                let work = read.accept(answerer, &ctx);
                report.skipped = work.skipped;
                report.discarded = work.error;
                if let Some(secs) = work.accelerate {
                    report.accelerate = Some(secs);
                    self.accelerate_until =
                        (secs > 0).then(|| Instant::now() + Duration::from_secs(secs as u64));
                }
                for (name, sql) in work.run {
                    let answer = answerer.answer(&name, &sql, &ctx);
                    self.pending.insert(&name, answer);
                    report.answered.push(name);
                }
            }
            Err(e) => report.read_error = Some(e.to_string()),
        }
        if !self.pending.is_empty() {
            report.written = self.pending.names();
            match self.distributed_write(&self.pending).await {
                Ok(()) => self.pending = WriteBody::default(),
                Err(e) => report.write_error = Some(e.to_string()),
            }
        }
        report.pending = self.pending.len();
        report
    }

    /// Run like osqueryd until `shutdown` completes, then return the counters.
    ///
    /// Order: enroll if there is no key → config (a failure leaves an empty config) → logger
    /// set-up (without a node key osqueryd exits; so does this loop) and first flush with the
    /// start-up status lines → then concurrently: the distributed loop (first read at once;
    /// then read/run/write and sleep `distributed` or `accelerated` while accelerated), the
    /// logger loop (every `logger_period`: due scheduled queries, then a flush of results then
    /// statuses, with per-type backoff) and, if `config_refresh > 0`, the config refresh loop.
    pub async fn run(
        mut self,
        intervals: Intervals,
        answerer: &dyn QueryAnswerer,
        shutdown: impl Future<Output = ()>,
    ) -> AgentStats {
        self.set_intervals(intervals);
        tokio::select! {
            _ = shutdown => {}
            _ = self.run_inner(answerer) => {}
        }
        self.stats()
    }

    /// The `/version` ceiling: the request pattern of an idle enrolled host with every request
    /// replaced by `GET /version` on the same thread's keep-alive connection, until `shutdown`.
    ///
    /// Start-up: two requests on the start-up connection (standing for enroll and config) and
    /// one on the logger connection (the first flush). Then a request on the distributed
    /// connection at once and every `distributed` interval (a check-in), and one on the config
    /// refresh connection every `config_refresh` (if > 0). Each request is counted under the
    /// endpoint it stands in for. Nothing else is sent: an idle host's logger has nothing to
    /// send and an empty check-in writes nothing, so the connections, TLS sessions and request
    /// rate are those of [`SimAgent::run`] against a server with no work for the host.
    pub async fn run_version_only(
        self,
        intervals: Intervals,
        shutdown: impl Future<Output = ()>,
    ) -> AgentStats {
        let shared = self.shared.clone();
        let work = async {
            shared
                .version_request(AgentThread::Main, Endpoint::Enroll)
                .await;
            shared
                .version_request(AgentThread::Main, Endpoint::Config)
                .await;
            shared
                .version_request(AgentThread::Logger, Endpoint::Log)
                .await;
            let distributed = async {
                loop {
                    shared
                        .version_request(AgentThread::Distributed, Endpoint::DistributedRead)
                        .await;
                    tokio::time::sleep(intervals.distributed).await;
                }
            };
            let refresh = async {
                if intervals.config_refresh.is_zero() {
                    return std::future::pending::<()>().await;
                }
                loop {
                    tokio::time::sleep(intervals.config_refresh).await;
                    shared
                        .version_request(AgentThread::ConfigRefresh, Endpoint::Config)
                        .await;
                }
            };
            tokio::join!(distributed, refresh);
        };
        tokio::select! {
            _ = shutdown => {}
            _ = work => {}
        }
        self.stats()
    }

    async fn run_inner(&mut self, answerer: &dyn QueryAnswerer) {
        let shared = self.shared.clone();
        let state = Mutex::new(RunState::new(shared.runtime().intervals.buffered_log_max));

        // Start-up: the config request enrolls on demand (each of its attempts calls getNodeKey,
        // so a failing enrollment is retried per attempt, as in osqueryd).
        match shared.fetch_config(AgentThread::Main).await {
            Ok(config) => apply_config(&shared, &state, &config, answerer),
            Err(e) => {
                tracing::warn!(host = %shared.config.host_identifier, error = %e, "initial config fetch failed")
            }
        }
        if shared.node_key_for(AgentThread::Main).await.is_empty() {
            tracing::error!(host = %shared.config.host_identifier, "no node key, TLS logging disabled; agent stops");
            return;
        }
        startup_status_lines(&shared, &state);
        flush_logs(&shared, &state).await;

        let distributed = async {
            loop {
                self.run_distributed_cycle(answerer).await;
                let iv = self.intervals();
                let pause = if self.accelerated() {
                    iv.accelerated
                } else {
                    iv.distributed
                };
                tokio::time::sleep(pause).await;
            }
        };
        let logger = async {
            loop {
                tokio::time::sleep(shared.runtime().intervals.logger_period).await;
                run_scheduled(&shared, &state, answerer);
                flush_logs(&shared, &state).await;
            }
        };
        let refresh = async {
            let iv = shared.runtime().intervals;
            if iv.config_refresh.is_zero() {
                return std::future::pending::<()>().await;
            }
            let mut wait = iv.config_refresh;
            loop {
                tokio::time::sleep(wait).await;
                let iv = shared.runtime().intervals;
                match shared.fetch_config(AgentThread::ConfigRefresh).await {
                    Ok(config) => {
                        apply_config(&shared, &state, &config, answerer);
                        wait = iv.config_refresh;
                    }
                    Err(_) => wait = iv.config_accelerated_refresh,
                }
            }
        };
        tokio::join!(distributed, logger, refresh);
    }
}

/// State of the run loop shared by its concurrent parts (never locked across an await).
struct RunState {
    logs: LogBuffer,
    schedule: Schedule,
}

impl RunState {
    fn new(max_buffered: usize) -> Self {
        RunState {
            logs: LogBuffer::new(max_buffered),
            schedule: Schedule::default(),
        }
    }
}

fn apply_config(
    shared: &Shared,
    state: &Mutex<RunState>,
    config: &Value,
    answerer: &dyn QueryAnswerer,
) {
    let rt = shared.runtime();
    let ctx = AnswerContext {
        config_hash: &rt.config_hash,
        ..AnswerContext::new(&rt.intervals)
    };
    let mut st = lock(state);
    let schedule = Schedule::from_config(
        config,
        &rt.pack_delimiter,
        &shared.profile,
        answerer,
        &ctx,
        Some(&st.schedule),
        unix_now(),
    );
    st.schedule = schedule;
    st.logs.max_buffered = rt.intervals.buffered_log_max;
}

fn push_status(shared: &Shared, st: &mut RunState, entry: &StatusEntry<'_>) {
    let line = status_line(
        &shared.config.host_identifier,
        &shared.config.osquery_version,
        entry,
        &st.schedule.decorations,
        unix_now(),
    );
    st.logs.push(LogType::Status, line);
}

/// The status lines osqueryd has buffered by the time its logger starts (wording is ours).
fn startup_status_lines(shared: &Shared, state: &Mutex<RunState>) {
    let mut st = lock(state);
    let n = st.schedule.queries.len();
    let messages = [
        StatusEntry {
            severity: 0,
            filename: "init.cpp",
            line: 421,
            message: "osquery worker initialized",
        },
        StatusEntry {
            severity: 0,
            filename: "tls_config.cpp",
            line: 88,
            message: "TLS config plugin active",
        },
        StatusEntry {
            severity: 0,
            filename: "distributed.cpp",
            line: 62,
            message: "Distributed query runner started",
        },
    ];
    for m in &messages {
        push_status(shared, &mut st, m);
    }
    let text = format!("Scheduling {n} queries");
    push_status(
        shared,
        &mut st,
        &StatusEntry {
            severity: 0,
            filename: "scheduler.cpp",
            line: 110,
            message: &text,
        },
    );
}

fn run_scheduled(shared: &Shared, state: &Mutex<RunState>, answerer: &dyn QueryAnswerer) {
    let rt = shared.runtime();
    let ctx = AnswerContext {
        config_hash: &rt.config_hash,
        ..AnswerContext::new(&rt.intervals)
    };
    let mut st = lock(state);
    let (lines, failures) =
        st.schedule
            .run_due(unix_now(), answerer, &ctx, &shared.config.host_identifier);
    for l in lines {
        st.logs.push(LogType::Result, l);
    }
    for (name, err) in failures {
        let text = format!("Error executing scheduled query {name}: {err}");
        push_status(
            shared,
            &mut st,
            &StatusEntry {
                severity: 2,
                filename: "scheduler.cpp",
                line: 140,
                message: &text,
            },
        );
    }
}

/// One logger flush: at most `logger_max_lines` lines, results first (one request), then
/// statuses (a second request); delivered lines are dropped, failed types back off.
async fn flush_logs(shared: &Shared, state: &Mutex<RunState>) {
    let iv = shared.runtime().intervals;
    let (results, statuses) = lock(state).logs.batch(iv.logger_max_lines, Instant::now());
    for (log_type, lines) in [(LogType::Result, results), (LogType::Status, statuses)] {
        if lines.is_empty() {
            continue;
        }
        let n = lines.len();
        let outcome = shared.send_log(log_type, lines, iv.logger_compress).await;
        let mut st = lock(state);
        match outcome {
            Ok(()) => st.logs.ack(log_type, n),
            Err(_) => st.logs.fail(
                log_type,
                iv.logger_period,
                iv.logger_backoff_max,
                Instant::now(),
            ),
        }
    }
}
