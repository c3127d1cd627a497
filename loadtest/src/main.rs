//! `flotilla-loadtest`: run many simulated osquery agents against an osquery TLS server and
//! print a JSON summary of what they did.
//!
//! ```text
//! flotilla-loadtest --server https://localhost:8443 --ca ca.pem --enroll-secret S \
//!     --hosts 500 --start-period 30s --distributed-interval 10s --duration 5m --os ubuntu,macos
//! ```
//!
//! Each agent runs [`SimAgent::run`] (enroll → config → logger → distributed loop) until the
//! test ends; agents start `start_period / hosts` apart. Up to four connections per agent are
//! kept open (start-up, distributed, logger, config refresh), so raise `ulimit -n` for big runs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use flotilla_loadtest::host::SeedStream;
use flotilla_loadtest::{
    AgentConfig, AgentStats, DEFAULT_OSQUERY_VERSION, Endpoint, EndpointPaths, Intervals,
    LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer, install_crypto_provider,
    parse_duration,
};
use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "flotilla-loadtest",
    version,
    about = "Run simulated osquery agents against an osquery TLS server"
)]
struct Cli {
    /// Server base URL, e.g. https://localhost:8443
    #[arg(long)]
    server: String,
    /// PEM file with the CA(s) to trust (the agents' --tls_server_certs)
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Do not verify the server certificate
    #[arg(long)]
    insecure: bool,
    /// Enroll secret
    #[arg(long, env = "FLOTILLA_ENROLL_SECRET")]
    enroll_secret: String,
    /// Number of simulated hosts
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Spread agent start-ups over this period
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    start_period: Duration,
    /// distributed_interval of every agent
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    distributed_interval: Duration,
    /// config_refresh of every agent (0s = fetch the config only at start)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    config_interval: Duration,
    /// logger_tls_period of every agent
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    logger_period: Duration,
    /// How long the test runs (from the first agent's start)
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// OS templates, assigned round-robin
    #[arg(long, value_delimiter = ',', default_value = "ubuntu,macos,windows")]
    os: Vec<OsTemplate>,
    /// Endpoint prefix: /api/v1/osquery or /api/osquery
    #[arg(long, default_value = "/api/v1/osquery")]
    prefix: String,
    /// osquery version to report
    #[arg(long, default_value = DEFAULT_OSQUERY_VERSION)]
    osquery_version: String,
    /// Do not send `Authorization: NodeKey` (behave like osquery < 5.23)
    #[arg(long)]
    no_node_key_header: bool,
    /// Let config options pushed by the server change the agents' intervals (as osqueryd does)
    #[arg(long)]
    honor_server_options: bool,
    /// Rows returned by each live query
    #[arg(long, default_value_t = 1)]
    rows_per_result: usize,
    /// Probability that a live query fails
    #[arg(long, default_value_t = 0.0)]
    live_query_error_prob: f64,
    /// Probability that a live query returns no rows
    #[arg(long, default_value_t = 0.2)]
    live_query_no_result_prob: f64,
    /// Seed for host identifiers (same seed = same hosts); random by default
    #[arg(long)]
    seed: Option<u64>,
    /// Resolve a host name to an address, as HOST=IP:PORT (e.g. localhost=127.0.0.1:8443)
    #[arg(long)]
    resolve: Option<String>,
    /// Local address to bind outgoing connections to
    #[arg(long)]
    local_address: Option<IpAddr>,
}

/// Counters of one endpoint in the summary.
#[derive(Debug, Serialize)]
struct EndpointSummary {
    requests: u64,
    errors: u64,
    mean_latency_ms: f64,
    max_latency_ms: f64,
}

/// What the run prints on stdout.
#[derive(Debug, Serialize)]
struct Summary {
    hosts: usize,
    enrolled_hosts: u64,
    duration_secs: f64,
    seed: u64,
    requests: u64,
    errors: u64,
    enrolls: u64,
    node_invalid: u64,
    endpoints: BTreeMap<&'static str, EndpointSummary>,
}

