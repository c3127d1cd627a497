//! `flotilla query`: starts a live query (a campaign) and streams its results over the results
//! websocket, with a progress line on standard error while it runs.
//!
//! When it stops, like fleetctl's: once every targeted host answered; with `--exit`, once
//! every host that was online answered; when the server ends the campaign (Flotilla finishes a
//! campaign once every online target answered, then closes the socket); at `--timeout`; or at
//! Ctrl-C. The server has no endpoint to stop a campaign, so Ctrl-C closes the websocket and
//! the server finishes the campaign once nobody has watched it for its grace period (a minute),
//! then every host drops the query.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::Outcome;
use super::config::ConfigArgs;
use super::http::{Api, ApiError, path_segment, query_value};
use super::output;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The SQL to run.
    #[arg(
        long,
        required_unless_present = "query_name",
        conflicts_with = "query_name"
    )]
    pub query: Option<String>,

    /// Run the saved query of this name instead of --query.
    #[arg(long)]
    pub query_name: Option<String>,

    /// Hosts to target, comma-separated: hostname, UUID or serial number.
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Labels to target by name, comma-separated (e.g. "All Hosts"). A host in any of them
    /// is targeted.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Teams to target by name, comma-separated. With --labels too, only hosts in both a
    /// label and a team are targeted (Fleet's rule).
    #[arg(long, value_delimiter = ',')]
    pub teams: Vec<String>,

    /// Stop waiting after this long (e.g. 30s, 5m) and report who did not answer.
    /// Default: until the campaign is over.
    #[arg(long, value_parser = crate::units::parse_duration)]
    pub timeout: Option<Duration>,

    /// How to print results: a table when done, a JSON array when done, JSON lines or CSV as
    /// results arrive.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Exit once every host that was online when the query started has answered, instead of
    /// waiting for offline hosts to come back (fleetctl's --exit).
    #[arg(long)]
    pub exit: bool,

    /// No progress line and no summary on standard error: results only.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One table (host + the result's columns), printed when the query is over.
    Table,
    /// One JSON array of rows, printed when the query is over.
    Json,
    /// One JSON object per row, as results arrive.
    Jsonl,
    /// CSV with a header row, as results arrive.
    Csv,
}

pub async fn run(config: &ConfigArgs, args: QueryArgs) -> anyhow::Result<Outcome> {
    if args.hosts.is_empty() && args.labels.is_empty() && args.teams.is_empty() {
        bail!("no hosts targeted: give --hosts, --labels or --teams");
    }
    let api = super::logged_in(config)?;
    let query_id = match &args.query_name {
        Some(name) => Some(saved_query_id(&api, name).await?),
        None => None,
    };
    let campaign = start_campaign(&api, &args, query_id).await?;
    let campaign_id = campaign["id"]
        .as_u64()
        .context("the server's campaign has no id")?;
    let mut watch = Watch::new(&args, campaign["Metrics"]["TotalHosts"].as_u64());
    let ended = stream_results(&api, campaign_id, &args, &mut watch).await;
    watch.finish_output();
    let ended = ended?;
    if !args.quiet {
        watch.summary(&api, &args, &ended).await;
    }
    Ok(match ended {
        Ended::Interrupted => Outcome::Interrupted,
        _ => Outcome::Done,
    })
}

