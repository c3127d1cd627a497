//! The `flotilla` command line. Every `serve` option can also be set by a `FLOTILLA_*`
//! environment variable, so containers and systemd units need no flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

#[derive(Parser, Debug)]
#[command(
    name = "flotilla",
    version,
    about = "A fleet server for osquery: live queries answered from in-memory actors"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server. With no options: HTTPS on 0.0.0.0:8080, SQLite and a generated
    /// certificate in ./flotilla-data, no other service needed.
    Serve(Box<ServeArgs>),

    /// Sign and publish the agents' TUF update repository (orbit, osqueryd, Fleet Desktop):
    /// init, roots, add, list, timestamp, rotate. `serve --tuf-repo` serves it.
    Updates(crate::updates::cli::UpdatesArgs),

    // The admin's client commands (login, query, get, apply, ...): `crate::client`.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A destination for osquery's result or status logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogPlugin {
    Filesystem,
    Stdout,
    Webhook,
    Kafka,
    Nats,
    S3,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "FLOTILLA_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Where the SQLite database, generated certificates, osquery logs and carves live.
    #[arg(long, env = "FLOTILLA_DATA_DIR", default_value = "./flotilla-data")]
    pub data_dir: PathBuf,

    /// PEM certificate chain to serve instead of the generated one (needs --tls-key).
    #[arg(long, env = "FLOTILLA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "FLOTILLA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra DNS name or IP address for the generated certificate (repeatable; the
    /// environment variable takes a comma-separated list).
    #[arg(long = "tls-san", env = "FLOTILLA_TLS_SAN", value_delimiter = ',')]
    pub tls_sans: Vec<String>,

    /// Serve plain HTTP, for running behind a load balancer that terminates TLS.
    #[arg(long, env = "FLOTILLA_NO_TLS", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub no_tls: bool,

    /// Make sure this is a valid global enroll secret (idempotent). When no secret exists at
    /// all and none is given, one is generated and printed.
    #[arg(long, env = "FLOTILLA_ENROLL_SECRET", hide_env_values = true)]
    pub enroll_secret: Option<String>,

    /// Make sure a global admin with this email exists (needs --admin-password). Idempotent:
    /// an existing user is left as it is, password included.
    #[arg(long, env = "FLOTILLA_ADMIN_EMAIL", requires = "admin_password")]
    pub admin_email: Option<String>,

    /// Password for the --admin-email user when it is created (12-48 characters with a number
    /// and a symbol).
    #[arg(
        long,
        env = "FLOTILLA_ADMIN_PASSWORD",
        hide_env_values = true,
        requires = "admin_email"
    )]
    pub admin_password: Option<String>,

    /// Redis for running several nodes behind one load balancer (`redis://host:6379/0`,
    /// `rediss://` for TLS): live queries started, watched and answered on any node reach
    /// every node. Without it the node relays in process and runs alone.
    #[arg(long, env = "FLOTILLA_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Redis connections this node keeps for relay commands (blocking reads of live-query
    /// answers use one more per running live query).
    #[arg(long, env = "FLOTILLA_REDIS_POOL_SIZE", default_value_t = 8)]
    pub redis_pool_size: u32,

    /// This node's name among the nodes sharing Redis, for logs and relay messages
    /// (default: the host name and a random suffix, unique per process).
    #[arg(long, env = "FLOTILLA_NODE_NAME")]
    pub node_name: Option<String>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such as
    /// `info,flotilla_engine=debug`. Without it, RUST_LOG is used if set, else `info`.
    #[arg(long, env = "FLOTILLA_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log format on standard error: text for people, json (one object a line) for machines.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Body limit for enroll, config, distributed/read and carve/begin (e.g. 1MiB).
    #[arg(long, env = "FLOTILLA_MAX_BODY_DEFAULT", default_value = "1MiB", value_parser = parse_size)]
    pub max_body_default: usize,

    /// Body limit for distributed/write, after gzip.
    #[arg(long, env = "FLOTILLA_MAX_BODY_DISTRIBUTED_WRITE", default_value = "64MiB", value_parser = parse_size)]
    pub max_body_distributed_write: usize,

    /// Body limit for log, after gzip.
    #[arg(long, env = "FLOTILLA_MAX_BODY_LOG", default_value = "64MiB", value_parser = parse_size)]
    pub max_body_log: usize,

    /// Body limit for carve/block.
    #[arg(long, env = "FLOTILLA_MAX_BODY_CARVE_BLOCK", default_value = "16MiB", value_parser = parse_size)]
    pub max_body_carve_block: usize,

    /// File carves one host may have in progress at once (osquery uploads one at a time).
    #[arg(
        long,
        env = "FLOTILLA_CARVE_MAX_SESSIONS_PER_HOST",
        default_value_t = 3
    )]
    pub carve_max_sessions_per_host: u64,

    /// File carves in progress at once, over all hosts.
    #[arg(long, env = "FLOTILLA_CARVE_MAX_SESSIONS", default_value_t = 100)]
    pub carve_max_sessions: u64,

    /// How long a carve's blocks are kept in the store (then only its record is left); a carve
    /// not complete by then fails.
    #[arg(long, env = "FLOTILLA_CARVE_EXPIRY", default_value = "24h", value_parser = parse_duration)]
    pub carve_expiry: std::time::Duration,

    /// Answer a log request once its lines are with the operating system, without waiting for
    /// them to be synced to disk: faster on slow disks, but lines osquery was told are kept can
    /// be lost on a power loss (not on a crash of this process).
    #[arg(long, env = "FLOTILLA_NO_LOG_FSYNC")]
    pub no_log_fsync: bool,

    /// Size at which result.log and status.log are rotated.
    #[arg(long, env = "FLOTILLA_OSQUERY_LOG_ROTATE_SIZE", default_value = "100MiB", value_parser = parse_size)]
    pub osquery_log_rotate_size: usize,

    /// Rotated osquery log files kept.
    #[arg(long, env = "FLOTILLA_OSQUERY_LOG_ROTATE_KEEP", default_value_t = 5)]
    pub osquery_log_rotate_keep: usize,

    /// Where result logs go: files in <data-dir>/logs, standard output, an HTTP receiver
    /// (needs --osquery-result-log-webhook-url), a Kafka topic (needs --kafka-brokers), a NATS
    /// subject (needs --nats-server) or an S3 bucket (needs --s3-bucket). The remote ones go
    /// through an on-disk spool in <data-dir>/logs/spool.
    #[arg(
        long,
        env = "FLOTILLA_OSQUERY_RESULT_LOG_PLUGIN",
        value_enum,
        default_value = "filesystem"
    )]
    pub osquery_result_log_plugin: LogPlugin,

    /// Where status logs go (as for results).
    #[arg(
        long,
        env = "FLOTILLA_OSQUERY_STATUS_LOG_PLUGIN",
        value_enum,
        default_value = "filesystem"
    )]
    pub osquery_status_log_plugin: LogPlugin,

    /// Where the activity audit log goes: every activity (logins, changes, live queries) as one
    /// JSON line, through the same destinations as osquery's logs (`audit.log`, a webhook,
    /// Kafka, NATS, S3 under PREFIX/audit/). Off unless given.
    #[arg(long, env = "FLOTILLA_ACTIVITY_AUDIT_LOG_PLUGIN", value_enum)]
    pub activity_audit_log_plugin: Option<LogPlugin>,

    /// URL audit lines are POSTed to with the webhook plugin.
    #[arg(long, env = "FLOTILLA_ACTIVITY_AUDIT_LOG_WEBHOOK_URL")]
    pub activity_audit_log_webhook_url: Option<String>,

    /// Kafka topic for the audit log (it must exist).
    #[arg(
        long,
        env = "FLOTILLA_ACTIVITY_AUDIT_LOG_KAFKA_TOPIC",
        default_value = "fleet_audit"
    )]
    pub activity_audit_log_kafka_topic: String,

    /// URL result logs are POSTed to (JSON arrays of lines) with the webhook plugin.
    #[arg(long, env = "FLOTILLA_OSQUERY_RESULT_LOG_WEBHOOK_URL")]
    pub osquery_result_log_webhook_url: Option<String>,

    /// URL status logs are POSTed to with the webhook plugin.
    #[arg(long, env = "FLOTILLA_OSQUERY_STATUS_LOG_WEBHOOK_URL")]
    pub osquery_status_log_webhook_url: Option<String>,

    /// Kafka bootstrap brokers (host:port, comma-separated) for the kafka plugin.
    #[arg(long, env = "FLOTILLA_KAFKA_BROKERS", value_delimiter = ',')]
    pub kafka_brokers: Vec<String>,

    /// Kafka topic for result logs (it must exist).
    #[arg(
        long,
        env = "FLOTILLA_OSQUERY_RESULT_LOG_KAFKA_TOPIC",
        default_value = "osquery_result"
    )]
    pub osquery_result_log_kafka_topic: String,

    /// Kafka topic for status logs (it must exist).
    #[arg(
        long,
        env = "FLOTILLA_OSQUERY_STATUS_LOG_KAFKA_TOPIC",
        default_value = "osquery_status"
    )]
    pub osquery_status_log_kafka_topic: String,

    /// Connect to Kafka over TLS, trusting the system's root certificates.
    #[arg(long, env = "FLOTILLA_KAFKA_TLS")]
    pub kafka_tls: bool,

    /// Connect to Kafka over TLS, trusting only the CA certificates in this PEM file.
    #[arg(long, env = "FLOTILLA_KAFKA_CA")]
    pub kafka_ca: Option<PathBuf>,

    /// SASL PLAIN user for Kafka (with --kafka-sasl-password).
    #[arg(
        long,
        env = "FLOTILLA_KAFKA_SASL_USERNAME",
        requires = "kafka_sasl_password"
    )]
    pub kafka_sasl_username: Option<String>,

    /// SASL PLAIN password for Kafka.
    #[arg(
        long,
        env = "FLOTILLA_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        requires = "kafka_sasl_username"
    )]
    pub kafka_sasl_password: Option<String>,

    /// The brokers' message.max.bytes: produce requests are split to stay under it, and a
    /// single larger line is set aside in the spool's rejected.jsonl.
    #[arg(
        long,
        env = "FLOTILLA_KAFKA_MAX_MESSAGE_BYTES",
        default_value = "1000000",
        value_parser = parse_size
    )]
    pub kafka_max_message_bytes: usize,

    /// NATS server URLs (nats://host:4222, tls://host:4222; comma-separated) for the nats
    /// plugin. A user and password in the URL work too.
    #[arg(long, env = "FLOTILLA_NATS_SERVER", value_delimiter = ',')]
    pub nats_server: Vec<String>,

    /// NATS subject for result logs; a JetStream stream on it, if any, acknowledges each line.
    #[arg(
        long,
        env = "FLOTILLA_NATS_RESULT_SUBJECT",
        default_value = "osquery.result"
    )]
    pub nats_result_subject: String,

    /// NATS subject for status logs.
    #[arg(
        long,
        env = "FLOTILLA_NATS_STATUS_SUBJECT",
        default_value = "osquery.status"
    )]
    pub nats_status_subject: String,

    /// NATS subject for the activity audit log.
    #[arg(
        long,
        env = "FLOTILLA_NATS_AUDIT_SUBJECT",
        default_value = "fleet.audit"
    )]
    pub nats_audit_subject: String,

    /// NATS user (with --nats-password).
    #[arg(long, env = "FLOTILLA_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password.
    #[arg(
        long,
        env = "FLOTILLA_NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<String>,

    /// NATS authentication token.
    #[arg(long, env = "FLOTILLA_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// File holding an NKey seed (SU…) to authenticate to NATS with.
    #[arg(long, env = "FLOTILLA_NATS_NKEY_FILE")]
    pub nats_nkey_file: Option<PathBuf>,

    /// NATS credentials file (.creds: a user JWT and its NKey seed).
    #[arg(long, env = "FLOTILLA_NATS_CREDENTIALS_FILE")]
    pub nats_credentials_file: Option<PathBuf>,

    /// Connect to NATS over TLS, trusting the system's root certificates.
    #[arg(long, env = "FLOTILLA_NATS_TLS")]
    pub nats_tls: bool,

    /// Connect to NATS over TLS, trusting only the CA certificates in this PEM file.
    #[arg(long, env = "FLOTILLA_NATS_CA")]
    pub nats_ca: Option<PathBuf>,

    /// S3 bucket for the s3 plugin (it must exist).
    #[arg(long, env = "FLOTILLA_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Key prefix in the bucket: result logs go under PREFIX/result/YYYY/MM/DD/HH/, status
    /// logs under PREFIX/status/.
    #[arg(long, env = "FLOTILLA_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,

    /// The bucket's region (default: AWS_REGION, the profile's region, else us-east-1).
    #[arg(long, env = "FLOTILLA_S3_REGION")]
    pub s3_region: Option<String>,

    /// An S3-compatible store's URL (MinIO, Ceph, Garage: http://127.0.0.1:9000).
    #[arg(long, env = "FLOTILLA_S3_ENDPOINT_URL")]
    pub s3_endpoint_url: Option<String>,

    /// Address the bucket in the path (endpoint/bucket/key), as most S3-compatible stores want.
    #[arg(long, env = "FLOTILLA_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,

    /// S3 access key id (default: the AWS chain: environment, shared profile, instance role).
    #[arg(
        long,
        env = "FLOTILLA_S3_ACCESS_KEY_ID",
        requires = "s3_secret_access_key"
    )]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(
        long,
        env = "FLOTILLA_S3_SECRET_ACCESS_KEY",
        hide_env_values = true,
        requires = "s3_access_key_id"
    )]
    pub s3_secret_access_key: Option<String>,

    /// An S3 object is written at least this often while lines arrive …
    #[arg(long, env = "FLOTILLA_S3_FLUSH_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub s3_flush_interval: Duration,

    /// … or as soon as this many bytes of lines (before compression) wait.
    #[arg(long, env = "FLOTILLA_S3_FLUSH_SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub s3_flush_size: usize,

    /// Lines per webhook POST, Kafka produce batch or NATS batch at most.
    #[arg(
        long,
        alias = "osquery-log-webhook-batch-lines",
        env = "FLOTILLA_OSQUERY_LOG_BATCH_LINES",
        default_value_t = 500
    )]
    pub osquery_log_batch_lines: usize,

    /// On-disk spool per remote log destination; when full, osquery is answered 413 and keeps
    /// its lines.
    #[arg(
        long,
        alias = "osquery-log-webhook-spool-size",
        env = "FLOTILLA_OSQUERY_LOG_SPOOL_SIZE",
        default_value = "1GiB",
        value_parser = parse_size
    )]
    pub osquery_log_spool_size: usize,

    /// Rows a query report keeps at most (Fleet's query_report_cap).
    #[arg(long, env = "FLOTILLA_QUERY_REPORT_CAP", default_value_t = 1000)]
    pub query_report_cap: usize,

    /// How often last-seen times and vitals are written to the database (e.g. 5s).
    #[arg(long, env = "FLOTILLA_FLUSH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub flush_interval: Duration,

    /// A host's last-seen time is written to the database at most this often (it is exact in
    /// memory); the main source of steady-state database writes: one per host per interval.
    #[arg(long, env = "FLOTILLA_SEEN_WRITE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub seen_write_interval: Duration,

    /// How often a host's detail queries (vitals) run again.
    #[arg(long, env = "FLOTILLA_DETAIL_UPDATE_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub detail_update_interval: Duration,

    /// How often a host's policies run again (a new or changed policy, or a refetch, goes out
    /// at the host's next check-in whatever this is).
    #[arg(long, env = "FLOTILLA_POLICY_UPDATE_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub policy_update_interval: Duration,

    /// A directory of vulnerability data, read at start and whenever a file in it changes,
    /// never from the network: OSV records (`*.json`, `*.json.gz`, osv.dev `*.zip` dumps,
    /// in subdirectories too), and optionally CISA's `known_exploited_vulnerabilities.json`
    /// and FIRST's `epss_scores*.csv[.gz]`. Without it, software is inventoried and counted
    /// but not matched.
    #[arg(long, env = "FLOTILLA_VULNERABILITY_FEED", value_name = "DIR")]
    pub vulnerability_feed: Option<std::path::PathBuf>,

    /// How often the software jobs look for work: a changed feed, or host software changed
    /// since the last match or count. On several nodes one holds the relay's lock and works.
    #[arg(long, env = "FLOTILLA_SOFTWARE_JOB_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub software_job_interval: Duration,

    /// The shortest time between two recounts of hosts per software version, title and CVE,
    /// and between two matches of new software, while host software keeps changing (a
    /// changed feed is matched at once). The lists say when their counts were made
    /// (`counts_updated_at`).
    #[arg(long, env = "FLOTILLA_SOFTWARE_COUNTS_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub software_counts_interval: Duration,

    /// Serve the agents' TUF update repository made by `flotilla updates init --path P`
    /// (give P) under /tuf/ on this listener: orbit's --update-url is https://HOST:PORT/tuf.
    /// Several nodes may serve the same directory.
    #[arg(long, env = "FLOTILLA_TUF_REPO", value_name = "P")]
    pub tuf_repo: Option<PathBuf>,

    /// Also serve /tuf/ on a listener of its own (same TLS settings), e.g. for agents that
    /// reach the update server on another port or address.
    #[arg(long, env = "FLOTILLA_TUF_LISTEN", requires = "tuf_repo")]
    pub tuf_listen: Option<SocketAddr>,

    /// The timestamp role's key file (P/keys/timestamp.json; its passphrase in
    /// FLOTILLA_TIMESTAMP_PASSPHRASE): the server then re-signs timestamp.json daily, well
    /// before its 14 days run out, on one node at a time.
    #[arg(
        long,
        env = "FLOTILLA_TUF_TIMESTAMP_KEY",
        requires = "tuf_repo",
        value_name = "FILE"
    )]
    pub tuf_timestamp_key: Option<PathBuf>,

    /// Live queries running at once; one more is refused with 429.
    #[arg(long, env = "FLOTILLA_LIVE_QUERY_MAX_ACTIVE", default_value_t = 1_000)]
    pub live_query_max_active: usize,

    /// How long a live query runs at most before it is finished.
    #[arg(long, env = "FLOTILLA_LIVE_QUERY_DEADLINE", default_value = "10m", value_parser = parse_duration)]
    pub live_query_deadline: Duration,

    /// Rows shown per live query; answers beyond are counted, and subscribers are told.
    #[arg(long, env = "FLOTILLA_LIVE_QUERY_MAX_ROWS", default_value_t = 250_000)]
    pub live_query_max_rows: usize,

    /// Where to POST opt-in usage statistics (counts and versions, nothing personal; see the
    /// README). Nothing is sent without it, nor unless the app config's
    /// `server_settings.enable_analytics` is true.
    #[arg(long, env = "FLOTILLA_USAGE_STATISTICS_URL", value_parser = parse_http_url)]
    pub usage_statistics_url: Option<reqwest::Url>,

    /// How often usage statistics are sent (when on); a receiver that is down is tried again
    /// one period later.
    #[arg(long, env = "FLOTILLA_USAGE_STATISTICS_INTERVAL", default_value = "24h", value_parser = parse_duration)]
    pub usage_statistics_interval: Duration,

    /// How long one results-websocket message may take to leave: a watcher that stops reading
    /// is disconnected after it, and what was queued for it is given back.
    #[arg(long, env = "FLOTILLA_WEBSOCKET_SEND_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub websocket_send_timeout: Duration,

    /// Bytes of result rows kept and shown per live query (held in memory for late watchers);
    /// answers beyond are counted, and subscribers are told.
    #[arg(long, env = "FLOTILLA_LIVE_QUERY_MAX_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub live_query_max_bytes: usize,

    /// How long the synchronous live-query endpoints wait for answers.
    #[arg(long, env = "FLOTILLA_LIVE_QUERY_SYNC_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub live_query_sync_timeout: Duration,

    /// Store everything in this MySQL 8 / MariaDB 10.11 database instead of SQLite, e.g.
    /// `mysql://flotilla:secret@db:3306/flotilla` (the database must exist; tables are created
    /// at start). Several nodes may share one database.
    #[arg(long, env = "FLOTILLA_MYSQL_URL", hide_env_values = true)]
    pub mysql_url: Option<String>,

    /// MySQL connections this node keeps open at most.
    #[arg(long, env = "FLOTILLA_MYSQL_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub mysql_max_connections: u32,

    /// How long connecting to MySQL, or waiting for a free connection, may take before the
    /// operation fails (enroll answers "retry later", /healthz reports 500) instead of waiting.
    #[arg(long, env = "FLOTILLA_MYSQL_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub mysql_connect_timeout: Duration,

    /// Username a Prometheus scraper must present for /metrics (HTTP basic auth; needs
    /// --prometheus-password). Without it /metrics is open.
    #[arg(
        long,
        env = "FLOTILLA_PROMETHEUS_USERNAME",
        requires = "prometheus_password"
    )]
    pub prometheus_username: Option<String>,

    /// Password for --prometheus-username.
    #[arg(
        long,
        env = "FLOTILLA_PROMETHEUS_PASSWORD",
        hide_env_values = true,
        requires = "prometheus_username"
    )]
    pub prometheus_password: Option<String>,

    /// A connection that has sent no complete request this long after it was accepted (and
    /// its TLS handshake done) is closed: idle and half-sent sockets cannot pile up.
    #[arg(long, env = "FLOTILLA_HTTP_FIRST_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_first_request_timeout: Duration,

    /// An HTTP/1.1 connection waits this long for the next request's headers, whole, before it
    /// is closed: both the header read timeout and the keep-alive idle timeout (hyper has one
    /// timer for both); longer than osquery's usual 10 s intervals.
    #[arg(long, env = "FLOTILLA_HTTP_HEADER_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub http_header_read_timeout: Duration,

    /// Load balancers (CIDRs, comma-separated) whose X-Forwarded-For names the client, for
    /// login limits and activity addresses; none by default (the header is anyone's to write).
    #[arg(long, env = "FLOTILLA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::units::parse_network)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// How long shutdown waits for requests in flight.
    #[arg(long, env = "FLOTILLA_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// An `http://` or `https://` URL.
fn parse_http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("expected an http or https URL, not {other}://")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
