use std::borrow::Cow;
use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_engine::record::HostRecord;
use flotilla_storage::admin::QueryId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::body::{check_header_key, node_key, parse, read_body};
use super::error::OsqueryError;
use super::wire::LogBody;
use crate::agent_config::configs::ScheduledQuery;
use crate::logs::sink::LogKind;
use crate::state::{AppState, SharedState};

/// `POST /api/osquery/log`: status lines go to the status log; result lines are attributed to
/// the saved query they come from (`pack<d>Global<d><name>`, `pack<d>team-<id><d><name>`),
/// fill its query report, and go to the result log unless the query is known and has
/// automations off (Fleet's rule; results of queries Fleet does not know, such as a local
/// osquery schedule, always go to the log).
///
/// Lines that are not JSON objects, or nest deeper than [`MAX_NESTING`], are set aside (kept in
/// `set-aside.jsonl` and counted), never refused: refusing would make osquery resend the same
/// bad batch forever. If the log cannot be
/// written, the answer is 413 with an error so osquery keeps the lines and retries.
pub async fn log(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    check_header_key(&state.hosts, &headers).await?;
    let bytes = read_body(&headers, body, state.limits.log).await?;
    let request: LogBody = parse(&bytes)?;
    let key = node_key(request.node_key.as_deref(), &headers)?;
    let host = state
        .hosts
        .authenticate(key, flotilla_engine::unix_now())
        .await?;
    let kind = match request.log_type.as_deref() {
        Some("result") => LogKind::Result,
        Some("status") => LogKind::Status,
        other => {
            return Err(OsqueryError::BadRequest(format!(
                "unknown log type: {}",
                other.unwrap_or("(none)")
            )));
        }
    };
    let lines = request.data.unwrap_or_default();
    let Lines { buffer, set_aside } = match kind {
        LogKind::Status | LogKind::Audit => json_lines(lines.iter().copied()),
        LogKind::Result => {
            let forwarded = process_results(&state, &host, &lines);
            json_lines(forwarded.into_iter())
        }
    };
    if !set_aside.is_empty() {
        keep_set_aside(&state, &host, kind, &set_aside).await;
    }
    state.logs.write(kind, buffer).await.map_err(|error| {
        let what = kind.name();
        OsqueryError::SinkFailed(format!(
            "error writing {what} logs (if the logging destination is down, osquery keeps \
             them and retries; increase logger_tls_period or lower logger_tls_max_lines to \
             send less at once): {error}"
        ))
    })?;
    Ok(super::empty_object())
}

/// Counts the lines not passed on and keeps them in the log directory's `set-aside.jsonl`
/// (see [`LogSink::set_aside`]); the rest of the request goes on.
///
/// [`LogSink::set_aside`]: crate::logs::sink::LogSink::set_aside
async fn keep_set_aside(
    state: &AppState,
    host: &HostRecord,
    kind: LogKind,
    lines: &[(SetAsideReason, &RawValue)],
) {
    let mut buffer = Vec::new();
    let log = kind.name();
    for &(reason, line) in lines {
        LINES_SET_ASIDE[reason as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Raw line breaks in valid JSON are whitespace between tokens: blanks keep one line.
        let text = line.get().trim().replace(['\n', '\r'], " ");
        buffer.extend_from_slice(
            format!(
                "{{\"host_id\":{},\"log\":\"{log}\",\"reason\":\"{}\",\"line\":{text}}}\n",
                host.id.0,
                reason.label()
            )
            .as_bytes(),
        );
    }
    tracing::warn!(
        host = %host.id,
        lines = lines.len(),
        "log lines that are not JSON objects or nest deeper than {MAX_NESTING} levels were \
         set aside in set-aside.jsonl"
    );
    if let Err(error) = state.logs.set_aside(buffer).await {
        tracing::warn!(%error, "could not keep the set-aside lines");
    }
}

/// The fields of a result line that attribution and reports need.
#[derive(Deserialize)]
struct ResultLine<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "unixTime", default)]
    unix_time: Option<serde_json::Value>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    snapshot: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    columns: Option<&'a RawValue>,
}

