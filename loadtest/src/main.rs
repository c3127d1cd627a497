//! `flotilla-loadtest`: run many simulated osquery agents against an osquery TLS server, show
//! progress on stderr and print a JSON summary (requests, errors and latency percentiles per
//! endpoint, enrolled hosts, the load tester's own CPU and memory, the options used) on stdout.
//!
//! ```text
//! flotilla-loadtest --server https://localhost:8443 --ca ca.pem --enroll-secret S \
//!     --hosts 500 --start-period 30s --distributed-interval 10s --duration 5m --os ubuntu,macos
//! ```
//!
//! Scenarios: `checkin` (agents only), `fanout` (plus an admin running live queries to every
//! host, timed over the results websocket) and `version` (the same connections and request
//! rate, every request a `GET /version`: the ceiling to compare check-ins against).
//!
//! `flotilla-loadtest write-osv-fixture DIR [--records N]` writes an OSV feed (with CISA KEV
//! and EPSS files) matching the hosts' software instead of running agents.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use flotilla_loadtest::clock::{calendar_time, unix_now};
use flotilla_loadtest::fanout::{Admin, FanoutOptions, FanoutReport, HostIndex, SendTimes};
use flotilla_loadtest::fleetd::{FLEETD_VERSION, FleetdHost, FleetdIntervals, SimFleetd};
use flotilla_loadtest::host::host_identifier;
use flotilla_loadtest::software::fixture::{FixtureOptions, write_fixture};
use flotilla_loadtest::software::{DEFAULT_POOL_SIZE, Software, SoftwareOptions};
use flotilla_loadtest::{
    AgentConfig, AgentCounters, AgentStats, DEFAULT_OSQUERY_VERSION, Endpoint, EndpointPaths,
    Intervals, LiveQueryProfile, OsTemplate, Percentiles, SimAgent, TemplateAnswerer,
    install_crypto_provider, parse_duration, tls_client_config,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

const AFTER_HELP: &str = "\
CONNECTIONS AND MEMORY
  Like osqueryd, every simulated host keeps one HTTP/1.1 keep-alive TLS connection per
  thread that talks to the server: start-up (enroll, first config), config refresh,
  distributed and logger: 4 per host (3 with --config-interval 0s). Open files needed:
  about 4 x --hosts; the soft RLIMIT_NOFILE is raised to the hard limit at start (raise
  the hard limit with `ulimit -Hn` / limits.conf for big runs).
  On loopback the hosts' connections come from 127.0.0.1..127.0.0.N (--source-addresses)
  so that more than ~28,000 connections fit the ephemeral port range; the certificate is
  still verified against the URL's host name.
  Memory of the load tester (measured, 1,000 hosts, Linux x86-64): about 9 KB of state
  per host plus 30-45 KB per open TLS connection (rustls and HTTP buffers). With
  --connections per-thread that is about 120 KB per host with 3 connections and about
  150 KB with 4, so 100,000 faithful hosts need about 15 GB, and the server holds the
  other end of 400,000 connections too: too much for 24 GB. --connections shared keeps
  one connection per host: about 55 KB per host, 5.5 GB for 100,000 hosts.
  --connections pooled puts every host behind --pool-size shared keep-alive connections
  (256), one request on each at a time, as a load balancer in front of the server would;
  a request's wait for a free connection counts in its latency. About 9 KB per host, and
  the server sees only the pool's connections.
  Use it where a process may not hold one socket per host: with RLIMIT_NOFILE's hard
  limit at 20,000 (as in some containers) no process can hold 100,000 connections.
  The summary's client block reports each run's figures (rss_mb_agents_built,
  rss_per_host_kb, cpu_percent).

SUMMARY (stdout, and --summary PATH)
  scenario, hosts, enrolled_hosts, started_at, duration_s, requests, errors,
  request_rate_per_s, endpoints.<name>.{requests,errors,latency_ms{count,mean_ms,p50_ms,
  p90_ms,p99_ms,max_ms}} (hdrhistogram, microsecond resolution, each attempt counted),
  steady_state{from_s,requests,errors,request_rate_per_s,endpoints} (the same, counting
  only exchanges that end after --steady-after: the fleet running, enrollment over),
  client{cpu_s,cpu_percent,rss_mb_*,rss_per_host_kb}, options, and for --scenario fanout:
  fanout.campaigns[].{online,results,first_result_s,p50_hosts_s,p99_hosts_s,all_hosts_s,
  engine_latency{p50_ms,p99_ms,max_ms,...}}.

EXAMPLES
  flotilla-loadtest --server https://localhost:8443 --ca tls/ca.pem \\
      --enroll-secret S --hosts 10000 --start-period 60s --duration 5m
  flotilla-loadtest ... --scenario fanout --admin-email admin@example.com \\
      --admin-password P --fanout-count 3
  flotilla-loadtest ... --scenario version      # the /version ceiling, same load
  flotilla-loadtest ... --os ubuntu,rocky --software-per-host 600 --software-fail-prob 0.5
  flotilla-loadtest write-osv-fixture vulndb --records 50000  # OSV/KEV/EPSS for the pools";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// Hosts enroll, then check in (distributed read/write), log and refresh config
    Checkin,
    /// As checkin, plus an admin running live queries to all hosts, timed end to end
    Fanout,
    /// Same connections and request rate as checkin, every request a GET /version
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Connections {
    /// One keep-alive connection per osquery thread, as osqueryd does (faithful)
    PerThread,
    /// One keep-alive connection per host (cheaper; overlapping requests open a second one)
    Shared,
    /// All hosts share --pool-size keep-alive connections, one request on each at a time, as
    /// when they reach the server through a load balancer that reuses its backend connections
    Pooled,
}

#[derive(Debug, Parser)]
#[command(
    name = "flotilla-loadtest",
    version,
    about = "Run simulated osquery agents against an osquery TLS server and report latency \
             percentiles per endpoint",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// Server base URL, e.g. https://localhost:8443
    #[arg(long, required = true)]
    server: Option<String>,
    /// PEM file with the CA(s) to trust (the agents' --tls_server_certs)
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Do not verify the server certificate
    #[arg(long)]
    insecure: bool,
    /// Enroll secret
    #[arg(long, env = "FLOTILLA_ENROLL_SECRET", required = true)]
    enroll_secret: Option<String>,
    /// Number of simulated hosts
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Spread agent start-ups evenly over this period
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    start_period: Duration,
    /// When the steady state starts (the summary's steady_state block), counted from the
    /// start; default: --start-period plus two distributed intervals, when every host has
    /// enrolled and sent its first details
    #[arg(long, value_parser = parse_duration)]
    steady_after: Option<Duration>,
    /// distributed_interval of every agent (check-in period)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    distributed_interval: Duration,
    /// config_refresh of every agent (0s = fetch the config only at start)
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    config_interval: Duration,
    /// logger_tls_period of every agent
    #[arg(long, alias = "logger-period", default_value = "10s", value_parser = parse_duration)]
    logger_interval: Duration,
    /// How long the test runs (from the first agent's start); a fanout run ends earlier once
    /// its campaigns are done
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// OS templates (ubuntu, macos, windows, rocky), assigned round-robin
    #[arg(long, value_delimiter = ',', default_value = "ubuntu,macos,windows")]
    os: Vec<OsTemplate>,
    /// What to run
    #[arg(long, value_enum, default_value_t = Scenario::Checkin)]
    scenario: Scenario,
    /// Keep-alive connections per host
    #[arg(long, value_enum, default_value_t = Connections::PerThread)]
    connections: Connections,
    /// --connections pooled: keep-alive connections all hosts share (a request waits for a
    /// free one); also the bound on fleetd requests in flight (--orbit-share)
    #[arg(long, default_value_t = 256)]
    pool_size: usize,
    /// Rows returned by each successful live query
    #[arg(long, default_value_t = 1)]
    rows_per_result: usize,
    /// Probability that a live query fails (status 1 and an error message)
    #[arg(long, default_value_t = 0.0)]
    live_query_error_prob: f64,
    /// Probability that a live query succeeds with no rows
    #[arg(long, default_value_t = 0.2)]
    live_query_no_result_prob: f64,
    /// Packages each host reports to Fleet's software query (default: 400 on Linux, 150 on
    /// macOS and Windows)
    #[arg(long)]
    software_per_host: Option<usize>,
    /// Distinct (name, version) packages in each OS's pool the hosts draw from
    #[arg(long, default_value_t = DEFAULT_POOL_SIZE)]
    software_pool: usize,
    /// Probability that a host's software query fails in a round (status 1 and an error
    /// message), as osquery-perf's -software_query_fail_prob
    #[arg(long, default_value_t = 0.0)]
    software_fail_prob: f64,
    /// Spread the hosts' connections over source addresses 127.0.0.1..=127.0.0.N (only when
    /// the server is on IPv4 loopback); default: enough for ~20,000 connections per address
    #[arg(long, conflicts_with = "local_address", value_parser = clap::value_parser!(u8).range(1..=254))]
    source_addresses: Option<u8>,
    /// Local address to bind all outgoing connections to
    #[arg(long)]
    local_address: Option<IpAddr>,
    /// Write the JSON summary to this file too
    #[arg(long)]
    summary: Option<PathBuf>,
    /// At the end, write every enrolled host's node key to this file, one a line (the server
    /// keeps only their digests), for tools that then speak for those hosts (wrk in
    /// benches/scripts/ceiling.sh)
    #[arg(long, value_name = "PATH")]
    node_keys_out: Option<PathBuf>,
    /// No progress bar (it is also hidden when stderr is not a terminal)
    #[arg(long, short)]
    quiet: bool,
    /// fanout: admin e-mail for POST /api/latest/fleet/login
    #[arg(long, env = "FLOTILLA_ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// fanout: admin password
    #[arg(long, env = "FLOTILLA_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// fanout: SQL of the live query (sent to every host in "All Hosts")
    #[arg(long, default_value = "SELECT pid, name, path FROM processes;")]
    fanout_sql: String,
    /// fanout: campaigns to run, one after another
    #[arg(long, default_value_t = 1)]
    fanout_count: usize,
    /// fanout: start the first campaign this long after the run starts, instead of once every
    /// host is enrolled and in the "All Hosts" label
    #[arg(long, value_parser = parse_duration)]
    fanout_after: Option<Duration>,
    /// fanout: give up on a campaign this long after starting it
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    fanout_timeout: Duration,
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
    /// Seed for host identifiers (same seed = same hosts); random by default
    #[arg(long)]
    seed: Option<u64>,
    /// Resolve a host name to an address, as HOST=IP:PORT (e.g. localhost=127.0.0.1:8443)
    #[arg(long)]
    resolve: Option<String>,
    /// Share of the hosts that also run fleetd — orbit (enroll, config every 30 s, ping every
    /// 5 min, device token set and rotated hourly with a remote check every 5 min) and Fleet
    /// Desktop (its summary every 5 min) — beside osqueryd, which then answers orbit_info
    #[arg(long, default_value_t = 0.0)]
    orbit_share: f64,
    /// Something other than a load run
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write an OSV feed for the simulated hosts' packages (one record per known-vulnerable
    /// package, a withdrawn one, optional synthetic padding) with CISA KEV and EPSS files
    WriteOsvFixture(FixtureArgs),
}