/// The id of the saved query named `name` (exact match).
async fn saved_query_id(api: &Api, name: &str) -> anyhow::Result<u64> {
    let body = api
        .get(&format!("/queries?query={}", query_value(name)))
        .await?;
    body["queries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["name"] == name)
        .and_then(|q| q["id"].as_u64())
        .with_context(|| format!("no saved query named `{name}`"))
}

/// Starts the campaign: by identifiers and label names (`run_by_identifiers`, what fleetctl
/// uses) or, when teams are named, by ids (`run`, the only form that takes teams).
async fn start_campaign(
    api: &Api,
    args: &QueryArgs,
    query_id: Option<u64>,
) -> anyhow::Result<Value> {
    let mut body = match query_id {
        Some(id) => json!({ "query_id": id }),
        None => json!({ "query": args.query }),
    };
    let answer = if args.teams.is_empty() {
        body["selected"] = json!({"hosts": args.hosts, "labels": args.labels});
        api.post("/queries/run_by_identifiers", &body).await
    } else {
        let hosts = host_ids(api, &args.hosts).await?;
        let labels = ids_by_name(api, "/labels", "labels", "label", &args.labels).await?;
        let teams = ids_by_name(api, "/teams", "teams", "team", &args.teams).await?;
        body["selected"] = json!({"hosts": hosts, "labels": labels, "teams": teams});
        api.post("/queries/run", &body).await
    };
    let answer = answer.map_err(|e| match &e {
        ApiError::Status { message, .. } if message.contains("no hosts targeted") => {
            anyhow::anyhow!("no hosts targeted: no host matches the hosts, labels and teams given")
        }
        _ => anyhow::Error::new(e).context("starting the live query"),
    })?;
    Ok(answer["campaign"].clone())
}

async fn host_ids(api: &Api, identifiers: &[String]) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::with_capacity(identifiers.len());
    for identifier in identifiers {
        let host = api
            .get(&format!("/hosts/identifier/{}", path_segment(identifier)))
            .await
            .with_context(|| format!("looking up host `{identifier}`"))?;
        ids.push(
            host["host"]["id"]
                .as_u64()
                .context("a host without an id")?,
        );
    }
    Ok(ids)
}

/// The ids of named labels or teams, from the list endpoint `path`.
async fn ids_by_name(
    api: &Api,
    path: &str,
    key: &str,
    what: &str,
    names: &[String],
) -> anyhow::Result<Vec<u64>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let list = api.get(path).await?;
    let by_name: BTreeMap<&str, u64> = list[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| Some((item["name"].as_str()?, item["id"].as_u64()?)))
        .collect();
    names
        .iter()
        .map(|name| {
            by_name
                .get(name.trim())
                .copied()
                .with_context(|| format!("no {what} named `{name}`"))
        })
        .collect()
}

/// Why the stream ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Every targeted host answered.
    AllAnswered,
    /// `--exit`: every online host answered.
    OnlineAnswered,
    /// The server finished the campaign and closed the socket.
    ServerFinished,
    /// `--timeout` passed.
    Timeout,
    /// Ctrl-C.
    Interrupted,
}

/// What the command has seen of the campaign, and the results not yet printed.
struct Watch {
    format: Format,
    targeted: Option<u64>,
    online: Option<u64>,
    /// The last `status`: (expected, actual, finished).
    status: Option<(u64, u64, bool)>,
    /// Host id → hostname of every host that answered.
    responded: BTreeMap<u64, String>,
    /// Rows kept for `table` and `json`, printed at the end.
    rows: Vec<Map<String, Value>>,
    /// CSV columns, fixed by the first row.
    csv_columns: Option<Vec<String>>,
    /// Hosts whose query failed, with osquery's message.
    errors: Vec<(String, String)>,
    started: std::time::Instant,
    bar: indicatif::ProgressBar,
}

