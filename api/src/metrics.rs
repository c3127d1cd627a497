//! `GET /metrics`: Prometheus text format (0.0.4), with optional HTTP basic auth.
//!
//! Three kinds of family, all registered once in one [`Registry`] at start:
//! - **HTTP**, Fleet-compatible (`http_requests_total{handler,method,code}`,
//!   `http_request_duration_seconds{handler}`, `http_request_size_bytes{handler}`,
//!   `http_response_size_bytes{handler}`), recorded per request by [`track`], the middleware
//!   every route goes through. `handler` is the matched route template (`/api/osquery/config`,
//!   `/api/latest/fleet/hosts/{id}`), never the raw path, so its values are bounded by the routes;
//!   a request that matches no route counts as [`UNMATCHED`].
//! - **Flotilla's own** (`flotilla_*`), read at scrape time from the engine's atomics by
//!   [`EngineCollector`]: hosts enrolled and online by platform, enrollments, campaigns, results,
//!   the batched writer, store errors, the relay between nodes, actors. Nothing extra is
//!   recorded on the check-in path for these: the engine counts what it does anyway.
//! - **Process** (`process_*`, the standard names): CPU, memory, file descriptors, start time,
//!   read from `/proc/self` at scrape time on Linux.
//!
//! No label ever carries a host, campaign, user or node key.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use flotilla_engine::counters::{HistogramSnapshot, RelayCounters, RelayKind};
use flotilla_engine::{Campaigns, Hosts};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::osquery::log::{LINES_SET_ASIDE, SetAsideReason};

/// The `handler` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Request durations, seconds: Prometheus' defaults plus finer steps below 5 ms (an idle
/// check-in is well under a millisecond) and 30 s (the synchronous live-query APIs wait 25 s).
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Body sizes, bytes: Fleet's buckets (1 KiB, 100 KiB, 1 MiB, 100 MiB, 1 GiB).
const SIZE_BUCKETS: [f64; 5] = [
    1024.0,
    102_400.0,
    1_048_576.0,
    104_857_600.0,
    1_073_741_824.0,
];

/// Credentials a scraper must present, when set (`--prometheus-username/--prometheus-password`).
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Whether `headers` carry these credentials (`Authorization: Basic`), compared in
    /// constant time.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .ok()
            })
        else {
            return false;
        };
        let expected = format!("{}:{}", self.username, self.password);
        bool::from(given.ct_eq(expected.as_bytes()))
    }
}

/// The database's connection pool as `/metrics` shows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolUsage {
    /// Connections open now, idle ones included.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Reads the pool's usage at scrape time (the store backend's pool, given by the server).
pub type PoolProbe = Box<dyn Fn() -> PoolUsage + Send + Sync>;

/// What `/metrics` reads at scrape time.
pub struct MetricsSources {
    pub hosts: Hosts,
    pub campaigns: Campaigns,
    /// Shared with the relay between nodes, which records into it; all zero on a single node.
    pub relay: Arc<RelayCounters>,
    /// Whether a relay is configured (then `flotilla_relay_connected` is exported).
    pub relay_configured: bool,
    /// `sqlite` or `mysql`, for `flotilla_build_info`.
    pub store_backend: &'static str,
    pub pool: Option<PoolProbe>,
    /// The osquery log destinations (spooled ones export their backlog and deliveries).
    pub logs: Option<crate::logs::sink::LogSink>,
    /// The software jobs and the vulnerability feed.
    pub software: Option<Arc<crate::service::software::SoftwareJobs>>,
    /// The agents' TUF repository, when one is served.
    pub updates: Option<Arc<crate::updates::UpdateServer>>,
}

/// Every metric the server exports, and the credentials that guard them.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    auth: Option<BasicAuth>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: Handler,
    method: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: Handler,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

/// A route template, or [`UNMATCHED`].
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Handler(Cow<'static, str>);

impl EncodeLabelValue for Handler {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&AsRef::<str>::as_ref(&self.0), encoder)
    }
}

fn histogram_family(buckets: &'static [f64]) -> Family<HandlerLabels, Histogram, HistogramMaker> {
    Family::new_with_constructor(HistogramMaker(buckets))
}

