//! `flotilla serve`: opens the data directory, the store and the engine, then serves the app
//! over TLS (or plain HTTP) until SIGINT or SIGTERM, and shuts down in order: stop accepting,
//! let requests in flight finish, flush batched host writes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum_server::Handle;
use axum_server::accept::{TcpConfigAcceptor, TcpSocketConfig};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use base64::Engine as _;
use flotilla_engine::relay::Topic;
use flotilla_engine::store::{CampaignStore, HostStore};
use flotilla_engine::{CampaignConfig, Campaigns, Engine, EngineConfig, EngineStores, Hosts};
use flotilla_engine::{LocalRelay, Relay, RelayEvent};
use flotilla_storage::admin::{AdminStore, NewUser, Roles};
use flotilla_storage::{MysqlOptions, RedisRelay, SqlStore};

use crate::agent_config::configs::AgentConfigs;
use crate::agent_config::reports::Reports;
use crate::cli::LogPlugin;
use crate::cli::ServeArgs;
use crate::client::http::Trust;
use crate::logs::kafka::KafkaSettings;
use crate::logs::nats::{NatsAuth, NatsSettings};
use crate::logs::s3::S3Settings;
use crate::logs::sink::LogKind;
use crate::logs::sink::{Destination, LogSink, Rotation};
use crate::logs::spool::SpoolSettings;
use crate::osquery::carves::Carves;
use crate::service::ratelimit::LoginLimiter;
use crate::service::{Effects, Services};
use crate::state::{AppState, BodyLimits, SharedState};
use crate::tls::{DevPki, default_sans, server_config};

/// How the listener speaks, and what to tell agents about it.
enum Transport {
    Tls {
        config: Arc<rustls::ServerConfig>,
        /// The CA agents should pin, when the certificate is the generated one.
        ca: Option<PathBuf>,
    },
    Plain,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let data_dir = absolute(&args.data_dir);
    keep_private(&data_dir)?;
    let open_files = raise_open_files_limit();
    tracing::debug!(open_files, "open-files limit");

    let Stores {
        hosts: store,
        campaigns: campaign_store,
        admin,
        backend,
        pool,
    } = open_stores(&args, &data_dir).await?;
    let (email, password) = (args.admin_email.as_deref(), args.admin_password.as_deref());
    let admin_status = ensure_admin(admin.as_ref(), email, password).await?;
    // Shared with the relay between nodes, which records into it; zero on a single node.
    let relay_counters = Arc::new(flotilla_engine::counters::RelayCounters::default());
    let node = node_name(&args);
    let relay = relay(&args, &node, relay_counters.clone())?;
    let still_running = close_abandoned_campaigns(relay.as_ref(), campaign_store.as_ref()).await?;
    let stores = EngineStores {
        hosts: store.clone(),
        campaigns: campaign_store,
    };
    let engine = Engine::start(
        stores,
        engine_config(&args),
        campaign_config(&args),
        relay.clone(),
    )
    .await
    .context("loading enrolled hosts")?;
    let (hosts, campaigns) = (engine.hosts().clone(), engine.campaigns().clone());
    let generated_secret = ensure_enroll_secret(&hosts, args.enroll_secret.as_deref()).await?;

    let logs = log_sink(&args, &data_dir, &node)?;
    let transport = transport(&args, &data_dir)?;
    let software = crate::service::software::SoftwareJobs::new(
        admin.clone(),
        relay.clone(),
        args.vulnerability_feed.clone(),
        args.software_job_interval,
        args.software_counts_interval,
    );
    let updates = update_server(&args)?;
    let metrics = metrics(
        &args,
        crate::metrics::MetricsSources {
            hosts: hosts.clone(),
            campaigns: campaigns.clone(),
            relay: relay_counters.clone(),
            relay_configured: !relay.is_local(),
            store_backend: backend,
            pool: Some(pool),
            logs: Some(logs.clone()),
            software: Some(software.clone()),
            updates: updates.clone(),
        },
    );
    let health = health(store.clone(), &relay, &relay_counters);
    let (agent_configs, reports) = load_agent_config(admin.as_ref(), &args).await?;
    let report_flusher = ReportFlusher::start(&reports, admin.clone(), args.flush_interval);
    let state = app_state(
        &args,
        &data_dir,
        Handles {
            hosts: hosts.clone(),
            campaigns: campaigns.clone(),
            store: store.clone(),
            admin: admin.clone(),
        },
        AppParts {
            agent_configs,
            reports: reports.clone(),
            logs,
            metrics,
            health,
            software: software.clone(),
            updates: updates.clone(),
            usage: usage_statistics(&args, admin.clone())?,
        },
    )?;
    state
        .services
        .effects
        .publish_label_queries(true)
        .await
        .map_err(|e| anyhow::anyhow!("loading dynamic labels: {e}"))?;
    state
        .services
        .effects
        .publish_policy_queries(true)
        .await
        .map_err(|e| anyhow::anyhow!("loading policies: {e}"))?;
    state
        .hosts
        .set_software_inventory(crate::service::effects::software_inventory_enabled(
            &state
                .services
                .settings
                .stored_settings()
                .await
                .map_err(|e| anyhow::anyhow!("loading the settings: {e}"))?,
        ));
    software.refresh_feed().await;
    let _software_jobs = software.spawn();
    let _usage = tokio::spawn(state.usage.clone().run(state.clone(), relay.clone()));
    let _carve_sweeper = state.carves.clone().spawn_sweeper();
    let shared_changes = follow_shared_changes(state.services.effects.clone(), relay.clone());
    mirror_running_campaigns(&campaigns, relay.as_ref(), still_running).await;
    let app = crate::app::app(state.clone()).layer(axum::Extension(
        crate::fleet::auth::TrustedProxies(Arc::new(args.trusted_proxies.clone())),
    ));