impl Summary {
    fn new(cli: &Cli, seed: u64, elapsed: Duration, stats: &AgentStats) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let endpoints = Endpoint::ALL
            .iter()
            .map(|&e| {
                let s = stats.endpoint(e);
                let summary = EndpointSummary {
                    requests: s.requests,
                    errors: s.errors,
                    mean_latency_ms: ms(s.mean_latency().as_micros() as u64),
                    max_latency_ms: ms(s.latency_us_max),
                };
                (e.name(), summary)
            })
            .collect();
        Summary {
            hosts: cli.hosts,
            enrolled_hosts: stats.hosts_with_node_key,
            duration_secs: elapsed.as_secs_f64(),
            seed,
            requests: stats.total_requests(),
            errors: stats.total_errors(),
            enrolls: stats.enrolls,
            node_invalid: stats.node_invalid,
            endpoints,
        }
    }
}

fn parse_resolve(text: &str) -> anyhow::Result<(String, SocketAddr)> {
    let (host, addr) = text
        .split_once('=')
        .context("--resolve expects HOST=IP:PORT")?;
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("bad address in --resolve {text:?}"))?;
    Ok((host.to_string(), addr))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    install_crypto_provider();
    let cli = Cli::parse();
    if cli.os.is_empty() {
        bail!("--os needs at least one template");
    }
    let ca_pem = match &cli.ca {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let resolve = cli.resolve.as_deref().map(parse_resolve).transpose()?;
    let seed = cli.seed.unwrap_or_else(rand::random);
    let intervals = Intervals {
        distributed: cli.distributed_interval,
        config_refresh: cli.config_interval,
        logger_period: cli.logger_period,
        honor_server_options: cli.honor_server_options,
        ..Intervals::default()
    };
    let live = LiveQueryProfile {
        rows_per_result: cli.rows_per_result,
        error_prob: cli.live_query_error_prob.clamp(0.0, 1.0),
        no_result_prob: cli.live_query_no_result_prob.clamp(0.0, 1.0),
    };

    let mut agents = Vec::with_capacity(cli.hosts);
    let mut ids = SeedStream::new(seed);
    for i in 0..cli.hosts {
        let template = cli.os[i % cli.os.len()];
        let host_identifier = ids.uuid().hyphenated().to_string().to_uppercase();
        let mut cfg = AgentConfig::new(
            cli.server.clone(),
            cli.enroll_secret.clone(),
            host_identifier,
            template,
        );
        cfg.ca_pem = ca_pem.clone();
        cfg.insecure = cli.insecure;
        cfg.endpoints = EndpointPaths::with_prefix(&cli.prefix);
        cfg.send_node_key_header = !cli.no_node_key_header;
        cfg.osquery_version = cli.osquery_version.clone();
        cfg.resolve = resolve.clone();
        cfg.local_address = cli.local_address;
        agents.push(SimAgent::new(cfg).with_context(|| format!("building agent {i}"))?);
    }

    let started = Instant::now();
    let deadline = started + cli.duration;
    let hosts = cli.hosts.max(1) as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let offset = cli.start_period.mul_f64(i as f64 / f64::from(hosts));
        let intervals = intervals.clone();
        tasks.spawn(async move {
            if started + offset >= deadline {
                return agent.stats();
            }
            tokio::time::sleep_until(started + offset).await;
            let answerer = TemplateAnswerer::new(agent.profile().clone(), live);
            agent
                .run(intervals, &answerer, tokio::time::sleep_until(deadline))
                .await
        });
    }
    let mut total = AgentStats::default();
    while let Some(res) = tasks.join_next().await {
        total.merge(&res.context("agent task panicked")?);
    }
    let summary = Summary::new(&cli, seed, started.elapsed(), &total);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        let cli = Cli::try_parse_from([
            "flotilla-loadtest",
            "--server",
            "https://localhost:8443",
            "--insecure",
            "--enroll-secret",
            "s",
            "--hosts",
            "3",
            "--start-period",
            "500ms",
            "--os",
            "ubuntu,windows",
        ])
        .unwrap();
        assert_eq!(cli.start_period, Duration::from_millis(500));
        assert_eq!(cli.os, vec![OsTemplate::Ubuntu, OsTemplate::Windows]);
        assert_eq!(cli.duration, Duration::from_secs(30));
        assert!(
            Cli::try_parse_from([
                "x",
                "--server",
                "u",
                "--enroll-secret",
                "s",
                "--ca",
                "a.pem",
                "--insecure"
            ])
            .is_err()
        );
    }

    #[test]
    fn resolve_flag() {
        let (h, a) = parse_resolve("localhost=127.0.0.1:8443").unwrap();
        assert_eq!(h, "localhost");
        assert_eq!(a.port(), 8443);
        assert!(parse_resolve("localhost").is_err());
    }
}