#[derive(Clone)]
struct HistogramMaker(&'static [f64]);

impl prometheus_client::metrics::family::MetricConstructor<Histogram> for HistogramMaker {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

#[derive(Clone)]
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<HandlerLabels, Histogram, HistogramMaker>,
    request_size: Family<HandlerLabels, Histogram, HistogramMaker>,
    response_size: Family<HandlerLabels, Histogram, HistogramMaker>,
    /// osquery requests by endpoint, both path prefixes together.
    osquery_requests: Family<EndpointLabels, Counter>,
    /// osquery requests answered `node_invalid` (unknown node key, refused enrollment).
    osquery_node_invalid: Family<EndpointLabels, Counter>,
}

/// One finished request, as [`Metrics::record`] takes it.
pub struct RequestRecord<'a> {
    /// The matched route template; `None` if no route matched.
    pub route: Option<&'a str>,
    pub method: &'a Method,
    pub status: StatusCode,
    pub seconds: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl Metrics {
    pub fn new(sources: MetricsSources, auth: Option<BasicAuth>) -> Metrics {
        let mut registry = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            duration: histogram_family(&DURATION_BUCKETS),
            request_size: histogram_family(&SIZE_BUCKETS),
            response_size: histogram_family(&SIZE_BUCKETS),
            osquery_requests: Family::default(),
            osquery_node_invalid: Family::default(),
        };
        // Counter names without `_total`: the encoder adds it.
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status code",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to its response headers, by route template",
            http.duration.clone(),
        );
        registry.register(
            "http_request_size_bytes",
            "Request body sizes (Content-Length), by route template",
            http.request_size.clone(),
        );
        registry.register(
            "http_response_size_bytes",
            "Response body sizes where known in advance, by route template",
            http.response_size.clone(),
        );
        registry.register(
            "flotilla_osquery_requests",
            "osquery agent requests (check-ins) by endpoint",
            http.osquery_requests.clone(),
        );
        registry.register(
            "flotilla_osquery_node_invalid",
            "osquery requests answered node_invalid (unknown node key or refused enrollment), by endpoint",
            http.osquery_node_invalid.clone(),
        );
        registry.register_collector(Box::new(EngineCollector {
            sources,
            started: Instant::now(),
        }));
        registry.register_collector(Box::new(ProcessCollector));
        Metrics {
            registry,
            http,
            auth,
        }
    }

    /// Counts one request. Called by [`track`] for every response.
    pub fn record(&self, request: &RequestRecord<'_>) {
        let handler = Handler(Cow::Borrowed(match request.route {
            Some(route) => intern(route),
            None => UNMATCHED,
        }));
        let code = request.status.as_u16();
        if let Some(endpoint) = request.route.and_then(osquery_endpoint) {
            let labels = EndpointLabels { endpoint };
            self.http.osquery_requests.get_or_create(&labels).inc();
            if code == 401 {
                self.http.osquery_node_invalid.get_or_create(&labels).inc();
            }
        }
        let labels = HandlerLabels { handler };
        self.http
            .duration
            .get_or_create(&labels)
            .observe(request.seconds);
        self.http
            .request_size
            .get_or_create(&labels)
            .observe(request.request_bytes as f64);
        self.http
            .response_size
            .get_or_create(&labels)
            .observe(request.response_bytes as f64);
        self.http
            .requests
            .get_or_create(&RequestLabels {
                handler: labels.handler,
                method: method_label(request.method),
                code,
            })
            .inc();
    }

    /// Every family in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; a collector's error would be a bug worth seeing.
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::error!(%error, "encoding metrics");
        }
        text
    }
}

/// The one copy of a route template, kept for the life of the process, so counting a request
/// allocates nothing. Route templates are the router's, a few dozen at most.
fn intern(route: &str) -> &'static str {
    static ROUTES: std::sync::LazyLock<
        parking_lot::RwLock<std::collections::HashSet<&'static str>>,
    > = std::sync::LazyLock::new(Default::default);
    if let Some(&known) = ROUTES.read().get(route) {
        return known;
    }
    let mut routes = ROUTES.write();
    if let Some(&known) = routes.get(route) {
        return known;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.insert(leaked);
    leaked
}