    let _resigner = updates
        .as_ref()
        .and_then(|server| server.spawn_resigner(relay.clone()));
    let tuf_listener = match (&updates, args.tuf_listen) {
        (Some(server), Some(address)) => {
            let router = crate::updates::serve::router(server.clone());
            let (handle, task) = serve(router, address, &transport, Timeouts::from(&args));
            let Some(bound) = handle.listening().await else {
                let error = task.await.ok().and_then(Result::err);
                anyhow::bail!(
                    "--tuf-listen {address}: {}",
                    error.map_or("the listener stopped".to_owned(), |e| e.to_string())
                );
            };
            tracing::info!(address = %bound, "serving the TUF repository under /tuf/");
            Some(handle)
        }
        _ => None,
    };
    let (handle, server, bound) = listening(app, &args, &transport).await?;
    let secret = generated_secret.as_deref();
    print_banner(
        &args,
        &data_dir,
        bound,
        &transport,
        &hosts,
        secret,
        &admin_status,
    );
    state.health.mark_started();
    tracing::info!(address = %bound, hosts = hosts.len(), "flotilla is serving");

    shutdown_signal().await;
    if let Some(tuf) = &tuf_listener {
        tuf.graceful_shutdown(Some(args.shutdown_timeout));
    }
    shut_down(&args, &campaigns, &handle, server).await?;
    // Stop following other nodes' changes before the engine (and its relay tasks) stops.
    if let Some(follower) = shared_changes {
        follower.abort();
        let _ = follower.await;
    }
    engine
        .shutdown()
        .await
        .context("flushing host writes at shutdown")?;
    report_flusher.stop().await?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// The TUF repository `--tuf-repo` names, checked at start (and the timestamp key, which
/// must be the one root trusts).
fn update_server(args: &ServeArgs) -> Result<Option<Arc<crate::updates::UpdateServer>>> {
    let Some(path) = &args.tuf_repo else {
        return Ok(None);
    };
    let key = match &args.tuf_timestamp_key {
        Some(file) => Some(
            crate::updates::cli::server_timestamp_key(file)
                .map_err(|e| anyhow::anyhow!("--tuf-timestamp-key: {e}"))?,
        ),
        None => None,
    };
    let server = crate::updates::UpdateServer::open(absolute(path), key)?;
    if let Some([root, targets, snapshot, timestamp]) = server.expiry() {
        tracing::info!(
            repository = %path.display(),
            root = root.version,
            targets = targets.version,
            snapshot = snapshot.version,
            timestamp = timestamp.version,
            resigns = args.tuf_timestamp_key.is_some(),
            "serving the agents' TUF repository under /tuf/"
        );
    }
    Ok(Some(server))
}

/// How the engine flushes and refreshes, from the command line.
fn engine_config(args: &ServeArgs) -> EngineConfig {
    EngineConfig {
        flush_interval: args.flush_interval,
        detail_update_interval: args.detail_update_interval,
        policy_update_interval: args.policy_update_interval,
        seen_write_granularity: args
            .seen_write_interval
            .max(std::time::Duration::from_secs(1)),
        ..EngineConfig::default()
    }
}

/// The task that writes query reports every flush interval, and once more when stopped.
struct ReportFlusher {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<usize, flotilla_engine::store::StoreError>>,
}

impl ReportFlusher {
    fn start(
        reports: &Arc<Reports>,
        store: Arc<dyn AdminStore>,
        every: std::time::Duration,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(reports.clone().run_flusher(store, every, stopped));
        ReportFlusher { stop, task }
    }

    /// Writes what is left and waits for it.
    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await?
            .context("writing query reports at shutdown")?;
        Ok(())
    }
}

