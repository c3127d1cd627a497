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
use crate::logs::sink::LogKind;
use crate::state::{AppState, SharedState};

/// `POST /api/osquery/log`: status lines go to the status log; result lines are attributed to
/// the saved query they come from (`pack<d>Global<d><name>`, `pack<d>team-<id><d><name>`),
/// fill its query report, and go to the result log unless the query is known and has
/// automations off (Fleet's rule; results of queries Fleet does not know, such as a local
/// osquery schedule, always go to the log).
///
/// Lines that are not JSON objects are skipped (and counted in the warning), never refused:
/// refusing would make osquery resend the same bad batch forever. If the log cannot be
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
    let (buffer, skipped) = match kind {
        LogKind::Status => json_lines(lines.iter().copied()),
        LogKind::Result => {
            let forwarded = process_results(&state, &host, &lines);
            json_lines(forwarded.into_iter())
        }
    };
    if skipped > 0 {
        tracing::warn!(host = %host.id, skipped, "log lines that are not JSON objects were skipped");
    }
    state.logs.write(kind, buffer).await.map_err(|error| {
        let what = match kind {
            LogKind::Result => "result",
            LogKind::Status => "status",
        };
        OsqueryError::SinkFailed(format!(
            "error writing {what} logs (if the logging destination is down, osquery keeps \
             them and retries; increase logger_tls_period or lower logger_tls_max_lines to \
             send less at once): {error}"
        ))
    })?;
    Ok(super::empty_object())
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
            .and_then(|(team, name)| state.agent_configs.scheduled(team, name));
        let Some(query) = known else {
            forwarded.push(line);
            continue;
        };
        if query.automations_enabled {
            forwarded.push(line);
        }
        let same_team = query.team.is_none() || query.team == host.team;
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
    let now = flotilla_engine::unix_now();
    for (query, snapshot) in snapshots {
        state.reports.record(query, host.id, now, snapshot.rows);
    }
    forwarded
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

/// Each object on its own line, as the agent encoded it; objects spread over several lines are
/// re-encoded onto one. Returns the buffer and how many elements were not objects.
fn json_lines<'a>(lines: impl Iterator<Item = &'a RawValue>) -> (Vec<u8>, usize) {
    let mut buffer = Vec::new();
    let mut skipped = 0;
    for line in lines {
        let text = line.get().trim();
        if !text.starts_with('{') {
            skipped += 1;
            continue;
        }
        if text.contains(['\n', '\r']) {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value) => {
                    serde_json::to_writer(&mut buffer, &value).expect("a Value serialises")
                }
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            }
        } else {
            buffer.extend_from_slice(text.as_bytes());
        }
        buffer.push(b'\n');
    }
    (buffer, skipped)
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
        let (buffer, skipped) = json_lines(request.data.unwrap().into_iter());
        assert_eq!(skipped, 3);
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