#[derive(Debug, clap::Args)]
struct FixtureArgs {
    /// Directory to write into (created if missing)
    dir: PathBuf,
    /// Synthetic records to add, for the pools' synthetic packages (some affect pool
    /// versions, most do not), written as one gzipped JSON array
    #[arg(long, default_value_t = 0)]
    records: usize,
    /// --software-pool of the runs the feed is for
    #[arg(long, default_value_t = DEFAULT_POOL_SIZE)]
    software_pool: usize,
}

/// `write-osv-fixture DIR`: writes the files and prints what it wrote as JSON.
fn write_osv_fixture(args: &FixtureArgs) -> anyhow::Result<()> {
    if args.software_pool == 0 {
        bail!("--software-pool must be at least 1");
    }
    let options = FixtureOptions {
        pool_size: args.software_pool,
        records: args.records,
    };
    let summary = write_fixture(&args.dir, options)
        .with_context(|| format!("writing the fixture into {}", args.dir.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

impl Cli {
    /// `--server` (clap requires it unless a subcommand runs).
    fn server(&self) -> &str {
        self.server.as_deref().unwrap_or_default()
    }

    /// `--enroll-secret` (clap requires it unless a subcommand runs).
    fn enroll_secret(&self) -> &str {
        self.enroll_secret.as_deref().unwrap_or_default()
    }

    /// The software options of the hosts.
    fn software_options(&self) -> SoftwareOptions {
        SoftwareOptions {
            per_host: self.software_per_host,
            pool_size: self.software_pool,
            fail_prob: self.software_fail_prob,
        }
    }

    /// The options as recorded in the summary (no secrets).
    fn options(&self, source_addresses: Option<u8>) -> Value {
        let s = |d: Duration| d.as_secs_f64();
        json!({
            "server": self.server(),
            "ca": self.ca,
            "insecure": self.insecure,
            "hosts": self.hosts,
            "start_period_s": s(self.start_period),
            "distributed_interval_s": s(self.distributed_interval),
            "config_interval_s": s(self.config_interval),
            "logger_interval_s": s(self.logger_interval),
            "duration_s": s(self.duration),
            "os": self.os.iter().map(|o| o.name()).collect::<Vec<_>>(),
            "scenario": self.scenario,
            "connections": self.connections,
            "rows_per_result": self.rows_per_result,
            "live_query_error_prob": self.live_query_error_prob,
            "live_query_no_result_prob": self.live_query_no_result_prob,
            "software_per_host": self.software_per_host,
            "software_pool": self.software_pool,
            "software_fail_prob": self.software_fail_prob,
            "source_addresses": source_addresses,
            "local_address": self.local_address,
            "fanout_sql": (self.scenario == Scenario::Fanout).then_some(&self.fanout_sql),
            "fanout_count": (self.scenario == Scenario::Fanout).then_some(self.fanout_count),
            "fanout_after_s": self.fanout_after.map(s),
            "fanout_timeout_s": (self.scenario == Scenario::Fanout).then_some(s(self.fanout_timeout)),
            "prefix": self.prefix,
            "osquery_version": self.osquery_version,
            "node_key_header": !self.no_node_key_header,
            "honor_server_options": self.honor_server_options,
            "resolve": self.resolve,
            "orbit_share": self.orbit_share,
        })
    }
}

/// One endpoint in the summary.
#[derive(Debug, Serialize)]
struct EndpointSummary {
    requests: u64,
    errors: u64,
    latency_ms: Percentiles,
}

/// Requests and latencies after enrollment: what a running fleet sees.
#[derive(Debug, Serialize)]
struct SteadyState {
    /// Seconds from the start at which the steady state began.
    from_s: f64,
    requests: u64,
    errors: u64,
    request_rate_per_s: f64,
    endpoints: serde_json::Map<String, Value>,
}

/// The load tester's own resource use.
#[derive(Debug, Default, Serialize)]
struct ClientUsage {
    /// User + system CPU time of this process.
    cpu_s: f64,
    /// cpu_s / wall time × 100 (200 = two cores busy).
    cpu_percent: f64,
    rss_mb_before_agents: f64,
    /// RSS with every agent built, before any connection (the per-host state).
    rss_mb_agents_built: f64,
    /// RSS when every host had enrolled (or at the end, if they never all did).
    rss_mb_all_enrolled: f64,
    rss_mb_peak: f64,
    /// (rss_mb_all_enrolled − rss_mb_before_agents) / hosts.
    rss_per_host_kb: f64,
}

/// What the run prints on stdout.
#[derive(Debug, Serialize)]
struct Summary {
    scenario: Scenario,
    hosts: usize,
    enrolled_hosts: u64,
    started_at: String,
    started_at_unix: u64,
    duration_s: f64,
    seed: u64,
    requests: u64,
    errors: u64,
    request_rate_per_s: f64,
    enrolls: u64,
    node_invalid: u64,
    endpoints: serde_json::Map<String, Value>,
    /// The same from the steady-state start on (see --steady-after).
    steady_state: SteadyState,
    client: ClientUsage,
    options: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    fanout: Option<FanoutReport>,
}

fn endpoints_summary(
    stats: &AgentStats,
    counters: &AgentCounters,
) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    for e in Endpoint::ALL {
        let s = stats.endpoint(e);
        if s.requests == 0
            && (e.is_fleetd() || matches!(e, Endpoint::CarveBegin | Endpoint::CarveBlock))
        {
            continue;
        }
        let latency_ms = counters
            .latency(e)
            .map(|h| Percentiles::of(&h))
            .unwrap_or_default();
        let summary = EndpointSummary {
            requests: s.requests,
            errors: s.errors,
            latency_ms,
        };
        map.insert(
            e.name().to_owned(),
            serde_json::to_value(summary).expect("summary serialises"),
        );
    }
    map
}

fn steady_summary(counters: &AgentCounters, from: Duration, elapsed: Duration) -> SteadyState {
    let mut endpoints = serde_json::Map::new();
    let (mut requests, mut errors) = (0, 0);
    for e in Endpoint::ALL {
        let Some((count, failed, latency)) = counters.steady(e) else {
            continue;
        };
        if count == 0 && matches!(e, Endpoint::CarveBegin | Endpoint::CarveBlock) {
            continue;
        }
        requests += count;
        errors += failed;
        let summary = EndpointSummary {
            requests: count,
            errors: failed,
            latency_ms: Percentiles::of(&latency),
        };
        endpoints.insert(
            e.name().to_owned(),
            serde_json::to_value(summary).expect("summary serialises"),
        );
    }
    let window = elapsed.saturating_sub(from).as_secs_f64();
    SteadyState {
        from_s: from.as_secs_f64(),
        requests,
        errors,
        request_rate_per_s: if window > 0.0 {
            requests as f64 / window
        } else {
            0.0
        },
        endpoints,
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

/// This process's resident set and peak, in MB, from /proc/self/status (0 elsewhere).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU seconds of this process, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    (ticks(11) + ticks(12)) / hz
}

/// Raise the soft open-files limit to the hard limit; warn when it is below `needed`.
fn raise_open_files(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    if limit.rlim_cur < needed {
        eprintln!(
            "warning: open-files limit {} is below the ~{needed} this run needs; raise it \
             (ulimit -n / limits.conf) or expect connection errors",
            limit.rlim_cur
        );
    }
}

/// The server's IPv4 loopback address, if it has one (from --resolve or DNS).
async fn loopback_v4(
    server: &reqwest::Url,
    resolve: &Option<(String, SocketAddr)>,
) -> Option<SocketAddr> {
    let host = server.host_str()?;
    let port = server.port_or_known_default()?;
    if let Some((h, addr)) = resolve
        && h == host
    {
        return (addr.is_ipv4() && addr.ip().is_loopback()).then_some(*addr);
    }
    let addrs = tokio::net::lookup_host((host, port)).await.ok()?;
    addrs
        .into_iter()
        .find(|a| a.is_ipv4() && a.ip().is_loopback())
}

/// Source addresses to use by default: ~20,000 connections each, at most 254.
fn auto_source_addresses(hosts: usize, connections_per_host: usize) -> u8 {
    let needed = (hosts * connections_per_host).div_ceil(20_000);
    needed.clamp(1, 254) as u8
}

fn source_address(i: usize, n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(n)) as u8))
}