/// The endpoint of an osquery route template (`/api/v1/osquery/distributed/read` →
/// `distributed/read`), as a static string; `None` for other routes.
fn osquery_endpoint(route: &str) -> Option<&'static str> {
    let endpoint = route
        .strip_prefix("/api/osquery/")
        .or_else(|| route.strip_prefix("/api/v1/osquery/"))?;
    Some(match endpoint {
        "enroll" => "enroll",
        "config" => "config",
        "distributed/read" => "distributed/read",
        "distributed/write" => "distributed/write",
        "log" => "log",
        "carve/begin" => "carve/begin",
        "carve/block" => "carve/block",
        _ => "other",
    })
}

/// Lower-case, as Prometheus' Go client writes it; anything unusual is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        _ => "other",
    }
}

/// The middleware on every route: times the request, counts it by route template, and logs
/// one line per request at debug (a server error at warn).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let request_bytes = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or_else(|| request.body().size_hint().exact())
        .unwrap_or(0);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    let route = route.as_ref().map(MatchedPath::as_str);
    metrics.record(&RequestRecord {
        route,
        method: &method,
        status,
        seconds: elapsed.as_secs_f64(),
        request_bytes,
        response_bytes: response.body().size_hint().exact().unwrap_or(0),
    });
    let route = route.unwrap_or(UNMATCHED);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(%method, route, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), latency_ms, "request");
    }
    response
}

/// `/metrics`, rendering `metrics`.
pub fn router<S>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    if let Some(auth) = &metrics.auth
        && !auth.admits(&headers)
    {
        let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"flotilla metrics\""),
        );
        return response;
    }
    // Counting hosts is one pass over the registry: off the async workers for big fleets.
    let text = match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "rendering metrics");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    response
}

/// Reads the engine's counters at scrape time.
struct EngineCollector {
    sources: MetricsSources,
    started: Instant,
}

impl std::fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineCollector").finish_non_exhaustive()
    }
}

/// Writes one family with no labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

/// Writes one family whose members differ in one label.
fn labelled<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    label: &'static str,
    members: impl IntoIterator<Item = (&'static str, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (value, metric) in members {
        let labels = [(label, value)];
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: impl TryInto<i64>) -> ConstGauge<i64> {
    ConstGauge::new(value.try_into().unwrap_or(i64::MAX))
}

/// A histogram from the engine's lock-free [`HistogramSnapshot`].
struct SnapshotHistogram(HistogramSnapshot);

