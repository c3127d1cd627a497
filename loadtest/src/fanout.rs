//! The fan-out scenario: an admin starts a live query to every host while the simulated
//! hosts run, watches it over Fleet's results websocket, and the load tester times it.
//!
//! Two clocks meet here, both this process's monotonic clock:
//! - [`SendTimes`] is fed by every agent's [`WriteHook`]: the moment before a
//!   `distributed/write` carrying a result of the tracked campaign is sent.
//! - [`CampaignTracker`] is fed by the websocket subscriber: the moment each `result` message
//!   is received. A result names its host by hostname; [`HostIndex`] maps it back to agents.
//!
//! Engine latency per host = received − sent; arrival times are measured from the moment
//! just before the campaign was started (`POST /queries/run_by_identifiers`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::agent::WriteHook;
use crate::stats::Percentiles;
use crate::write::WriteBody;

/// Name prefix of the distributed queries a Fleet-style server sends for live queries.
pub const CAMPAIGN_QUERY_PREFIX: &str = "fleet_distributed_query_";

/// The campaign id in a distributed query name, if it is a live-query name.
pub fn campaign_of(query_name: &str) -> Option<u64> {
    query_name.strip_prefix(CAMPAIGN_QUERY_PREFIX)?.parse().ok()
}

/// When each agent last sent a `distributed/write` carrying a result of a tracked campaign.
///
/// Campaigns with an id above a floor are tracked ([`SendTimes::track_after`]), so a result
/// written before the campaign's id came back from the API is not missed. Lock-free: one
/// atomic per agent.
#[derive(Debug)]
pub struct SendTimes {
    epoch: Instant,
    floor: AtomicU64,
    /// Nanoseconds since `epoch` plus one; 0 = nothing sent.
    sent: Vec<AtomicU64>,
}

impl SendTimes {
    /// Send times for `agents` agents; nothing is tracked until [`SendTimes::track_after`].
    pub fn new(agents: usize) -> Self {
        SendTimes {
            epoch: Instant::now(),
            floor: AtomicU64::new(u64::MAX),
            sent: (0..agents).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Forget all send times and track campaigns with an id greater than `floor`.
    pub fn track_after(&self, floor: u64) {
        self.floor.store(u64::MAX, Ordering::SeqCst);
        for s in &self.sent {
            s.store(0, Ordering::Relaxed);
        }
        self.floor.store(floor, Ordering::SeqCst);
    }

    /// Note a write of agent `agent` sent at `at` (only if it carries a tracked campaign).
    pub fn observe(&self, agent: usize, body: &WriteBody, at: Instant) {
        let floor = self.floor.load(Ordering::Relaxed);
        let tracked = body
            .queries
            .keys()
            .filter_map(|name| campaign_of(name))
            .any(|id| id > floor);
        if tracked && let Some(slot) = self.sent.get(agent) {
            let nanos = at.saturating_duration_since(self.epoch).as_nanos();
            slot.store(
                u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1,
                Ordering::Relaxed,
            );
        }
    }

    /// When agent `agent` sent its tracked result, if it did.
    pub fn sent_at(&self, agent: usize) -> Option<Instant> {
        match self.sent.get(agent)?.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.epoch + Duration::from_nanos(n - 1)),
        }
    }

    /// The hook to put in agent `agent`'s [`crate::AgentConfig::write_hook`].
    pub fn hook(self: &Arc<Self>, agent: usize) -> WriteHook {
        let times = self.clone();
        WriteHook(Arc::new(move |body, at| times.observe(agent, body, at)))
    }
}

/// Agents by the hostname the server reports for them (hostnames can repeat).
#[derive(Debug, Default)]
pub struct HostIndex {
    by_hostname: HashMap<String, Vec<u32>>,
}

impl HostIndex {
    /// Index hostnames; agent `i` has hostname `hostnames[i]`.
    pub fn new<'a>(hostnames: impl IntoIterator<Item = &'a str>) -> Self {
        let mut by_hostname: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, h) in hostnames.into_iter().enumerate() {
            by_hostname.entry(h.to_owned()).or_default().push(i as u32);
        }
        HostIndex { by_hostname }
    }

    fn agents(&self, hostname: &str) -> &[u32] {
        self.by_hostname.get(hostname).map_or(&[], Vec::as_slice)
    }
}

/// One campaign as the subscriber saw it.
#[derive(Debug)]
pub struct CampaignTracker {
    started: Instant,
    /// Online hosts at the start, from the `totals` message.
    pub online: Option<u64>,
    /// Hosts targeted, from the `totals` message.
    pub targeted: Option<u64>,
    arrivals: Vec<Duration>,
    engine: Vec<Duration>,
    matched: Vec<bool>,
    unmatched: u64,
    errors: u64,
    /// The server reported the campaign finished.
    pub finished: bool,
    /// `error` messages the server sent.
    pub notices: Vec<String>,
}