/// Serves `app` and waits until it listens; the server task's error if it ended first.
async fn listening(
    app: axum::Router,
    args: &ServeArgs,
    transport: &Transport,
) -> Result<(
    Handle<SocketAddr>,
    tokio::task::JoinHandle<std::io::Result<()>>,
    SocketAddr,
)> {
    let (handle, server) = serve(app, args.listen, transport, Timeouts::from(args));
    let Some(bound) = handle.listening().await else {
        server.await??;
        anyhow::bail!(
            "the server stopped before it was listening on {}",
            args.listen
        );
    };
    Ok((handle, server, bound))
}

/// The engine's and the store's handles the handlers share.
struct Handles {
    hosts: Hosts,
    campaigns: Campaigns,
    store: Arc<dyn HostStore>,
    admin: Arc<dyn AdminStore>,
}

/// What the server built for the handlers besides the engine.
struct AppParts {
    agent_configs: Arc<AgentConfigs>,
    reports: Arc<Reports>,
    logs: LogSink,
    metrics: Arc<crate::metrics::Metrics>,
    health: crate::health::Health,
    software: Arc<crate::service::software::SoftwareJobs>,
    updates: Option<Arc<crate::updates::UpdateServer>>,
    usage: Arc<crate::usage::UsageStatistics>,
}

/// What every handler shares, with the admin API's services built over the store's areas.
fn app_state(
    args: &ServeArgs,
    data_dir: &Path,
    engine: Handles,
    parts: AppParts,
) -> Result<SharedState> {
    Ok(Arc::new(AppState {
        services: Services::new(
            engine.admin.clone(),
            engine.hosts.clone(),
            engine.campaigns.clone(),
            crate::service::ServiceParts {
                agent_configs: parts.agent_configs.clone(),
                reports: parts.reports.clone(),
                login_limiter: LoginLimiter::fleet_default(),
                channels: crate::updates::UpdateChannels::new(parts.updates.clone()),
                logs: parts.logs.clone(),
            },
        ),
        carves: Arc::new(
            Carves::new(
                data_dir.join("carves"),
                engine.admin.clone(),
                crate::osquery::carves::CarveSettings {
                    limits: flotilla_storage::carves::CarveLimits {
                        per_host: args.carve_max_sessions_per_host,
                        total: args.carve_max_sessions,
                    },
                    expiry: args.carve_expiry,
                },
            )
            .context("creating the carves directory")?,
        ),
        limits: BodyLimits {
            default: args.max_body_default,
            distributed_write: args.max_body_distributed_write,
            log: args.max_body_log,
            carve_block: args.max_body_carve_block,
        },
        live_query_sync_timeout: args.live_query_sync_timeout,
        websocket_send_timeout: args.websocket_send_timeout,
        hosts: engine.hosts,
        campaigns: engine.campaigns,
        store: engine.store,
        reads: crate::state::Reads::over(engine.admin),
        agent_configs: parts.agent_configs,
        logs: parts.logs,
        reports: parts.reports,
        metrics: parts.metrics,
        health: Arc::new(parts.health),
        device: Default::default(),
        software: parts.software,
        updates: parts.updates,
        usage: parts.usage,
    }))
}

/// The config hosts pull (agent options, scheduled queries) and the query reports, as stored.
async fn load_agent_config(
    admin: &dyn AdminStore,
    args: &ServeArgs,
) -> Result<(Arc<AgentConfigs>, Arc<Reports>)> {
    let agent_configs = AgentConfigs::load(admin, admin)
        .await
        .context("loading agent options and scheduled queries")?;
    let reports = Reports::load(admin, args.query_report_cap)
        .await
        .context("loading query reports")?;
    Ok((
        Arc::new(AgentConfigs::new(agent_configs)),
        Arc::new(reports),
    ))
}

/// Live queries other nodes are running: mirrored now rather than at the first reconcile, so
/// this node's hosts get them at their next check-in.
async fn mirror_running_campaigns(
    campaigns: &Campaigns,
    relay: &dyn Relay,
    still_running: Vec<flotilla_engine::CampaignId>,
) {
    if relay.is_local() {
        return;
    }
    for id in still_running {
        if let Err(error) = campaigns.join(id).await {
            tracing::warn!(campaign = %id, %error, "could not mirror a running live query");
        }
    }
}