impl Watch {
    fn new(args: &QueryArgs, targeted: Option<u64>) -> Watch {
        let bar = if args.quiet {
            indicatif::ProgressBar::hidden()
        } else {
            // Drawn only when standard error is a terminal.
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        let watch = Watch {
            format: args.format,
            targeted,
            online: None,
            status: None,
            responded: BTreeMap::new(),
            rows: Vec::new(),
            csv_columns: None,
            errors: Vec::new(),
            started: std::time::Instant::now(),
            bar,
        };
        watch.update_progress();
        watch
    }

    fn progress_line(&self) -> String {
        let targeted = self.targeted.unwrap_or(0);
        let online = self
            .online
            .map(|n| n.to_string())
            .unwrap_or_else(|| "?".into());
        format!(
            "{} responded / {online} online / {targeted} targeted · {:.1}s",
            self.responded.len(),
            self.started.elapsed().as_secs_f64()
        )
    }

    fn update_progress(&self) {
        self.bar.set_message(self.progress_line());
    }

    /// Handles one websocket message; `Some` when the command should stop.
    fn on_message(&mut self, exit_when_online_answered: bool, message: &Value) -> Option<Ended> {
        let data = &message["data"];
        match message["type"].as_str().unwrap_or_default() {
            "totals" => {
                self.targeted = data["count"].as_u64().or(self.targeted);
                self.online = data["online"].as_u64();
            }
            "status" => {
                self.status = Some((
                    data["expected_results"].as_u64().unwrap_or(0),
                    data["actual_results"].as_u64().unwrap_or(0),
                    data["status"] == "finished",
                ));
            }
            "result" => self.on_result(data),
            _ => {}
        }
        self.update_progress();
        let responded = self.responded.len() as u64;
        if let Some(targeted) = self.targeted
            && targeted > 0
            && responded >= targeted
        {
            return Some(Ended::AllAnswered);
        }
        if exit_when_online_answered
            && self.status.is_some()
            && let Some(online) = self.online
            && responded >= online
        {
            return Some(Ended::OnlineAnswered);
        }
        None
    }

    fn on_result(&mut self, data: &Value) {
        let host = &data["host"];
        let hostname = host["hostname"]
            .as_str()
            .or_else(|| host["display_name"].as_str())
            .unwrap_or("?")
            .to_owned();
        if let Some(id) = host["id"].as_u64() {
            self.responded.insert(id, hostname.clone());
        }
        if let Some(error) = data["error"].as_str().filter(|e| !e.is_empty()) {
            self.bar
                .suspend(|| eprintln!("{hostname}: the query failed: {error}"));
            self.errors.push((hostname.clone(), error.to_owned()));
        }
        let rows: Vec<Map<String, Value>> = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .map(|row| output::result_row(&hostname, row))
            .collect();
        match self.format {
            Format::Table | Format::Json => self.rows.extend(rows),
            Format::Jsonl => {
                let mut text = String::new();
                for row in &rows {
                    text.push_str(&serde_json::to_string(row).expect("JSON rows serialise"));
                    text.push('\n');
                }
                self.print(&text);
            }
            Format::Csv => {
                if rows.is_empty() {
                    return;
                }
                let header = self.csv_columns.is_none();
                let columns = self
                    .csv_columns
                    .get_or_insert_with(|| output::result_columns(&rows))
                    .clone();
                self.print(&output::csv_lines(&columns, &rows, header));
            }
        }
    }

    /// Writes to standard output without tearing the progress line.
    fn print(&self, text: &str) {
        self.bar.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        });
    }

    /// Clears the progress line and prints what `table` and `json` kept.
    fn finish_output(&mut self) {
        self.bar.finish_and_clear();
        let rows = std::mem::take(&mut self.rows);
        match self.format {
            Format::Table if !rows.is_empty() => {
                let columns = output::result_columns(&rows);
                let header: Vec<&str> = columns.iter().map(String::as_str).collect();
                let table = output::table(
                    &header,
                    rows.iter().map(|row| {
                        columns
                            .iter()
                            .map(|c| row.get(c).map(output::cell).unwrap_or_default())
                            .collect()
                    }),
                );
                self.print(&(table + "\n"));
            }
            Format::Json => {
                let array = Value::Array(rows.into_iter().map(Value::Object).collect());
                self.print(&(output::json_pretty(&array) + "\n"));
            }
            _ => {}
        }
    }

    /// What happened, on standard error: how many answered and who did not.
    async fn summary(&self, api: &Api, args: &QueryArgs, ended: &Ended) {
        let responded = self.responded.len() as u64;
        let targeted = self.targeted.unwrap_or(responded);
        let online = self
            .online
            .map(|n| format!(" ({n} online)"))
            .unwrap_or_default();
        let how = match ended {
            Ended::AllAnswered => "every targeted host answered",
            Ended::OnlineAnswered => "every online host answered",
            Ended::ServerFinished => "the campaign is finished",
            Ended::Timeout => "stopped at --timeout",
            Ended::Interrupted => {
                "interrupted; the server ends the campaign once nobody watches it (within a minute)"
            }
        };
        eprintln!(
            "{responded} of {targeted} targeted hosts responded{online} in {:.1}s: {how}.",
            self.started.elapsed().as_secs_f64()
        );
        if !self.errors.is_empty() {
            eprintln!("The query failed on {} host(s).", self.errors.len());
        }
        if responded >= targeted {
            return;
        }
        match silent_hosts(api, args, &self.responded).await {
            Ok(silent) if !silent.is_empty() => {
                const SHOWN: usize = 20;
                let mut names: Vec<String> = silent
                    .iter()
                    .take(SHOWN)
                    .map(|(name, status)| format!("{name} ({status})"))
                    .collect();
                if silent.len() > SHOWN {
                    names.push(format!("and {} more", silent.len() - SHOWN));
                }
                eprintln!(
                    "No answer from {} host(s): {}.",
                    silent.len(),
                    names.join(", ")
                );
            }
            Ok(_) => {}
            Err(error) => eprintln!("(could not list the hosts that did not answer: {error:#})"),
        }
    }
}