/// A campaign's timings, as it appears in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignReport {
    /// Campaign id.
    pub campaign_id: u64,
    /// Hosts targeted (`totals.count`).
    pub targeted: u64,
    /// Online hosts at the start (`totals.online`); the 50/99/100 % marks are of this.
    pub online: u64,
    /// `result` messages received.
    pub results: u64,
    /// Results carrying an error.
    pub result_errors: u64,
    /// Results with no matching agent write (hostname unknown, or sent before tracking).
    pub unmatched_results: u64,
    /// The server said the campaign finished (every online host answered).
    pub finished: bool,
    /// Seconds from just before the campaign was started to the first result.
    pub first_result_s: Option<f64>,
    /// … to the result that made 50 % of the online hosts.
    pub p50_hosts_s: Option<f64>,
    /// … 99 %.
    pub p99_hosts_s: Option<f64>,
    /// … 100 %.
    pub all_hosts_s: Option<f64>,
    /// Per host: its agent sending the write → the subscriber receiving its result.
    pub engine_latency: Percentiles,
    /// `error` messages from the server.
    pub notices: Vec<String>,
}

impl CampaignTracker {
    /// A tracker for a campaign started at `started`, for `agents` agents.
    pub fn new(started: Instant, agents: usize) -> Self {
        CampaignTracker {
            started,
            online: None,
            targeted: None,
            arrivals: Vec::new(),
            engine: Vec::new(),
            matched: vec![false; agents],
            unmatched: 0,
            errors: 0,
            finished: false,
            notices: Vec::new(),
        }
    }

    /// Results received so far.
    pub fn results(&self) -> u64 {
        self.arrivals.len() as u64
    }

    /// A `result` for `hostname` was received at `received`. Among the agents with that
    /// hostname not matched yet, the one that sent its write first is taken.
    pub fn on_result(
        &mut self,
        hostname: &str,
        failed: bool,
        received: Instant,
        sends: &SendTimes,
        index: &HostIndex,
    ) {
        self.arrivals
            .push(received.saturating_duration_since(self.started));
        if failed {
            self.errors += 1;
        }
        let best = index
            .agents(hostname)
            .iter()
            .map(|&a| a as usize)
            .filter(|&a| !self.matched[a])
            .filter_map(|a| sends.sent_at(a).map(|t| (t, a)))
            .filter(|&(t, _)| t <= received)
            .min();
        match best {
            Some((sent, agent)) => {
                self.matched[agent] = true;
                self.engine.push(received - sent);
            }
            None => self.unmatched += 1,
        }
    }

    /// Time to the result that brings the count to `fraction` of the online hosts.
    pub fn time_to(&self, fraction: f64) -> Option<Duration> {
        let online = self.online?;
        if online == 0 {
            return None;
        }
        let need = ((online as f64 * fraction).ceil() as usize).max(1);
        let mut sorted = self.arrivals.clone();
        sorted.sort_unstable();
        sorted.get(need - 1).copied()
    }

    /// The summary of this campaign.
    pub fn report(&self, campaign_id: u64) -> CampaignReport {
        let secs = |d: Option<Duration>| d.map(|d| d.as_micros() as f64 / 1e6);
        CampaignReport {
            campaign_id,
            targeted: self.targeted.unwrap_or(0),
            online: self.online.unwrap_or(0),
            results: self.results(),
            result_errors: self.errors,
            unmatched_results: self.unmatched,
            finished: self.finished,
            first_result_s: secs(self.arrivals.iter().min().copied()),
            p50_hosts_s: secs(self.time_to(0.5)),
            p99_hosts_s: secs(self.time_to(0.99)),
            all_hosts_s: secs(self.time_to(1.0)),
            engine_latency: Percentiles::of_durations(self.engine.iter().copied()),
            notices: self.notices.clone(),
        }
    }
}

/// How to reach the server's admin API for the fan-out.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Base URL, e.g. `https://localhost:8443`.
    pub server: String,
    /// TLS configuration (the agents' one); `None` = platform roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Resolve this host name to this address.
    pub resolve: Option<(String, SocketAddr)>,
    /// Admin login.
    pub email: String,
    /// Admin password.
    pub password: String,
    /// SQL of the live query.
    pub sql: String,
    /// Campaigns to run, one after another.
    pub count: usize,
    /// Give up on a campaign after this long.
    pub campaign_timeout: Duration,
}

/// What the fan-out scenario reports.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// The live query's SQL.
    pub sql: String,
    /// Seconds from the start of the run to the first campaign.
    pub started_after_s: f64,
    /// Hosts in the "All Hosts" label when the first campaign started.
    pub hosts_in_label: u64,
    /// One entry per campaign, in order.
    pub campaigns: Vec<CampaignReport>,
}