/// Campaigns do not outlive the processes that ran them: closes what a previous run left
/// open, except what other nodes sharing the relay still run (this node will mirror those,
/// and gets their ids back).
async fn close_abandoned_campaigns(
    relay: &dyn Relay,
    campaign_store: &dyn CampaignStore,
) -> Result<Vec<flotilla_engine::CampaignId>> {
    let still_running = if relay.is_local() {
        Vec::new()
    } else {
        match relay.active_campaigns().await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(%error, "relay unreachable at start; leaving recorded live queries as they are");
                Vec::new()
            }
        }
    };
    let abandoned = if relay.is_local() || relay.ping().await.is_ok() {
        campaign_store
            .finish_abandoned_campaigns(flotilla_engine::unix_now(), &still_running)
            .await
            .context("closing campaigns left by a previous run")?
    } else {
        0
    };
    if abandoned > 0 {
        tracing::info!(
            campaigns = abandoned,
            "closed live queries left running by the previous process"
        );
    }
    Ok(still_running)
}

/// The opt-in usage statistics, as the flags say (nothing is sent without a URL).
fn usage_statistics(
    args: &ServeArgs,
    store: Arc<dyn AdminStore>,
) -> Result<Arc<crate::usage::UsageStatistics>> {
    use clap::ValueEnum as _;
    let name = |plugin: &crate::cli::LogPlugin| {
        plugin
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    };
    let settings = crate::usage::UsageSettings {
        url: args.usage_statistics_url.clone(),
        interval: args.usage_statistics_interval,
        result_log_destination: name(&args.osquery_result_log_plugin),
        status_log_destination: name(&args.osquery_status_log_plugin),
        vulnerability_feed: args.vulnerability_feed.is_some(),
    };
    if let Some(url) = &settings.url {
        tracing::info!(receiver = %crate::logs::redact_url(url.as_str()), "usage statistics go to this receiver while server_settings.enable_analytics is true");
    }
    Ok(Arc::new(crate::usage::UsageStatistics::new(
        settings, store,
    )?))
}

/// Where osquery's result and status logs go, as the flags say.
fn log_sink(args: &ServeArgs, data_dir: &Path, node: &str) -> Result<LogSink> {
    let dir = data_dir.join("logs");
    let rotation = Rotation {
        max_bytes: args.osquery_log_rotate_size as u64,
        keep: args.osquery_log_rotate_keep,
    };
    let sink = LogSink::with_destinations(
        &dir,
        rotation,
        &log_destination(args, LogKind::Result, node)?,
        &log_destination(args, LogKind::Status, node)?,
    )
    .context("opening the osquery log destinations")?;
    let sink = if args.activity_audit_log_plugin.is_none() {
        sink
    } else {
        sink.with_audit(
            &dir,
            rotation,
            &log_destination(args, LogKind::Audit, node)?,
        )
        .context("opening the activity audit log")?
    };
    sink.set_fsync(!args.no_log_fsync);
    Ok(sink)
}

/// `/healthz` and `/readyz`: the store, and the relay when there is one between nodes.
fn health(
    store: Arc<dyn HostStore>,
    relay: &Arc<dyn Relay>,
    relay_counters: &Arc<flotilla_engine::counters::RelayCounters>,
) -> crate::health::Health {
    let health = crate::health::Health::new(store);
    if relay.is_local() {
        return health;
    }
    health
        .with_check(
            "redis",
            Arc::new(RelayCheck {
                relay: relay.clone(),
                counters: relay_counters.clone(),
            }),
        )
        .with_relay(relay_counters.clone())
}

/// How long a connection may sit without sending a request (`--http-*-timeout`).
#[derive(Clone, Copy)]
struct Timeouts {
    first_request: std::time::Duration,
    header_read: std::time::Duration,
}

impl From<&ServeArgs> for Timeouts {
    fn from(args: &ServeArgs) -> Timeouts {
        Timeouts {
            first_request: args.http_first_request_timeout,
            header_read: args.http_header_read_timeout,
        }
    }
}

/// Starts serving `app` on the listener the flags name, over TLS or plain HTTP. The handle
/// says when it is listening and shuts it down. A TLS handshake has 10 s (axum-server's
/// default), a connection's first request `timeouts.first_request`, and every later request's
/// headers `timeouts.header_read`, which is also how long an idle keep-alive connection stays.
fn serve(
    app: axum::Router,
    address: SocketAddr,
    transport: &Transport,
    timeouts: Timeouts,
) -> (
    Handle<SocketAddr>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let handle = Handle::new();
    let server = {
        let handle = handle.clone();
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        // Requests and answers are small: send them at once rather than let Nagle's algorithm
        // wait for the peer's (delayed) acknowledgement.
        let tcp = TcpConfigAcceptor::new(TcpSocketConfig::new().nodelay(true));
        let bound = || {
            let mut server = axum_server::bind(address)
                .handle(handle.clone())
                .first_request_timeout(timeouts.first_request);
            server
                .http_builder()
                .http1()
                .header_read_timeout(timeouts.header_read);
            server
        };
        match transport {
            Transport::Tls { config, .. } => {
                let tls = RustlsConfig::from_config(config.clone());
                tokio::spawn(
                    bound()
                        .acceptor(RustlsAcceptor::new(tls).acceptor(tcp))
                        .serve(service),
                )
            }
            Transport::Plain => tokio::spawn(bound().acceptor(tcp).serve(service)),
        }
    };
    (handle, server)
}