fn progress_bar(hosts: usize, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::new(hosts as u64);
    if quiet || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    } else {
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(2));
    }
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} enrolled {pos}/{len} [{bar:24}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

/// mimalloc, as the server uses: glibc's allocator was the load tester's biggest cost too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    install_crypto_provider();
    let cli = Cli::parse();
    if let Some(Command::WriteOsvFixture(args)) = &cli.command {
        return write_osv_fixture(args);
    }
    let fanout_login = cli.check()?;
    let network = Network::prepare(&cli).await?;
    let seed = cli.seed.unwrap_or_else(rand::random);

    let (rss_before, _) = memory_mb();
    let counters = Arc::new(AgentCounters::with_histograms());
    let sends = (cli.scenario == Scenario::Fanout).then(|| Arc::new(SendTimes::new(cli.hosts)));
    let (agents, index) = build_agents(&cli, &network, seed, &counters, sends.as_ref())?;
    let key_readers: Vec<_> = match cli.node_keys_out {
        Some(_) => agents.iter().map(SimAgent::key_reader).collect(),
        None => Vec::new(),
    };
    let (rss_built, _) = memory_mb();

    let run = Run::start(&cli);
    counters.steady_from((run.started + run.steady_after).into_std());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fleetds = build_fleetds(&cli, &network, &agents, &counters)?;
    let orbit_hosts = fleetds.len();
    let mut fleetd_tasks = spawn_fleetds(&cli, &run, fleetds, stop_rx.clone());
    let mut tasks = spawn_agents(&cli, &run, agents, orbit_hosts, stop_rx);
    let pb = progress_bar(cli.hosts, cli.quiet);
    let rss_enrolled = Arc::new(std::sync::Mutex::new(None::<f64>));
    let progress = spawn_progress(&cli, counters.clone(), pb.clone(), rss_enrolled.clone());
    let fanout = match fanout_login {
        Some(login) => Some(spawn_fanout(
            &cli, &network, &run, login, sends, index, &counters, &pb, stop_tx,
        )),
        None => {
            drop(stop_tx);
            None
        }
    };

    // Every agent counts into the shared counters, so the totals are read from them (an
    // agent's own stats() would be the same shared figures).
    while let Some(res) = tasks.join_next().await {
        res.context("agent task panicked")?;
    }
    while let Some(res) = fleetd_tasks.join_next().await {
        res.context("fleetd task panicked")?;
    }
    if let Some(path) = &cli.node_keys_out {
        let keys: String = key_readers
            .iter()
            .filter_map(|read| read())
            .map(|key| key + "\n")
            .collect();
        std::fs::write(path, keys).with_context(|| format!("writing {}", path.display()))?;
    }
    let total = counters.snapshot(false);
    let elapsed = run.started.elapsed();
    let fanout = match fanout {
        Some(task) => Some(task.await.context("fanout task panicked")??),
        None => None,
    };
    progress.abort();
    pb.finish_and_clear();

    let memory = Memory {
        before: rss_before,
        built: rss_built,
        all_enrolled: *rss_enrolled.lock().unwrap_or_else(|p| p.into_inner()),
    };
    let summary = summarize(
        &cli, &network, &run, seed, &counters, &total, elapsed, memory, fanout,
    );
    write_summary(&summary, cli.summary.as_deref())
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

impl Cli {
    /// Rejects option combinations clap cannot; the admin's login for `--scenario fanout`.
    fn check(&self) -> anyhow::Result<Option<(String, String)>> {
        if self.os.is_empty() {
            bail!("--os needs at least one template");
        }
        if !(0.0..=1.0).contains(&self.live_query_error_prob)
            || !(0.0..=1.0).contains(&self.live_query_no_result_prob)
        {
            bail!("--live-query-error-prob and --live-query-no-result-prob must be within 0..1");
        }
        if !(0.0..=1.0).contains(&self.software_fail_prob) {
            bail!("--software-fail-prob must be within 0..1");
        }
        if self.software_pool == 0 {
            bail!("--software-pool must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.orbit_share) {
            bail!("--orbit-share must be within 0..1");
        }
        if self.scenario != Scenario::Fanout {
            return Ok(None);
        }
        Ok(Some((
            self.admin_email
                .clone()
                .context("--scenario fanout needs --admin-email")?,
            self.admin_password
                .clone()
                .context("--scenario fanout needs --admin-password")?,
        )))
    }

    /// Keep-alive connections each host holds.
    fn connections_per_host(&self) -> usize {
        match (self.connections, self.config_interval.is_zero()) {
            (Connections::Shared | Connections::Pooled, _) => 1,
            (Connections::PerThread, true) => 3,
            (Connections::PerThread, false) => 4,
        }
    }
}

/// How every agent reaches the server.
struct Network {
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `--resolve`, or the server's name pinned to its IPv4 loopback address.
    resolve: Option<(String, SocketAddr)>,
    /// How many 127.0.0.x addresses the agents' connections come from, when spread.
    source_addresses: Option<u8>,
}

impl Network {
    /// Reads the CA, raises the open-files limit for the connections the run needs and, when
    /// the server is on IPv4 loopback, spreads source addresses over 127.0.0.x and pins the
    /// server's name to that IPv4 address so every connection can bind one.
    async fn prepare(cli: &Cli) -> anyhow::Result<Network> {
        let server_url = reqwest::Url::parse(cli.server()).context("--server")?;
        let ca_pem = match &cli.ca {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        let tls = tls_client_config(ca_pem.as_deref(), cli.insecure)
            .context("TLS configuration")?
            .map(Arc::new);
        let mut resolve = cli.resolve.as_deref().map(parse_resolve).transpose()?;

        let per_host = cli.connections_per_host();
        let connections = match cli.connections {
            Connections::Pooled => cli.pool_size,
            _ => cli.hosts * per_host,
        };
        raise_open_files((connections + 1024) as u64);

        let mut source_addresses = None;
        if cli.local_address.is_none() && cli.connections != Connections::Pooled {
            match loopback_v4(&server_url, &resolve).await {
                Some(addr) => {
                    let n = cli
                        .source_addresses
                        .unwrap_or_else(|| auto_source_addresses(cli.hosts, per_host));
                    source_addresses = Some(n);
                    if resolve.is_none() {
                        let host = server_url.host_str().unwrap_or_default().to_owned();
                        resolve = Some((host, addr));
                    }
                }
                None if cli.source_addresses.is_some_and(|n| n > 1) => {
                    bail!("--source-addresses needs a server on IPv4 loopback (127.0.0.0/8)")
                }
                None => {}
            }
        }
        Ok(Network {
            tls,
            resolve,
            source_addresses,
        })
    }
}

/// Builds every agent (not started yet) and, for the fan-out, the index of their hostnames.
fn build_agents(
    cli: &Cli,
    network: &Network,
    seed: u64,
    counters: &Arc<AgentCounters>,
    sends: Option<&Arc<SendTimes>>,
) -> anyhow::Result<(Vec<SimAgent>, Arc<HostIndex>)> {
    let mut hostnames = Vec::new();
    let mut agents = Vec::with_capacity(cli.hosts);
    let endpoints = EndpointPaths::with_prefix(&cli.prefix);
    let mut pool = None;
    for i in 0..cli.hosts {
        let template = cli.os[i % cli.os.len()];
        let host_identifier = host_identifier(seed, i);
        let mut cfg = AgentConfig::new(
            cli.server().to_owned(),
            cli.enroll_secret().to_owned(),
            host_identifier,
            template,
        );
        cfg.tls = network.tls.clone();
        cfg.insecure = cli.insecure;
        cfg.endpoints = endpoints.clone();
        cfg.send_node_key_header = !cli.no_node_key_header;
        cfg.osquery_version = cli.osquery_version.clone();
        cfg.resolve = network.resolve.clone();
        cfg.local_address = match network.source_addresses {
            Some(n) => Some(source_address(i, n)),
            None => cli.local_address,
        };
        cfg.counters = Some(counters.clone());
        cfg.share_connection = cli.connections == Connections::Shared;
        if cli.connections == Connections::Pooled {
            if pool.is_none() {
                pool = Some(
                    flotilla_loadtest::ConnectionPool::new(&cfg, cli.pool_size)
                        .context("building the shared connection pool")?,
                );
            }
            cfg.pool = pool.clone();
        }
        if let Some(sends) = sends {
            cfg.write_hook = Some(sends.hook(i));
        }
        let agent = SimAgent::new(cfg).with_context(|| format!("building agent {i}"))?;
        if sends.is_some() {
            hostnames.push(agent.profile().hostname.clone());
        }
        agents.push(agent);
    }
    let index = Arc::new(HostIndex::new(hostnames.iter().map(String::as_str)));
    Ok((agents, index))
}

/// The fleetd (orbit and Desktop) of the first `--orbit-share` of the hosts. orbit's hardware
/// UUID is the host's identifier, as osqueryd started by orbit with `--host_identifier=uuid`
/// reports it. All of them share one HTTP client and at most `--pool-size` requests in flight
/// (they are few: one every 30 s per host).
fn build_fleetds(
    cli: &Cli,
    network: &Network,
    agents: &[SimAgent],
    counters: &Arc<AgentCounters>,
) -> anyhow::Result<Vec<SimFleetd>> {
    let count = (cli.orbit_share * agents.len() as f64).round() as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let client =
        flotilla_loadtest::fleetd::client(network.tls.as_deref().cloned(), network.resolve.clone())
            .context("building fleetd's HTTP client")?;
    // fleetd's requests share `--pool-size` connections' worth of concurrency, as behind a
    // load balancer: without a bound a burst of enrollments opens a socket per waiting request.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(cli.pool_size.max(1)));
    Ok(agents[..count]
        .iter()
        .map(|agent| {
            let profile = agent.profile();
            let host = FleetdHost {
                hardware_uuid: profile.host_identifier.clone(),
                hardware_serial: profile.hardware_serial.clone(),
                hostname: profile.hostname.clone(),
                computer_name: profile.hostname.clone(),
                hardware_model: String::new(),
                platform: profile.template.platform().to_owned(),
                osquery_identifier: String::new(),
            };
            SimFleetd::with_client(
                cli.server(),
                cli.enroll_secret(),
                host,
                FleetdIntervals::default(),
                client.clone(),
            )
            .with_counters(counters.clone())
            .with_in_flight_limit(in_flight.clone())
        })
        .collect())
}

/// Starts each fleetd at its host's offset within `--start-period`; it ticks every second
/// until the deadline or the fan-out's end.
fn spawn_fleetds(
    cli: &Cli,
    run: &Run,
    fleetds: Vec<SimFleetd>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<()> {
    let (started, deadline) = (run.started, run.deadline);
    let hosts = cli.hosts.max(1) as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, fleetd) in fleetds.into_iter().enumerate() {
        let offset = cli.start_period.mul_f64(i as f64 / f64::from(hosts));
        let mut stop = stop.clone();
        tasks.spawn(async move {
            if started + offset >= deadline {
                return;
            }
            tokio::time::sleep_until(started + offset).await;
            let ticks = async {
                loop {
                    fleetd.tick().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            tokio::select! {
                _ = ticks => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = async {
                    if stop.wait_for(|stopped| *stopped).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {}
            }
        });
    }
    tasks
}

/// When the run started and when it ends.
struct Run {
    started_at_unix: u64,
    started: Instant,
    deadline: Instant,
    /// From when on exchanges count in the steady state.
    steady_after: Duration,
}

impl Run {
    fn start(cli: &Cli) -> Run {
        let started_at_unix = unix_now();
        let started = Instant::now();
        Run {
            started_at_unix,
            started,
            deadline: started + cli.duration,
            steady_after: cli
                .steady_after
                .unwrap_or(cli.start_period + 2 * cli.distributed_interval),
        }
    }
}

/// Starts every agent at its offset within `--start-period`; each runs until the deadline, or
/// until the fan-out admin is done (`stop`).
fn spawn_agents(
    cli: &Cli,
    run: &Run,
    agents: Vec<SimAgent>,
    orbit_hosts: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinSet<AgentStats> {
    let intervals = Intervals {
        distributed: cli.distributed_interval,
        config_refresh: cli.config_interval,
        logger_period: cli.logger_interval,
        honor_server_options: cli.honor_server_options,
        ..Intervals::default()
    };
    let live = LiveQueryProfile {
        rows_per_result: cli.rows_per_result,
        error_prob: cli.live_query_error_prob,
        no_result_prob: cli.live_query_no_result_prob,
    };
    let software = Arc::new(Software::new(cli.software_options()));
    let (started, deadline) = (run.started, run.deadline);
    let hosts = cli.hosts.max(1) as u32;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, agent) in agents.into_iter().enumerate() {
        let software = software.clone();
        let offset = cli.start_period.mul_f64(i as f64 / f64::from(hosts));
        let intervals = intervals.clone();
        let mut stop = stop.clone();
        let scenario = cli.scenario;
        tasks.spawn(async move {
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = async {
                        // Without a fan-out the sender is gone at once: wait for the deadline.
                        if stop.wait_for(|stopped| *stopped).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => {}
                }
            };
            if started + offset >= deadline {
                return agent.stats();
            }
            tokio::time::sleep_until(started + offset).await;
            if scenario == Scenario::Version {
                return agent.run_version_only(intervals, shutdown).await;
            }
            let mut profile = agent.profile().clone();
            if i < orbit_hosts {
                // osqueryd started by orbit has orbit's extension table.
                profile.orbit = Some(FLEETD_VERSION.to_owned());
            }
            let answerer = TemplateAnswerer::new(profile, live).with_software(software);
            agent.run(intervals, &answerer, shutdown).await
        });
    }
    tasks
}

/// Every second: the request rate, the last second's p99, errors, enrolled hosts; and the
/// resident set the moment every host is enrolled, into `rss_enrolled`.
fn spawn_progress(
    cli: &Cli,
    counters: Arc<AgentCounters>,
    pb: ProgressBar,
    rss_enrolled: Arc<std::sync::Mutex<Option<f64>>>,
) -> tokio::task::JoinHandle<()> {
    let hosts = cli.hosts as u64;
    let version = cli.scenario == Scenario::Version;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let (requests, errors) = counters.totals();
            let rate = (requests - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
            last = (now, requests);
            let p99 = counters
                .take_interval()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0);
            // The version scenario has no enrollments: count hosts that started instead.
            let enrolled = if version {
                counters.latency(Endpoint::Enroll).map_or(0, |h| h.len())
            } else {
                counters.key_holders()
            };
            pb.set_position(enrolled);
            let p99 = p99.map_or("-".into(), |v| format!("{v:.1} ms"));
            pb.set_message(format!(
                "{rate:.0} req/s | p99 {p99} | {requests} requests | {errors} errors"
            ));
            let mut rss = rss_enrolled.lock().unwrap_or_else(|p| p.into_inner());
            if rss.is_none() && enrolled >= hosts {
                *rss = Some(memory_mb().0);
            }
        }
    })
}

/// Starts the fan-out admin; when its campaigns are done it tells the agents to stop.
#[allow(clippy::too_many_arguments)]
fn spawn_fanout(
    cli: &Cli,
    network: &Network,
    run: &Run,
    (email, password): (String, String),
    sends: Option<Arc<SendTimes>>,
    index: Arc<HostIndex>,
    counters: &Arc<AgentCounters>,
    pb: &ProgressBar,
    stop: tokio::sync::watch::Sender<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<FanoutReport>> {
    let opts = FanoutOptions {
        server: cli.server().to_owned(),
        tls: network.tls.clone(),
        resolve: network.resolve.clone(),
        email,
        password,
        sql: cli.fanout_sql.clone(),
        count: cli.fanout_count,
        campaign_timeout: cli.fanout_timeout,
    };
    let sends = sends.expect("fanout send times");
    let counters = counters.clone();
    let after = cli.fanout_after;
    let hosts = cli.hosts as u64;
    let started = run.started;
    let pb = pb.clone();
    tokio::spawn(async move {
        let result = run_fanout(opts, sends, index, counters, after, hosts, started, pb).await;
        let _ = stop.send(true);
        result
    })
}

/// The load tester's resident set, in MB, at the points the summary reports.
struct Memory {
    before: f64,
    built: f64,
    /// When every host had enrolled, if they all did.
    all_enrolled: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    cli: &Cli,
    network: &Network,
    run: &Run,
    seed: u64,
    counters: &AgentCounters,
    total: &AgentStats,
    elapsed: Duration,
    memory: Memory,
    fanout: Option<FanoutReport>,
) -> Summary {
    let (rss_end, rss_peak) = memory_mb();
    let rss_all = memory.all_enrolled.unwrap_or(rss_end);
    let cpu = cpu_seconds();
    let requests = total.total_requests();
    Summary {
        scenario: cli.scenario,
        hosts: cli.hosts,
        enrolled_hosts: counters.key_holders(),
        started_at: calendar_time(run.started_at_unix),
        started_at_unix: run.started_at_unix,
        duration_s: elapsed.as_secs_f64(),
        seed,
        requests,
        errors: total.total_errors(),
        request_rate_per_s: requests as f64 / elapsed.as_secs_f64().max(1e-3),
        enrolls: total.enrolls,
        node_invalid: total.node_invalid,
        endpoints: endpoints_summary(total, counters),
        steady_state: steady_summary(counters, run.steady_after, elapsed),
        client: ClientUsage {
            cpu_s: cpu,
            cpu_percent: cpu / elapsed.as_secs_f64().max(1e-3) * 100.0,
            rss_mb_before_agents: memory.before,
            rss_mb_agents_built: memory.built,
            rss_mb_all_enrolled: rss_all,
            rss_mb_peak: rss_peak,
            rss_per_host_kb: (rss_all - memory.before).max(0.0) * 1024.0 / cli.hosts.max(1) as f64,
        },
        options: cli.options(network.source_addresses),
        fanout,
    }
}

/// The summary as pretty JSON on stdout, and into `path` when given.
fn write_summary(summary: &Summary, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(summary)?;
    if let Some(path) = path {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    Ok(())
}

/// Wait until every host is enrolled and in "All Hosts" (or `after`), log in, run the
/// campaigns one after another.
#[allow(clippy::too_many_arguments)]
async fn run_fanout(
    opts: FanoutOptions,
    sends: Arc<SendTimes>,
    index: Arc<HostIndex>,
    counters: Arc<AgentCounters>,
    after: Option<Duration>,
    hosts: u64,
    started: Instant,
    pb: ProgressBar,
) -> anyhow::Result<FanoutReport> {
    let admin = Admin::login(opts.clone())
        .await
        .context("fanout admin login")?;
    let in_label = match after {
        Some(after) => {
            tokio::time::sleep_until(started + after).await;
            admin.all_hosts_count().await.unwrap_or(0)
        }
        None => loop {
            if counters.key_holders() >= hosts {
                let in_label = admin.all_hosts_count().await?;
                if in_label >= hosts {
                    break in_label;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        },
    };
    let started_after_s = started.elapsed().as_secs_f64();
    let mut campaigns = Vec::with_capacity(opts.count);
    let mut previous = 0;
    for n in 0..opts.count {
        pb.println(format!(
            "fanout: campaign {} of {} starting",
            n + 1,
            opts.count
        ));
        let (id, tracker) = admin
            .run_campaign(previous, &sends, &index)
            .await
            .with_context(|| format!("fanout campaign {}", n + 1))?;
        previous = id;
        campaigns.push(tracker.report(id));
    }
    Ok(FanoutReport {
        sql: opts.sql,
        started_after_s,
        hosts_in_label: in_label,
        campaigns,
    })
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
            "--logger-period",
            "3s",
        ])
        .unwrap();
        assert_eq!(cli.start_period, Duration::from_millis(500));
        assert_eq!(cli.os, vec![OsTemplate::Ubuntu, OsTemplate::Windows]);
        assert_eq!(cli.duration, Duration::from_secs(30));
        assert_eq!(
            cli.logger_interval,
            Duration::from_secs(3),
            "old name still works"
        );
        assert_eq!(cli.distributed_interval, Duration::from_secs(10));
        assert_eq!(cli.config_interval, Duration::from_secs(60));
        assert_eq!(cli.scenario, Scenario::Checkin);
        assert_eq!(cli.connections, Connections::PerThread);
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
        let fanout = Cli::try_parse_from([
            "x",
            "--server",
            "u",
            "--enroll-secret",
            "s",
            "--scenario",
            "fanout",
            "--logger-interval",
            "1s",
            "--source-addresses",
            "8",
            "--fanout-count",
            "2",
        ])
        .unwrap();
        assert_eq!(fanout.scenario, Scenario::Fanout);
        assert_eq!(fanout.source_addresses, Some(8));
        assert_eq!(fanout.fanout_count, 2);
        let options = fanout.options(Some(8));
        assert_eq!(options["logger_interval_s"], 1.0);
        assert_eq!(options["scenario"], "fanout");
        assert!(
            options.get("enroll_secret").is_none(),
            "no secrets in the summary"
        );
    }

    #[test]
    fn software_flags_and_the_fixture_subcommand() {
        let run = Cli::try_parse_from([
            "x",
            "--server",
            "u",
            "--enroll-secret",
            "s",
            "--os",
            "rocky,ubuntu",
            "--software-per-host",
            "600",
            "--software-fail-prob",
            "0.5",
        ])
        .unwrap();
        assert_eq!(run.os, vec![OsTemplate::Rocky, OsTemplate::Ubuntu]);
        assert!(run.command.is_none());
        let software = run.software_options();
        assert_eq!(software.per_host, Some(600));
        assert_eq!(software.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(software.fail_prob, 0.5);
        assert_eq!(run.options(None)["software_fail_prob"], 0.5);
        let defaults = Cli::try_parse_from(["x", "--server", "u", "--enroll-secret", "s"]).unwrap();
        assert_eq!(defaults.software_options(), SoftwareOptions::default());
        assert_eq!(
            defaults.os,
            vec![OsTemplate::Ubuntu, OsTemplate::MacOs, OsTemplate::Windows],
            "the default mix is unchanged"
        );
        let bad = Cli::try_parse_from([
            "x",
            "--server",
            "u",
            "--enroll-secret",
            "s",
            "--software-fail-prob",
            "2",
        ])
        .unwrap();
        assert!(bad.check().is_err());

        // The subcommand needs neither --server nor --enroll-secret.
        let fixture =
            Cli::try_parse_from(["x", "write-osv-fixture", "out", "--records", "50000"]).unwrap();
        match fixture.command {
            Some(Command::WriteOsvFixture(args)) => {
                assert_eq!(args.dir, PathBuf::from("out"));
                assert_eq!(args.records, 50_000);
                assert_eq!(args.software_pool, DEFAULT_POOL_SIZE);
            }
            None => panic!("subcommand not parsed"),
        }
        assert!(Cli::try_parse_from(["x", "--hosts", "3", "write-osv-fixture", "out"]).is_err());
        assert!(Cli::try_parse_from(["x", "write-osv-fixture"]).is_err());
    }

    #[test]
    fn source_addresses_cycle_over_loopback() {
        assert_eq!(
            source_address(0, 3),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(
            source_address(2, 3),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))
        );
        assert_eq!(
            source_address(3, 3),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))
        );
        assert_eq!(auto_source_addresses(300, 4), 1);
        assert_eq!(auto_source_addresses(100_000, 4), 20);
        assert_eq!(auto_source_addresses(10_000_000, 4), 254);
    }

    #[test]
    fn resolve_flag() {
        let (h, a) = parse_resolve("localhost=127.0.0.1:8443").unwrap();
        assert_eq!(h, "localhost");
        assert_eq!(a.port(), 8443);
        assert!(parse_resolve("localhost").is_err());
    }

    #[test]
    fn own_usage_is_readable() {
        let (rss, peak) = memory_mb();
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_seconds() > 0.0);
    }
}