impl EncodeMetric for SnapshotHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_seconds,
            self.0.count,
            &self.0.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl EngineCollector {
    /// `flotilla_build_info` and uptime.
    fn encode_build(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.sources;
        let info = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("FLOTILLA_GIT_REVISION")),
            ("store", sources.store_backend),
        ];
        let mut build = e.encode_descriptor(
            "flotilla_build_info",
            "Always 1; the labels say which build and which store backend",
            None,
            MetricType::Gauge,
        )?;
        gauge(1).encode(build.encode_family(&info)?)?;
        single(
            e,
            "flotilla_uptime_seconds",
            "Seconds since the server started serving metrics",
            ConstGauge::new(self.started.elapsed().as_secs_f64()),
        )?;
        Ok(())
    }

    /// Hosts: enrolled and online by platform (`census`), enrollments, reads and writes,
    /// running actors.
    fn encode_hosts(
        &self,
        e: &mut DescriptorEncoder,
        census: &flotilla_engine::Census,
    ) -> Result<(), std::fmt::Error> {
        let sources = &self.sources;
        let hosts = self.sources.hosts.counters();
        for (name, help, online) in [
            (
                "flotilla_hosts_enrolled",
                "Enrolled hosts by platform (unknown: not reported yet)",
                false,
            ),
            (
                "flotilla_hosts_online",
                "Hosts online now by platform: seen within their check-in interval plus slack",
                true,
            ),
        ] {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for platform in &census.platforms {
                let labels = [("platform", &*platform.platform)];
                let value = if online {
                    platform.online
                } else {
                    platform.enrolled
                };
                gauge(value).encode(family.encode_family(&labels)?)?;
            }
        }
        labelled(
            e,
            "flotilla_host_enrollments",
            "Enrollments: new hosts, and known hosts enrolling again under a new node key",
            MetricType::Counter,
            "kind",
            [
                ("new", counter(hosts.enrollments.get())),
                ("reenroll", counter(hosts.reenrollments.get())),
            ],
        )?;
        labelled(
            e,
            "flotilla_host_distributed_reads",
            "Distributed reads, by whether the compact record answered or the host's actor did",
            MetricType::Counter,
            "answered_by",
            [
                ("record", counter(hosts.reads_without_actor.get())),
                (
                    "actor",
                    counter(
                        hosts
                            .reads
                            .get()
                            .saturating_sub(hosts.reads_without_actor.get()),
                    ),
                ),
            ],
        )?;
        single(
            e,
            "flotilla_host_distributed_writes",
            "Distributed writes (results) from hosts",
            counter(hosts.writes.get()),
        )?;
        labelled(
            e,
            "flotilla_actors_running",
            "Actors running now: host actors (hosts with work pending) and campaign actors",
            MetricType::Gauge,
            "kind",
            [
                ("host", gauge(census.active_actors)),
                ("campaign", gauge(sources.campaigns.active())),
            ],
        )?;
        labelled(
            e,
            "flotilla_orbit_enrollments",
            "orbit enrollments: new hosts, and known hosts whose orbit enrolled again",
            MetricType::Counter,
            "kind",
            [
                ("new", counter(hosts.orbit_enrollments.get())),
                ("reenroll", counter(hosts.orbit_reenrollments.get())),
            ],
        )?;
        labelled(
            e,
            "flotilla_agent_auth_failures",
            "Requests refused for an unknown key: osquery node keys, orbit node keys, and \
             unknown or expired Fleet Desktop device tokens",
            MetricType::Counter,
            "agent",
            [
                ("osquery", counter(hosts.unknown_node_keys.get())),
                ("orbit", counter(hosts.unknown_orbit_keys.get())),
                ("desktop", counter(hosts.device_auth_failures.get())),
            ],
        )?;
        single(
            e,
            "flotilla_host_actor_activations",
            "Host actors started because a host had work",
            counter(hosts.activations.get()),
        )?;
        single(
            e,
            "flotilla_software_sets_changed",
            "Host software inventories that differed from the host's previous one and were \
             written (an unchanged inventory costs no write)",
            counter(hosts.software_sets_changed.get()),
        )?;
        Ok(())
    }

    /// Live queries: running, started, finished by reason, and what happened to answers.
    fn encode_campaigns(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.sources;
        let campaigns = self.sources.campaigns.counters();
        single(
            e,
            "flotilla_campaigns_active",
            "Live queries running now",
            gauge(sources.campaigns.active()),
        )?;
        single(
            e,
            "flotilla_campaigns_started",
            "Live queries started",
            counter(campaigns.started.get()),
        )?;
        labelled(
            e,
            "flotilla_campaigns_finished",
            "Live queries finished, by why",
            MetricType::Counter,
            "reason",
            [
                (
                    "all_answered",
                    counter(campaigns.finished_all_answered.get()),
                ),
                ("stopped", counter(campaigns.finished_stopped.get())),
                (
                    "no_subscribers",
                    counter(campaigns.finished_no_subscribers.get()),
                ),
                ("deadline", counter(campaigns.finished_deadline.get())),
            ],
        )?;
        single(
            e,
            "flotilla_campaign_targets_enqueued",
            "Host mailboxes a live query was placed in",
            counter(campaigns.hosts_enqueued.get()),
        )?;
        single(
            e,
            "flotilla_campaign_results_routed",
            "Host answers counted by their running campaign (first answer per host)",
            counter(campaigns.results_routed.get()),
        )?;
        single(
            e,
            "flotilla_campaign_results_duplicate",
            "Repeated answers from a host that had already answered (osquery retries), counted once",
            counter(campaigns.results_duplicate.get()),
        )?;
        single(
            e,
            "flotilla_campaign_results_unrouted",
            "Answers for campaigns not running on this node (already finished, or unknown): not a loss",
            counter(campaigns.results_unrouted.get()),
        )?;
        single(
            e,
            "flotilla_campaign_results_dropped",
            "Answers for a running campaign that did not reach it: must stay 0",
            counter(campaigns.results_dropped.get()),
        )?;
        single(
            e,
            "flotilla_campaign_subscribers_overflowed",
            "Result subscribers disconnected (and told) because they fell behind",
            counter(campaigns.subscribers_overflowed.get()),
        )?;
        single(
            e,
            "flotilla_campaign_result_bytes",
            "Bytes of live-query result rows in memory: kept by campaigns for late watchers and \
             queued to watchers (shared, counted once); each campaign keeps at most \
             --live-query-max-bytes",
            gauge(campaigns.result_bytes_held.get().max(0)),
        )?;
        single(
            e,
            "flotilla_websocket_send_timeouts",
            "Results websocket sessions ended because the client took no message for 30 s \
             (it stopped reading); what was queued for it is given back",
            counter(crate::live::socket::SEND_TIMEOUTS.load(Ordering::Relaxed)),
        )?;
        Ok(())
    }

    /// The database: errors by operation, batched writes, the connection pool.
    fn encode_store(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.sources;
        let hosts = self.sources.hosts.counters();
        let campaigns = self.sources.campaigns.counters();
        labelled(
            e,
            "flotilla_store_errors",
            "Database operations that failed, by operation",
            MetricType::Counter,
            "operation",
            [
                ("flush", counter(hosts.flush_failures.get())),
                ("enroll", counter(hosts.enroll_store_failures.get())),
                ("campaign", counter(campaigns.store_errors.get())),
                ("admin", counter(ADMIN_STORE_ERRORS.get())),
                ("health", counter(HEALTH_STORE_ERRORS.get())),
            ],
        )?;
        single(
            e,
            "flotilla_store_flushes",
            "Batched host writes that reached the database",
            counter(hosts.flushes.get()),
        )?;
        single(
            e,
            "flotilla_store_flushed_hosts",
            "Host rows written by batched writes",
            counter(hosts.rows_flushed.get()),
        )?;
        single(
            e,
            "flotilla_store_flush_duration_seconds",
            "Time each batched host write took, failed ones included",
            SnapshotHistogram(hosts.flush_duration.snapshot()),
        )?;
        single(
            e,
            "flotilla_store_write_queue_messages",
            "Vitals and label answers sent to the batched writer and not yet taken by it",
            gauge(hosts.writer_queue.get()),
        )?;
        single(
            e,
            "flotilla_store_write_pending_hosts",
            "Hosts whose vitals or labels wait for the next batched write",
            gauge(hosts.writer_pending_hosts.get()),
        )?;
        if let Some(probe) = &sources.pool {
            let pool = probe();
            labelled(
                e,
                "flotilla_store_pool_connections",
                "Database connections open now, by state",
                MetricType::Gauge,
                "state",
                [
                    ("idle", gauge(pool.idle)),
                    ("in_use", gauge(pool.open.saturating_sub(pool.idle))),
                ],
            )?;
            single(
                e,
                "flotilla_store_pool_max_connections",
                "The database pool's connection limit",
                gauge(pool.max),
            )?;
        }
        Ok(())
    }

    /// osquery logs going to a remote destination through the spool.
    fn encode_log_spools(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(logs) = &self.sources.logs else {
            return Ok(());
        };
        let mut syncs = Vec::new();
        logs.sync_stats(|log, count, seconds| syncs.push((log, count, seconds)));
        if !syncs.is_empty() {
            let mut family = e.encode_descriptor(
                "flotilla_log_fsyncs",
                "Syncs of an osquery log (file or spool) to disk; each covers every log request \
                 written before it began",
                None,
                MetricType::Counter,
            )?;
            for (log, count, _) in &syncs {
                counter(*count).encode(family.encode_family(&[("log", *log)])?)?;
            }
            let mut family = e.encode_descriptor(
                "flotilla_log_fsync_seconds",
                "Time spent syncing an osquery log to disk",
                None,
                MetricType::Counter,
            )?;
            for (log, _, seconds) in &syncs {
                prometheus_client::encoding::EncodeMetric::encode(
                    &prometheus_client::metrics::counter::ConstCounter::new(*seconds),
                    family.encode_family(&[("log", *log)])?,
                )?;
            }
        }
        /// One spooled destination's figures.
        struct Spool {
            log: &'static str,
            destination: &'static str,
            values: [u64; 6],
        }
        let mut spools = Vec::new();
        logs.spool_stats(|stats| {
            let counters = stats.counters;
            spools.push(Spool {
                log: stats.log,
                destination: stats.destination,
                values: [
                    stats.spooled_bytes,
                    stats.oldest_age.as_secs(),
                    counters.lines_spooled.load(Ordering::Relaxed),
                    counters.lines_sent.load(Ordering::Relaxed),
                    counters.failed_attempts.load(Ordering::Relaxed),
                    counters.lines_rejected.load(Ordering::Relaxed),
                ],
            })
        });
        if spools.is_empty() {
            return Ok(());
        }
        // (name, help, gauge?) in the order of `Spool::values`.
        let families: [(&str, &str, bool); 6] = [
            (
                "flotilla_log_spool_bytes",
                "osquery log bytes spooled on disk and not yet delivered, by log and destination",
                true,
            ),
            (
                "flotilla_log_spool_oldest_seconds",
                "Age of the oldest osquery log line still waiting in the spool (0 when none waits)",
                true,
            ),
            (
                "flotilla_log_lines_spooled",
                "osquery log lines accepted into the spool (osquery was told they are kept)",
                false,
            ),
            (
                "flotilla_log_lines_delivered",
                "osquery log lines the destination acknowledged",
                false,
            ),
            (
                "flotilla_log_delivery_failures",
                "Failed delivery attempts (each batch is retried until accepted)",
                false,
            ),
            (
                "flotilla_log_lines_rejected",
                "Lines the destination can never take, set aside in the spool's rejected.jsonl",
                false,
            ),
        ];
        for (i, (name, help, is_gauge)) in families.into_iter().enumerate() {
            let metric_type = if is_gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let mut family = e.encode_descriptor(name, help, None, metric_type)?;
            for spool in &spools {
                let labels = [("log", spool.log), ("destination", spool.destination)];
                let member = family.encode_family(&labels)?;
                if is_gauge {
                    gauge(spool.values[i]).encode(member)?;
                } else {
                    counter(spool.values[i]).encode(member)?;
                }
            }
        }
        Ok(())
    }

    /// The TUF repository: each role's seconds to expiry and version, and the re-signer.
    fn encode_updates(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(updates) = &self.sources.updates else {
            return Ok(());
        };
        let stats = &updates.stats;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        labelled(
            e,
            "flotilla_tuf_resign_runs",
            "Re-signings of the TUF timestamp by this node, and failed ones; metadata loads \
             that failed",
            MetricType::Counter,
            "result",
            [
                ("signed", counter(load(&stats.resigned))),
                ("failed", counter(load(&stats.resign_failures))),
                ("load_failed", counter(load(&stats.load_failures))),
            ],
        )?;
        let Some(expiry) = updates.expiry() else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        labelled(
            e,
            "flotilla_tuf_metadata_expiry_seconds",
            "Seconds until each role's published TUF metadata expires (negative once expired): \
             agents stop updating when timestamp.json expires",
            MetricType::Gauge,
            "role",
            expiry.map(|m| {
                (
                    m.role.as_str(),
                    ConstGauge::new((m.expires_unix - now) as f64),
                )
            }),
        )?;
        labelled(
            e,
            "flotilla_tuf_metadata_version",
            "The version of each role's published TUF metadata",
            MetricType::Gauge,
            "role",
            expiry.map(|m| (m.role.as_str(), ConstGauge::new(m.version as f64))),
        )
    }

    /// The software jobs and the vulnerability feed: what loaded, what was skipped and why.
    fn encode_software(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(jobs) = &self.sources.software else {
            return Ok(());
        };
        let stats = &jobs.stats;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        labelled(
            e,
            "flotilla_software_job_runs",
            "Runs of the software jobs on this node: vulnerability matches (and failed ones), \
             host-count refreshes, feed loads",
            MetricType::Counter,
            "job",
            [
                ("match", counter(load(&stats.matches))),
                ("match_failed", counter(load(&stats.match_failures))),
                ("counts", counter(load(&stats.counts))),
                ("feed_load", counter(load(&stats.feed_loads))),
            ],
        )?;
        labelled(
            e,
            "flotilla_software_job_last_duration_seconds",
            "How long the last vulnerability match and the last host-count refresh took",
            MetricType::Gauge,
            "job",
            [
                (
                    "match",
                    ConstGauge::new(load(&stats.last_match_ms) as f64 / 1000.0),
                ),
                (
                    "counts",
                    ConstGauge::new(load(&stats.last_counts_ms) as f64 / 1000.0),
                ),
            ],
        )?;
        let Some(report) = jobs.feed_report() else {
            return Ok(());
        };
        labelled(
            e,
            "flotilla_vulnerability_feed_records",
            "Records in the vulnerability feed as last loaded: OSV records loaded, withdrawn \
             ones ignored, CISA KEV and EPSS entries",
            MetricType::Gauge,
            "kind",
            [
                ("osv", gauge(report.records)),
                ("withdrawn", gauge(report.withdrawn)),
                ("kev", gauge(report.kev)),
                ("epss", gauge(report.epss)),
            ],
        )?;
        let mut bad = e.encode_descriptor(
            "flotilla_vulnerability_feed_file_errors",
            "Feed files (or zip entries) that failed to load and were skipped, by file; the \
             log says why",
            None,
            MetricType::Gauge,
        )?;
        for file in report.errors() {
            let name = match &file.entry {
                Some(entry) => format!("{}:{entry}", file.name),
                None => file.name.clone(),
            };
            gauge(1).encode(bad.encode_family(&[("file", name.as_str())])?)?;
        }
        let mut unknown = e.encode_descriptor(
            "flotilla_vulnerability_feed_unknown_ecosystem_records",
            "Affected packages in the feed of ecosystems Flotilla does not match, by ecosystem",
            None,
            MetricType::Gauge,
        )?;
        for (ecosystem, count) in &report.unknown_ecosystems {
            gauge(*count).encode(unknown.encode_family(&[("ecosystem", ecosystem.as_str())])?)?;
        }
        Ok(())
    }

    /// The relay between nodes: messages, errors, lag, connection.
    fn encode_relay(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = &self.sources;
        let relay = &sources.relay;
        single(
            e,
            "flotilla_relay_messages_published",
            "Messages this node published to the relay",
            counter(relay.published.get()),
        )?;
        labelled(
            e,
            "flotilla_relay_messages_received",
            "Messages this node received from the relay, by kind",
            MetricType::Counter,
            "kind",
            RelayKind::ALL
                .into_iter()
                .map(|kind| (kind.as_str(), counter(relay.received_count(kind)))),
        )?;
        single(
            e,
            "flotilla_relay_errors",
            "Relay (Redis) failures: publishes, subscriptions, connections, undecodable messages",
            counter(relay.errors.get()),
        )?;
        single(
            e,
            "flotilla_relay_lag_seconds",
            "From publication on one node to receipt on this one",
            SnapshotHistogram(relay.lag.snapshot()),
        )?;
        if sources.relay_configured {
            single(
                e,
                "flotilla_relay_connected",
                "1 while the relay is connected, 0 otherwise",
                gauge(i64::from(relay.is_connected())),
            )?;
        }
        Ok(())
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        // One pass over the registry, on the blocking pool (see `scrape`).
        let census = self.sources.hosts.census(flotilla_engine::unix_now());
        self.encode_build(e)?;
        self.encode_hosts(e, &census)?;
        self.encode_campaigns(e)?;
        self.encode_store(e)?;
        self.encode_log_spools(e)?;
        counter(crate::osquery::body::INVALID_UTF8_BODIES.load(Ordering::Relaxed))
            .encode(e.encode_descriptor(
            "flotilla_osquery_invalid_utf8_bodies",
            "osquery request bodies with bytes that are not UTF-8, kept with U+FFFD in their place",
            None,
            MetricType::Counter,
        )?)?;
        let mut set_aside = e.encode_descriptor(
            "flotilla_osquery_log_lines_set_aside",
            "osquery log lines taken but not passed on (kept in set-aside.jsonl), by reason: \
             not_an_object, too_deep (nested past 64 levels)",
            None,
            MetricType::Counter,
        )?;
        for reason in [SetAsideReason::NotAnObject, SetAsideReason::TooDeep] {
            counter(LINES_SET_ASIDE[reason as usize].load(Ordering::Relaxed))
                .encode(set_aside.encode_family(&[("reason", reason.label())])?)?;
        }
        counter(crate::tls::ILLEGAL_SNI.load(Ordering::Relaxed)).encode(e.encode_descriptor(
            "flotilla_tls_illegal_sni",
            "TLS handshakes whose client named the server by an IP address or an invalid name \
             (ignored; the log shows them at debug only)",
            None,
            MetricType::Counter,
        )?)?;
        self.encode_software(e)?;
        self.encode_updates(e)?;
        self.encode_relay(e)
    }
}