/// Stops taking connections and ends the live queries still running; waits for the requests
/// in flight (at most `--shutdown-timeout`).
async fn shut_down(
    args: &ServeArgs,
    campaigns: &Campaigns,
    handle: &Handle<SocketAddr>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<()> {
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    // Live queries end with this process; their watchers are told and their sockets close.
    let stopped = campaigns.stop_all();
    if stopped > 0 {
        tracing::info!(
            campaigns = stopped,
            "stopped the live queries still running"
        );
    }
    handle.graceful_shutdown(Some(args.shutdown_timeout));
    server.await?.context("serving")?;
    Ok(())
}

/// The `redis` health check. A relay whose subscription is down fails it at once (the
/// subscriber notices a lost connection itself); a connected one must answer a PING within
/// half a second, so a probe with a one-second timeout sees a 500, never a timeout.
struct RelayCheck {
    relay: Arc<dyn Relay>,
    counters: Arc<flotilla_engine::counters::RelayCounters>,
}

const RELAY_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

#[async_trait::async_trait]
impl crate::health::HealthCheck for RelayCheck {
    async fn check(&self) -> Result<(), String> {
        if !self.counters.is_connected() {
            return Err("the relay is not connected to Redis (it reconnects by itself)".into());
        }
        match tokio::time::timeout(RELAY_CHECK_TIMEOUT, self.relay.ping()).await {
            Ok(answer) => answer.map_err(|error| error.to_string()),
            Err(_) => Err(format!(
                "Redis did not answer a PING within {} ms",
                RELAY_CHECK_TIMEOUT.as_millis()
            )),
        }
    }
}

/// The relay: Redis when `--redis-url` is given, otherwise in process.
fn relay(
    args: &ServeArgs,
    node: &str,
    counters: Arc<flotilla_engine::counters::RelayCounters>,
) -> Result<Arc<dyn Relay>> {
    let Some(url) = &args.redis_url else {
        return Ok(Arc::new(LocalRelay::default()));
    };
    tracing::info!(node = %node, "relaying live queries through Redis");
    Ok(
        RedisRelay::connect(url, node.to_owned(), args.redis_pool_size, counters)
            .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?,
    )
}

/// The data directory holds enroll secrets, keys, the database, logs and carves: only this
/// server's user may read it. Everything the server creates from here on is 0600 (directories
/// 0700: the umask is 077), and what an earlier version left readable by others is closed.
fn keep_private(data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let mut pending = vec![data_dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !0o077))
                .with_context(|| format!("making {} private", path.display()))?;
        }
        if metadata.is_dir() {
            pending.extend(
                std::fs::read_dir(&path)?
                    .flatten()
                    .map(|entry| entry.path()),
            );
        }
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard one (every agent holds a socket, and the
/// default soft limit is often 1,024); returns the limit in force.
fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                limit = wanted;
            }
        }
    }
    limit.rlim_cur
}

/// `--node-name`, or the host name and a random suffix (unique per process, so two processes
/// on one host never share a name in Redis or in S3 object keys).
fn node_name(args: &ServeArgs) -> String {
    args.node_name.clone().unwrap_or_else(|| {
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "node".to_owned());
        format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
    })
}