/// The targeted hosts that did not answer, as (hostname, status), resolved the way the server
/// resolves targets: the hosts named, plus hosts in any label, AND-ed with any team's.
async fn silent_hosts(
    api: &Api,
    args: &QueryArgs,
    responded: &BTreeMap<u64, String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut targets: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let add = |host: &Value, into: &mut BTreeMap<u64, (String, String)>| {
        if let Some(id) = host["id"].as_u64() {
            let name = output::cell(&host["hostname"]);
            let status = output::cell(&host["status"]);
            into.insert(id, (name, status));
        }
    };
    for identifier in &args.hosts {
        if let Ok(body) = api
            .get(&format!("/hosts/identifier/{}", path_segment(identifier)))
            .await
        {
            add(&body["host"], &mut targets);
        }
    }
    let labels = ids_by_name(api, "/labels", "labels", "label", &args.labels).await?;
    let teams = ids_by_name(api, "/teams", "teams", "team", &args.teams).await?;
    let mut in_labels: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for label in labels {
        for host in api
            .get_all(&format!("/labels/{label}/hosts"), "hosts")
            .await?
        {
            add(&host, &mut in_labels);
        }
    }
    let mut in_teams: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for team in teams {
        for host in api
            .get_all(&format!("/hosts?team_id={team}"), "hosts")
            .await?
        {
            add(&host, &mut in_teams);
        }
    }
    let groups = match (args.labels.is_empty(), args.teams.is_empty()) {
        (false, false) => {
            let team_ids: BTreeSet<u64> = in_teams.keys().copied().collect();
            in_labels.retain(|id, _| team_ids.contains(id));
            in_labels
        }
        (false, true) => in_labels,
        (true, false) => in_teams,
        (true, true) => BTreeMap::new(),
    };
    targets.extend(groups);
    Ok(targets
        .into_iter()
        .filter(|(id, _)| !responded.contains_key(id))
        .map(|(_, host)| host)
        .collect())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_socket(api: &Api) -> anyhow::Result<Socket> {
    let address = api.address();
    let url = if let Some(rest) = address.strip_prefix("https://") {
        format!("wss://{rest}{}/results/websocket", super::http::PREFIX)
    } else if let Some(rest) = address.strip_prefix("http://") {
        format!("ws://{rest}{}/results/websocket", super::http::PREFIX)
    } else {
        bail!("`{address}` is not an http(s) address");
    };
    let tls = api.trust().rustls_config()?;
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(tls));
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(&url, None, false, Some(connector))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the results websocket {url}: {}",
                    super::http::root_cause(&e)
                )
            })?;
    Ok(socket)
}