fn unix_time(value: &Option<serde_json::Value>) -> i64 {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// A host's newest snapshot of one query within a request.
struct Snapshot {
    unix_time: i64,
    rows: Vec<String>,
    /// Event-format rows (`action: snapshot` with `columns`, one line per row) are gathered
    /// into one snapshot, as Fleet does for `--logger_snapshot_event_type`.
    from_events: bool,
}

/// Records report rows and returns the lines that go on to the result log.
fn process_results<'a>(
    state: &AppState,
    host: &HostRecord,
    lines: &[&'a RawValue],
) -> Vec<&'a RawValue> {
    let sorted = sort_results(lines, host.team, |team, name| {
        state.agent_configs.scheduled(team, name)
    });
    let now = flotilla_engine::unix_now();
    for (query, rows) in sorted.reports {
        state.reports.record(query, host.id, now, rows);
    }
    sorted.forwarded
}

/// Result lines sorted by the saved query they come from.
pub struct SortedResults<'a> {
    /// What goes on to the result log.
    pub forwarded: Vec<&'a RawValue>,
    /// The newest snapshot rows of each known query that keeps a report.
    pub reports: HashMap<QueryId, Vec<String>>,
}

/// Sorts a host's result lines: `scheduled` names the saved query a result name belongs to
/// (by team and name), `host_team` is the sending host's team.
pub fn sort_results<'a>(
    lines: &[&'a RawValue],
    host_team: Option<TeamId>,
    scheduled: impl Fn(Option<TeamId>, &str) -> Option<ScheduledQuery>,
) -> SortedResults<'a> {
    let mut forwarded = Vec::with_capacity(lines.len());
    let mut snapshots: HashMap<QueryId, Snapshot> = HashMap::new();
    for &line in lines {
        let Ok(result) = serde_json::from_str::<ResultLine>(line.get()) else {
            // Not a result object: it is skipped or passed on by `json_lines`.
            forwarded.push(line);
            continue;
        };
        let known = result
            .name
            .as_deref()
            .and_then(parse_pack_name)
            .and_then(|(team, name)| scheduled(team, name));
        let Some(query) = known else {
            forwarded.push(line);
            continue;
        };
        if query.automations_enabled {
            forwarded.push(line);
        }
        let same_team = query.team.is_none() || query.team == host_team;
        if !query.keeps_report || !same_team {
            continue;
        }
        let time = unix_time(&result.unix_time);
        if let Some(rows) = result.snapshot {
            let rows: Vec<String> = rows.iter().map(|r| r.get().to_owned()).collect();
            let newer = snapshots.get(&query.id).is_none_or(|s| time > s.unix_time);
            if newer {
                snapshots.insert(
                    query.id,
                    Snapshot {
                        unix_time: time,
                        rows,
                        from_events: false,
                    },
                );
            }
        } else if result.action.as_deref() == Some("snapshot")
            && let Some(columns) = result.columns
        {
            let snapshot = snapshots.entry(query.id).or_insert(Snapshot {
                unix_time: time,
                rows: Vec::new(),
                from_events: true,
            });
            if snapshot.from_events {
                snapshot.rows.push(columns.get().to_owned());
            }
        }
    }
    SortedResults {
        forwarded,
        reports: snapshots
            .into_iter()
            .map(|(query, snapshot)| (query, snapshot.rows))
            .collect(),
    }
}

/// The team and query name of a Fleet-scheduled query's result name:
/// `pack<d>Global<d><name>` or `pack<d>team-<id><d><name>`, for any delimiter `<d>`
/// (osquery's `pack_delimiter`, `_` by default, `/` in Fleet's agent options). `None` for
/// other names (a local schedule, a 2017-style pack).
pub fn parse_pack_name(name: &str) -> Option<(Option<TeamId>, &str)> {
    let rest = name.strip_prefix("pack")?;
    for (split, _) in rest.char_indices().skip(1) {
        let (delimiter, after) = rest.split_at(split);
        if let Some(query) = after
            .strip_prefix("Global")
            .and_then(|s| s.strip_prefix(delimiter))
            .filter(|q| !q.is_empty())
        {
            return Some((None, query));
        }
        if let Some(team) = after.strip_prefix("team-") {
            let digits = team.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                continue;
            }
            let (id, tail) = team.split_at(digits);
            if let (Ok(id), Some(query)) = (
                id.parse::<u64>(),
                tail.strip_prefix(delimiter).filter(|q| !q.is_empty()),
            ) {
                return Some((Some(TeamId(id)), query));
            }
        }
    }
    None
}

/// The deepest nesting of objects and arrays a log line may have. osquery's own lines nest
/// three deep; a deeper one is set aside rather than handed to destinations whose parsers may
/// refuse or choke on it (Python's stops near 1,000 levels, Go's at 10,000).
pub const MAX_NESTING: usize = 64;