/// Store errors met by admin API handlers (`FleetError` from `StoreError`), which have no
/// state at hand; counted here so `flotilla_store_errors_total{operation="admin"}` shows them.
pub(crate) static ADMIN_STORE_ERRORS: flotilla_engine::counters::Counter =
    flotilla_engine::counters::Counter::new();

/// Failed store pings from `/healthz` and `/readyz`.
pub(crate) static HEALTH_STORE_ERRORS: flotilla_engine::counters::Counter =
    flotilla_engine::counters::Counter::new();

/// `process_*` from `/proc/self`, the names Prometheus' other clients use.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    #[cfg(target_os = "linux")]
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use procfs::WithCurrentSystemInfo as _;
        let Ok(process) = procfs::process::Process::myself() else {
            return Ok(());
        };
        let e = &mut encoder;
        if let Ok(stat) = process.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            single(
                e,
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                ConstCounter::new((stat.utime + stat.stime) as f64 / ticks),
            )?;
            single(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                gauge(stat.rss_bytes().get()),
            )?;
            single(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                gauge(stat.vsize),
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                single(
                    e,
                    "process_start_time_seconds",
                    "Start time of the process since the Unix epoch, in seconds",
                    ConstGauge::new(boot as f64 + stat.starttime as f64 / ticks),
                )?;
            }
        }
        if let Ok(fds) = process.fd_count() {
            single(e, "process_open_fds", "Open file descriptors", gauge(fds))?;
        }
        if let Ok(limits) = process.limits()
            && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            single(
                e,
                "process_max_fds",
                "Limit on open file descriptors",
                gauge(max),
            )?;
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn encode(&self, _encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osquery_endpoints_are_a_fixed_set() {
        assert_eq!(osquery_endpoint("/api/osquery/config"), Some("config"));
        assert_eq!(
            osquery_endpoint("/api/v1/osquery/distributed/read"),
            Some("distributed/read")
        );
        assert_eq!(osquery_endpoint("/api/v1/fleet/hosts"), None);
        assert_eq!(
            osquery_endpoint("/api/osquery/something/new"),
            Some("other")
        );
    }

    #[test]
    fn basic_auth_admits_only_the_exact_credentials() {
        let auth = BasicAuth {
            username: "prom".into(),
            password: "s3cret".into(),
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(auth.admits(&with(&format!("Basic {}", encode("prom:s3cret")))));
        assert!(!auth.admits(&with(&format!("Basic {}", encode("prom:s3cre")))));
        assert!(!auth.admits(&with(&format!("Basic {}", encode("prom:s3cretx")))));
        assert!(!auth.admits(&with(&format!("Bearer {}", encode("prom:s3cret")))));
        assert!(!auth.admits(&with("Basic not-base64!")));
        assert!(!auth.admits(&HeaderMap::new()));
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