/// Picks up what admins change on other nodes: dynamic labels, agent options and scheduled
/// queries (the engine itself follows hosts, enroll secrets and live queries).
fn follow_shared_changes(
    effects: Effects,
    relay: Arc<dyn Relay>,
) -> Option<tokio::task::JoinHandle<()>> {
    if relay.is_local() {
        return None;
    }
    let mut events = relay.events();
    Some(tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RelayEvent::Changed(Topic::Labels)) => {
                    if let Err(error) = effects.reload_label_queries(false).await {
                        tracing::warn!(%error, "could not reload the dynamic labels another node changed");
                    }
                }
                Ok(RelayEvent::Changed(Topic::Policies)) => {
                    if let Err(error) = effects.reload_policy_queries(false).await {
                        tracing::warn!(%error, "could not reload the policies another node changed");
                    }
                }
                Ok(RelayEvent::Changed(Topic::AgentOptions)) => {
                    if let Err(error) = effects.reload_agent_configs_here().await {
                        tracing::warn!(%error, "could not reload the agent options another node changed");
                    }
                }
                Ok(RelayEvent::Reconnected) => {
                    // Announcements may have been missed while disconnected.
                    if let Err(error) = effects.reload_label_queries(false).await {
                        tracing::warn!(%error, "could not reload the dynamic labels");
                    }
                    if let Err(error) = effects.reload_policy_queries(false).await {
                        tracing::warn!(%error, "could not reload the policies");
                    }
                    if let Err(error) = effects.reload_agent_configs_here().await {
                        tracing::warn!(%error, "could not reload the agent options");
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}

/// The three store traits, all on one backend.
struct Stores {
    hosts: Arc<dyn HostStore>,
    campaigns: Arc<dyn CampaignStore>,
    admin: Arc<dyn AdminStore>,
    /// `sqlite` or `mysql`.
    backend: &'static str,
    /// The connection pool's usage, for `/metrics`.
    pool: crate::metrics::PoolProbe,
}

/// MySQL when `--mysql-url` is given (for everything), else SQLite in the data directory.
/// Migrations run here; an unreachable or misnamed database stops the start with its cause.
async fn open_stores(args: &ServeArgs, data_dir: &Path) -> Result<Stores> {
    let store = match args.mysql_url.as_deref() {
        Some(url) => {
            let options = MysqlOptions {
                max_connections: args.mysql_max_connections,
                connect_timeout: args.mysql_connect_timeout,
            };
            let store = SqlStore::connect_mysql(url, &options)
                .await
                .with_context(|| format!("opening the MySQL database at {}", redact_url(url)))?;
            tracing::info!(database = %redact_url(url), "storing in MySQL");
            store
        }
        None => SqlStore::open_sqlite(&data_dir.join("flotilla.db"))
            .await
            .context("opening the SQLite database")?,
    };
    let store = Arc::new(store);
    let probe = store.clone();
    Ok(Stores {
        hosts: store.clone(),
        campaigns: store.clone(),
        backend: store.backend(),
        admin: store,
        pool: Box::new(move || {
            let usage = probe.pool_usage();
            crate::metrics::PoolUsage {
                open: usage.open,
                idle: usage.idle,
                max: usage.max,
            }
        }),
    })
}

/// A database URL with its password replaced, fit for logs and banners.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".into();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    let path = path.split('?').next().unwrap_or("");
    format!("{scheme}://{host}/{path}")
}

/// `/metrics` over its sources (the engine's registries and counters, the relay's counters,
/// the database pool, the log destinations), behind the configured credentials.
fn metrics(
    args: &ServeArgs,
    sources: crate::metrics::MetricsSources,
) -> Arc<crate::metrics::Metrics> {
    let auth = match (&args.prometheus_username, &args.prometheus_password) {
        (Some(username), Some(password)) => Some(crate::metrics::BasicAuth {
            username: username.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    Arc::new(crate::metrics::Metrics::new(sources, auth))
}

/// The destination for one kind of osquery log, from its plugin's flags.
fn log_destination(args: &ServeArgs, log: LogKind, node: &str) -> Result<Destination> {
    let kind = log.name();
    let plugin = match log {
        LogKind::Result => args.osquery_result_log_plugin,
        LogKind::Status => args.osquery_status_log_plugin,
        LogKind::Audit => args
            .activity_audit_log_plugin
            .unwrap_or(LogPlugin::Filesystem),
    };
    // How the flags name this log: `--osquery-result-log-…`, `--activity-audit-log-…`.
    let flag = match log {
        LogKind::Audit => "activity-audit".to_owned(),
        _ => format!("osquery-{kind}"),
    };
    let spool = SpoolSettings {
        batch_lines: args.osquery_log_batch_lines.max(1),
        max_spool_bytes: args.osquery_log_spool_size as u64,
        ..SpoolSettings::default()
    };
    let trust = |ca: &Option<PathBuf>, system: bool| match (ca, system) {
        (Some(ca), _) => Some(Trust::CaFile(ca.clone())),
        (None, true) => Some(Trust::System),
        (None, false) => None,
    };
    Ok(match plugin {
        LogPlugin::Filesystem => Destination::Filesystem,
        LogPlugin::Stdout => Destination::Stdout,
        LogPlugin::Webhook => {
            let url = match log {
                LogKind::Result => &args.osquery_result_log_webhook_url,
                LogKind::Status => &args.osquery_status_log_webhook_url,
                LogKind::Audit => &args.activity_audit_log_webhook_url,
            };
            let url = url.clone().with_context(|| {
                format!("--{flag}-log-plugin=webhook needs --{flag}-log-webhook-url")
            })?;
            Destination::Webhook {
                url,
                timeout: std::time::Duration::from_secs(30),
                spool,
            }
        }
        LogPlugin::Kafka => {
            if args.kafka_brokers.is_empty() {
                anyhow::bail!("--{flag}-log-plugin=kafka needs --kafka-brokers");
            }
            let topic = match log {
                LogKind::Result => &args.osquery_result_log_kafka_topic,
                LogKind::Status => &args.osquery_status_log_kafka_topic,
                LogKind::Audit => &args.activity_audit_log_kafka_topic,
            };
            let mut kafka = KafkaSettings::new(args.kafka_brokers.clone(), topic.clone());
            kafka.max_message_bytes = args.kafka_max_message_bytes;
            kafka.tls = trust(&args.kafka_ca, args.kafka_tls);
            kafka.sasl_plain = args
                .kafka_sasl_username
                .clone()
                .zip(args.kafka_sasl_password.clone());
            Destination::Kafka { kafka, spool }
        }
        LogPlugin::Nats => {
            if args.nats_server.is_empty() {
                anyhow::bail!("--{flag}-log-plugin=nats needs --nats-server");
            }
            let subject = match log {
                LogKind::Result => &args.nats_result_subject,
                LogKind::Status => &args.nats_status_subject,
                LogKind::Audit => &args.nats_audit_subject,
            };
            let mut nats =
                NatsSettings::new(args.nats_server.clone(), subject.clone(), node.to_owned());
            nats.tls = trust(&args.nats_ca, args.nats_tls);
            let methods = [
                args.nats_user.is_some(),
                args.nats_token.is_some(),
                args.nats_nkey_file.is_some(),
                args.nats_credentials_file.is_some(),
            ];
            if methods.iter().filter(|&&m| m).count() > 1 {
                anyhow::bail!(
                    "choose one NATS authentication: --nats-user, --nats-token, \
                     --nats-nkey-file or --nats-credentials-file"
                );
            }
            nats.auth = if let (Some(user), Some(password)) = (&args.nats_user, &args.nats_password)
            {
                NatsAuth::UserPassword(user.clone(), password.clone())
            } else if let Some(token) = &args.nats_token {
                NatsAuth::Token(token.clone())
            } else if let Some(path) = &args.nats_nkey_file {
                NatsAuth::NKeySeedFile(path.clone())
            } else if let Some(path) = &args.nats_credentials_file {
                NatsAuth::CredentialsFile(path.clone())
            } else {
                NatsAuth::None
            };
            Destination::Nats { nats, spool }
        }
        LogPlugin::S3 => {
            let bucket = args
                .s3_bucket
                .clone()
                .with_context(|| format!("--{flag}-log-plugin=s3 needs --s3-bucket"))?;
            let root = args.s3_prefix.trim_matches('/');
            let prefix = if root.is_empty() {
                kind.to_owned()
            } else {
                format!("{root}/{kind}")
            };
            let s3 = S3Settings {
                bucket,
                prefix,
                region: args.s3_region.clone(),
                endpoint: args.s3_endpoint_url.clone(),
                force_path_style: args.s3_force_path_style,
                access_key_id: args.s3_access_key_id.clone(),
                secret_access_key: args.s3_secret_access_key.clone(),
                node: node.to_owned(),
                attempt_timeout: std::time::Duration::from_secs(60),
            };
            // One object per flush window or size, whichever comes first.
            let spool = SpoolSettings {
                batch_lines: usize::MAX,
                segment_bytes: args.s3_flush_size.max(1) as u64,
                linger: args.s3_flush_interval,
                ..spool
            };
            Destination::S3 { s3, spool }
        }
    })
}

fn campaign_config(args: &ServeArgs) -> CampaignConfig {
    CampaignConfig {
        max_active: args.live_query_max_active,
        deadline: args.live_query_deadline,
        max_rows: args.live_query_max_rows,
        max_bytes: args.live_query_max_bytes,
        ..CampaignConfig::default()
    }
}

/// Makes sure the `--admin-email` user exists as a global admin, creating it with
/// `--admin-password` if not; an existing user is left alone. Returns a line for the banner.
async fn ensure_admin(
    admin: &dyn AdminStore,
    email: Option<&str>,
    password: Option<&str>,
) -> Result<String> {
    let (Some(email), Some(password)) = (email, password) else {
        return Ok(match admin.user_count().await? {
            0 => "none yet: create one with POST /api/v1/setup or --admin-email/--admin-password"
                .to_owned(),
            n => format!("{n} user(s)"),
        });
    };
    let email = crate::service::sessions::check_email(email)
        .map_err(|e| anyhow::anyhow!("--admin-email: {e}"))?;
    if admin.user_by_email(&email).await?.is_some() {
        return Ok(format!("{email} (exists)"));
    }
    crate::service::password::check_rules("admin-password", password)
        .map_err(|e| anyhow::anyhow!("--admin-password: {e}"))?;
    let user = NewUser {
        name: email.split('@').next().unwrap_or("admin").to_owned(),
        email: email.clone(),
        password_hash: crate::service::password::hash(password.to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("hashing --admin-password: {e}"))?,
        roles: Roles::Global("admin".into()),
        api_only: false,
    };
    let created = admin
        .create_user(&user, flotilla_engine::unix_now())
        .await
        .with_context(|| format!("creating the admin user {email}"))?;
    tracing::info!(email = %created.email, "created the global admin given on the command line");
    Ok(format!("{email} (created)"))
}

/// Makes the given secret valid; with none given and none stored, generates one. Returns the
/// generated secret so it can be printed once.
async fn ensure_enroll_secret(hosts: &Hosts, given: Option<&str>) -> Result<Option<String>> {
    if let Some(secret) = given.map(str::trim).filter(|s| !s.is_empty()) {
        if hosts.ensure_enroll_secret(secret, None).await? {
            tracing::info!("added the enroll secret given on the command line");
        }
        return Ok(None);
    }
    if hosts.has_enroll_secrets() {
        return Ok(None);
    }
    let bytes: [u8; 24] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    hosts.ensure_enroll_secret(&secret, None).await?;
    Ok(Some(secret))
}

fn transport(args: &ServeArgs, data_dir: &Path) -> Result<Transport> {
    if args.no_tls {
        return Ok(Transport::Plain);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Transport::Tls {
            config: server_config(cert, key)?,
            ca: None,
        });
    }
    let pki = DevPki::in_dir(data_dir);
    if pki.ensure(&default_sans(&args.tls_sans))? {
        tracing::info!(ca = %pki.ca_cert.display(), "generated a development certificate");
    }
    Ok(Transport::Tls {
        config: server_config(&pki.server_cert, &pki.server_key)?,
        ca: Some(pki.ca_cert),
    })
}

fn print_banner(
    args: &ServeArgs,
    data_dir: &Path,
    bound: SocketAddr,
    transport: &Transport,
    hosts: &Hosts,
    generated_secret: Option<&str>,
    admin_status: &str,
) {
    let scheme = match transport {
        Transport::Tls { .. } => "https",
        Transport::Plain => "http",
    };
    let agent_host = if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        format!("localhost:{}", bound.port())
    } else {
        bound.to_string()
    };
    println!(
        "Flotilla {} is listening on {scheme}://{bound}",
        env!("CARGO_PKG_VERSION")
    );
    println!("  data directory: {}", data_dir.display());
    match args.mysql_url.as_deref() {
        Some(url) => println!("  database: MySQL {}", redact_url(url)),
        None => println!(
            "  database: SQLite {}",
            data_dir.join("flotilla.db").display()
        ),
    }
    println!("  enrolled hosts: {}", hosts.len());
    println!("  admin users: {admin_status}");
    if let Some(secret) = generated_secret {
        println!("  enroll secret (generated, shown once): {secret}");
    } else if args.enroll_secret.is_some() {
        println!("  enroll secret: the one given with --enroll-secret");
    } else {
        println!("  enroll secret: unchanged (set one with --enroll-secret)");
    }
    println!();
    println!("osquery flagfile (put the enroll secret in the file named by --enroll_secret_path):");
    println!("--tls_hostname={agent_host}");
    match transport {
        Transport::Tls { ca: Some(ca), .. } => println!("--tls_server_certs={}", ca.display()),
        Transport::Tls { ca: None, .. } => {
            println!(
                "--tls_server_certs=<the CA bundle that signed {}>",
                args.tls_cert
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        }
        Transport::Plain => {
            println!("# plain HTTP: osquery needs TLS, so put a TLS-terminating proxy in front")
        }
    }
    for flag in [
        "--enroll_secret_path=/etc/osquery/enroll_secret",
        "--enroll_tls_endpoint=/api/osquery/enroll",
        "--config_plugin=tls",
        "--config_tls_endpoint=/api/osquery/config",
        "--config_refresh=60",
        "--logger_plugin=tls",
        "--logger_tls_endpoint=/api/osquery/log",
        "--logger_tls_period=10",
        "--disable_distributed=false",
        "--distributed_plugin=tls",
        "--distributed_interval=10",
        "--distributed_tls_max_attempts=3",
        "--distributed_tls_read_endpoint=/api/osquery/distributed/read",
        "--distributed_tls_write_endpoint=/api/osquery/distributed/write",
        "--disable_carver=false",
        "--carver_start_endpoint=/api/osquery/carve/begin",
        "--carver_continue_endpoint=/api/osquery/carve/block",
    ] {
        println!("{flag}");
    }
    println!();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod mysql_url_tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("mysql://flotilla:s3cret@db.internal:3306/fleet?ssl-mode=required"),
            "mysql://flotilla@db.internal:3306/fleet"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1/flotilla"),
            "mysql://root@127.0.0.1/flotilla"
        );
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
    }
}