/// Why a line was not passed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAsideReason {
    NotAnObject,
    TooDeep,
}

impl SetAsideReason {
    pub fn label(self) -> &'static str {
        match self {
            SetAsideReason::NotAnObject => "not_an_object",
            SetAsideReason::TooDeep => "too_deep",
        }
    }
}

/// Lines set aside since start, by reason (the order of [`SetAsideReason`]).
pub static LINES_SET_ASIDE: [std::sync::atomic::AtomicU64; 2] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];

/// Whether `text` (valid JSON) nests objects and arrays deeper than `max`.
pub fn nests_deeper_than(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A request's lines as the log takes them, and those it does not.
pub struct Lines<'a> {
    /// Each object on its own line, as the agent encoded it (objects spread over several lines
    /// are re-encoded onto one).
    pub buffer: Vec<u8>,
    pub set_aside: Vec<(SetAsideReason, &'a RawValue)>,
}

/// The lines a log destination is given, one JSON object per line, and those set aside.
pub fn json_lines<'a>(lines: impl Iterator<Item = &'a RawValue>) -> Lines<'a> {
    let mut buffer = Vec::new();
    let mut set_aside = Vec::new();
    for line in lines {
        let text = line.get().trim();
        if !text.starts_with('{') {
            set_aside.push((SetAsideReason::NotAnObject, line));
            continue;
        }
        if nests_deeper_than(text, MAX_NESTING) {
            set_aside.push((SetAsideReason::TooDeep, line));
            continue;
        }
        if text.contains(['\n', '\r']) {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) => {
                    serde_json::to_writer(&mut buffer, &value).expect("a Value serialises")
                }
                Err(_) => {
                    set_aside.push((SetAsideReason::NotAnObject, line));
                    continue;
                }
            }
        } else {
            buffer.extend_from_slice(text.as_bytes());
        }
        buffer.push(b'\n');
    }
    Lines { buffer, set_aside }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_object_each_and_non_objects_are_skipped() {
        let body = br#"{"data":[{"name":"a","unixTime":"1"},
            {"name":"b",
             "unixTime":2},
            "a string", 5, null]}"#;
        let request: LogBody = serde_json::from_slice(body).unwrap();
        let Lines { buffer, set_aside } = json_lines(request.data.unwrap().into_iter());
        assert_eq!(set_aside.len(), 3);
        assert!(
            set_aside
                .iter()
                .all(|(r, _)| *r == SetAsideReason::NotAnObject)
        );
        let text = String::from_utf8(buffer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                r#"{"name":"a","unixTime":"1"}"#,
                r#"{"name":"b","unixTime":2}"#
            ]
        );
    }

    #[test]
    fn lines_nested_too_deep_are_set_aside_and_brackets_in_strings_do_not_count() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        let fits = format!("{{\"a\":{}1{}}}", "[".repeat(63), "]".repeat(63));
        let quoted = format!("{{\"a\":\"{}\\\"[\"}}", "[".repeat(500));
        let body = format!("{{\"data\":[{deep},{fits},{quoted}]}}");
        let request: LogBody = serde_json::from_str(&body).unwrap();
        let Lines { buffer, set_aside } = json_lines(request.data.unwrap().into_iter());
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].0, SetAsideReason::TooDeep);
        assert_eq!(set_aside[0].1.get(), deep);
        let text = String::from_utf8(buffer).unwrap();
        assert_eq!(text, format!("{fits}\n{quoted}\n"));
    }

    #[test]
    fn pack_names_name_a_team_and_a_query() {
        assert_eq!(parse_pack_name("pack/Global/usb"), Some((None, "usb")));
        assert_eq!(
            parse_pack_name("pack_Global_usb devices"),
            Some((None, "usb devices"))
        );
        assert_eq!(
            parse_pack_name("pack/team-12/procs"),
            Some((Some(TeamId(12)), "procs"))
        );
        assert_eq!(
            parse_pack_name("pack::team-3::a::b"),
            Some((Some(TeamId(3)), "a::b"))
        );
        assert_eq!(
            parse_pack_name("pack/Global/team-4/x"),
            Some((None, "team-4/x"))
        );
        assert_eq!(parse_pack_name("pack/Global/"), None);
        assert_eq!(parse_pack_name("pack/mypack/q"), None, "a 2017-style pack");
        assert_eq!(parse_pack_name("procs"), None);
        assert_eq!(parse_pack_name("pack/team-x/q"), None);
    }
}