/// The admin side: an HTTP client with a token.
pub struct Admin {
    http: reqwest::Client,
    opts: FanoutOptions,
    token: String,
}

fn api_error(status: reqwest::StatusCode, body: &Value) -> String {
    let message = body["message"].as_str().unwrap_or("");
    let reasons: Vec<&str> = body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["reason"].as_str()).collect())
        .unwrap_or_default();
    format!("HTTP {status}: {message} {}", reasons.join("; "))
}

impl Admin {
    /// Log in (`POST /api/latest/fleet/login`).
    pub async fn login(opts: FanoutOptions) -> anyhow::Result<Admin> {
        let mut b = reqwest::Client::builder()
            .http1_only()
            .timeout(Duration::from_secs(60))
            .no_proxy();
        if let Some(tls) = &opts.tls {
            b = b.tls_backend_preconfigured(rustls::ClientConfig::clone(tls));
        }
        if let Some((host, addr)) = &opts.resolve {
            b = b.resolve(host, *addr);
        }
        let http = b.build().context("building the admin HTTP client")?;
        let mut admin = Admin {
            http,
            opts,
            token: String::new(),
        };
        let body = json!({"email": admin.opts.email, "password": admin.opts.password});
        let reply = admin.post("/api/latest/fleet/login", &body).await?;
        admin.token = reply["token"]
            .as_str()
            .context("login reply without token")?
            .to_owned();
        Ok(admin)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.opts.server.trim_end_matches('/'))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(self.url(path)).json(body);
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        let resp = req.send().await.with_context(|| format!("POST {path}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {}", api_error(status, &value));
        }
        Ok(value)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path}: {}", api_error(status, &value));
        }
        Ok(value)
    }

    /// Hosts in the builtin "All Hosts" label (what the campaign targets).
    pub async fn all_hosts_count(&self) -> anyhow::Result<u64> {
        let labels = self.get("/api/latest/fleet/labels").await?;
        labels["labels"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["name"] == "All Hosts"))
            .and_then(|l| l["host_count"].as_u64())
            .context("no \"All Hosts\" label with a host_count")
    }

    async fn websocket(
        &self,
    ) -> anyhow::Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let base = reqwest::Url::parse(&self.opts.server).context("--server")?;
        let host = base.host_str().context("--server without host")?.to_owned();
        let port = base.port_or_known_default().unwrap_or(443);
        let addr = match &self.opts.resolve {
            Some((h, a)) if *h == host => *a,
            _ => tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .with_context(|| format!("cannot resolve {host}"))?,
        };
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let scheme = if base.scheme() == "http" { "ws" } else { "wss" };
        let url = format!("{scheme}://{host}:{port}/api/latest/fleet/results/websocket");
        let connector = self
            .opts
            .tls
            .clone()
            .map(tokio_tungstenite::Connector::Rustls);
        let (socket, _) =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, connector)
                .await
                .context("results websocket handshake")?;
        Ok(socket)
    }

    /// Run one campaign to every host in "All Hosts" and watch it to its end (or the timeout).
    pub async fn run_campaign(
        &self,
        previous: u64,
        sends: &SendTimes,
        index: &HostIndex,
    ) -> anyhow::Result<(u64, CampaignTracker)> {
        let mut socket = self.websocket().await?;
        let text = |kind: &str, data: Value| {
            Message::text(json!({"type": kind, "data": data}).to_string())
        };
        socket
            .send(text("auth", json!({"token": self.token})))
            .await?;
        sends.track_after(previous);
        let started = Instant::now();
        let body =
            json!({"query": self.opts.sql, "selected": {"hosts": [], "labels": ["All Hosts"]}});
        let reply = self
            .post("/api/latest/fleet/queries/run_by_identifiers", &body)
            .await?;
        let id = reply["campaign"]["id"]
            .as_u64()
            .context("campaign reply without id")?;
        socket
            .send(text("select_campaign", json!({"campaign_id": id})))
            .await?;
        let mut tracker = CampaignTracker::new(started, sends.sent.len());
        let deadline = tokio::time::Instant::from_std(started + self.opts.campaign_timeout);
        loop {
            let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => {
                    tracker
                        .notices
                        .push("gave up waiting (--fanout-timeout)".into());
                    break;
                }
                Ok(frame) => frame,
            };
            let received = Instant::now();
            let text = match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue,
            };
            let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            let data = &message["data"];
            match message["type"].as_str() {
                Some("result") => {
                    let hostname = data["host"]["hostname"].as_str().unwrap_or_default();
                    let failed = data.get("error").is_some_and(|e| !e.is_null());
                    tracker.on_result(hostname, failed, received, sends, index);
                }
                Some("totals") => {
                    tracker.online = data["online"].as_u64();
                    tracker.targeted = data["count"].as_u64();
                }
                Some("status") if data["status"] == "finished" => tracker.finished = true,
                Some("error") => tracker
                    .notices
                    .push(data.as_str().unwrap_or_default().to_owned()),
                _ => {}
            }
            if tracker.finished
                && tracker
                    .online
                    .is_some_and(|online| tracker.results() >= online)
            {
                break;
            }
        }
        let _ = socket.close(None).await;
        Ok((id, tracker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{QueryAnswer, QueryStats};

    fn write_of(names: &[&str]) -> WriteBody {
        let mut body = WriteBody::default();
        for n in names {
            body.insert(
                n,
                QueryAnswer {
                    result: Ok(Vec::new()),
                    stats: QueryStats::default(),
                },
            );
        }
        body
    }

    #[test]
    fn campaign_names() {
        assert_eq!(campaign_of("fleet_distributed_query_42"), Some(42));
        assert_eq!(campaign_of("fleet_detail_query_network_interface"), None);
        assert_eq!(campaign_of("fleet_distributed_query_x"), None);
    }

    #[test]
    fn send_times_track_only_newer_campaigns() {
        let sends = Arc::new(SendTimes::new(3));
        let t = Instant::now();
        sends.observe(0, &write_of(&["fleet_distributed_query_5"]), t);
        assert_eq!(sends.sent_at(0), None, "nothing tracked before track_after");
        sends.track_after(5);
        (sends.hook(0).0)(&write_of(&["fleet_distributed_query_5"]), t);
        assert_eq!(sends.sent_at(0), None, "an older campaign's late write");
        (sends.hook(1).0)(&write_of(&["fleet_detail_query_os_version"]), t);
        assert_eq!(sends.sent_at(1), None, "not a live query");
        let t2 = t + Duration::from_millis(3);
        (sends.hook(2).0)(
            &write_of(&["fleet_detail_query_x", "fleet_distributed_query_6"]),
            t2,
        );
        let got = sends.sent_at(2).unwrap();
        assert!(got.max(t2) - got.min(t2) < Duration::from_micros(1));
        sends.track_after(6);
        assert_eq!(sends.sent_at(2), None, "a new campaign forgets old sends");
    }

    #[test]
    fn results_are_matched_to_the_earliest_unmatched_sender_and_timed() {
        // Agents 0 and 1 share a hostname; agent 2 never sent.
        let index = HostIndex::new(["dup", "dup", "solo", "four"]);
        let sends = SendTimes::new(4);
        sends.track_after(0);
        let t0 = Instant::now();
        let write = write_of(&["fleet_distributed_query_1"]);
        sends.observe(1, &write, t0 + Duration::from_millis(10));
        sends.observe(0, &write, t0 + Duration::from_millis(20));
        sends.observe(3, &write, t0 + Duration::from_millis(30));
        let mut c = CampaignTracker::new(t0, 4);
        c.online = Some(4);
        c.targeted = Some(5);
        c.on_result("dup", false, t0 + Duration::from_millis(11), &sends, &index);
        c.on_result("dup", true, t0 + Duration::from_millis(25), &sends, &index);
        c.on_result(
            "solo",
            false,
            t0 + Duration::from_millis(40),
            &sends,
            &index,
        );
        c.on_result(
            "nobody",
            false,
            t0 + Duration::from_millis(41),
            &sends,
            &index,
        );
        let r = c.report(1);
        assert_eq!(r.results, 4);
        assert_eq!(r.result_errors, 1);
        assert_eq!(r.unmatched_results, 2, "solo never sent; nobody is unknown");
        assert_eq!(r.engine_latency.count, 2);
        // dup #1: agent 1 sent at 10 ms, received 11 ms; dup #2: agent 0 at 20 → 25 ms.
        // (hdrhistogram keeps 3 significant digits)
        assert!((r.engine_latency.p50_ms - 1.0).abs() <= 0.001, "{r:?}");
        assert!((r.engine_latency.max_ms - 5.0).abs() <= 0.005, "{r:?}");
        assert_eq!(r.first_result_s, Some(0.011));
        assert_eq!(r.p50_hosts_s, Some(0.025), "2 of 4 online hosts");
        assert_eq!(r.p99_hosts_s, Some(0.041), "4 of 4 (ceil)");
        assert_eq!(r.all_hosts_s, Some(0.041));
        assert_eq!(r.targeted, 5);
        let mut short = CampaignTracker::new(t0, 4);
        short.online = Some(4);
        short.on_result(
            "four",
            false,
            t0 + Duration::from_millis(31),
            &sends,
            &index,
        );
        assert_eq!(short.time_to(1.0), None, "not every online host answered");
        assert_eq!(short.report(2).first_result_s, Some(0.031));
    }
}