async fn send(socket: &mut Socket, kind: &str, data: Value) -> anyhow::Result<()> {
    let text = json!({"type": kind, "data": data}).to_string();
    socket
        .send(Message::text(text))
        .await
        .context("writing to the results websocket")
}

async fn stream_results(
    api: &Api,
    campaign_id: u64,
    args: &QueryArgs,
    watch: &mut Watch,
) -> anyhow::Result<Ended> {
    let mut socket = open_socket(api).await?;
    send(
        &mut socket,
        "auth",
        json!({"token": api.token().unwrap_or_default()}),
    )
    .await?;
    send(
        &mut socket,
        "select_campaign",
        json!({"campaign_id": campaign_id}),
    )
    .await?;

    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let timeout = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    // Until the first `totals`, an `error` means the campaign could not be watched at all.
    let mut watching = false;

    let ended = loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = &mut timeout => break Ended::Timeout,
            _ = &mut interrupted => break Ended::Interrupted,
        };
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => break Ended::ServerFinished,
            Some(Err(e)) => {
                bail!(
                    "the results websocket failed: {}",
                    super::http::root_cause(&e)
                )
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if message["type"] == "error" {
            let error = output::cell(&message["data"]);
            if !watching {
                bail!("the server refused to stream campaign {campaign_id}: {error}");
            }
            watch
                .bar
                .suspend(|| eprintln!("Message from the server: {error}"));
            continue;
        }
        watching = true;
        if let Some(ended) = watch.on_message(args.exit, &message) {
            break ended;
        }
    };
    let _ = socket.close(None).await;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(format: Format) -> QueryArgs {
        QueryArgs {
            query: Some("SELECT 1".into()),
            query_name: None,
            hosts: vec![],
            labels: vec!["All Hosts".into()],
            teams: vec![],
            timeout: None,
            format,
            exit: false,
            quiet: true,
        }
    }

    fn result(id: u64, name: &str) -> Value {
        json!({"type": "result", "data": {"host": {"id": id, "hostname": name, "display_name": name},
            "rows": [{"a": "1", "host_hostname": name, "host_display_name": name}]}})
    }

    #[test]
    fn stops_when_every_targeted_host_answered() {
        let mut watch = Watch::new(&args(Format::Table), Some(2));
        assert_eq!(
            watch.on_message(
                false,
                &json!({"type": "totals", "data": {"count": 2, "online": 1}})
            ),
            None
        );
        assert_eq!(watch.on_message(false, &result(1, "web-1")), None);
        assert_eq!(
            watch.on_message(false, &result(1, "web-1")),
            None,
            "a duplicate answer counts once"
        );
        assert_eq!(
            watch.on_message(false, &result(2, "web-2")),
            Some(Ended::AllAnswered)
        );
        assert_eq!(watch.rows.len(), 3, "table rows are kept for the end");
        assert_eq!(watch.rows[0]["host"], "web-1");
    }

    #[test]
    fn exit_stops_once_the_online_hosts_answered() {
        for exit in [false, true] {
            let mut watch = Watch::new(&args(Format::Json), Some(3));
            watch.on_message(
                exit,
                &json!({"type": "totals", "data": {"count": 3, "online": 1}}),
            );
            watch.on_message(
                exit,
                &json!({"type": "status", "data": {"expected_results": 1, "actual_results": 0, "status": "pending"}}),
            );
            let ended = watch.on_message(exit, &result(5, "db-1"));
            assert_eq!(
                ended,
                exit.then_some(Ended::OnlineAnswered),
                "--exit={exit}"
            );
        }
    }

    #[test]
    fn failed_hosts_are_recorded() {
        let mut watch = Watch::new(&args(Format::Table), Some(1));
        watch.on_message(
            false,
            &json!({"type": "result", "data": {"host": {"id": 1, "hostname": "w"}, "rows": [], "error": "no such table: nope"}}),
        );
        assert_eq!(
            watch.errors,
            vec![("w".to_owned(), "no such table: nope".to_owned())]
        );
        assert_eq!(watch.responded.len(), 1, "a failed host did answer");
    }
}
