use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::value::RawValue;

use super::body::{node_key, parse, read_body};
use super::error::OsqueryError;
use super::wire::LogBody;
use crate::logsink::LogKind;
use crate::state::SharedState;

/// `POST /api/osquery/log`: result or status lines, appended to their log as JSON lines.
///
/// Lines that are not JSON objects are skipped (and counted in the warning), never refused:
/// refusing would make osquery resend the same bad batch forever. If the log cannot be
/// written, the answer is 413 with an error so osquery keeps the lines and retries.
pub async fn log(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
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
    let (buffer, skipped) = json_lines(&lines);
    if skipped > 0 {
        tracing::warn!(host = %host.id, skipped, "log lines that are not JSON objects were skipped");
    }
    state.logs.write(kind, buffer).await.map_err(|error| {
        let what = match kind {
            LogKind::Result => "result",
            LogKind::Status => "status",
        };
        OsqueryError::SinkFailed(format!(
            "error writing {what} logs (osquery keeps them and retries): {error}"
        ))
    })?;
    Ok(super::empty_object())
}

/// Each object on its own line, as the agent encoded it; objects spread over several lines are
/// re-encoded onto one. Returns the buffer and how many elements were not objects.
fn json_lines(lines: &[&RawValue]) -> (Vec<u8>, usize) {
    let mut buffer = Vec::with_capacity(lines.iter().map(|l| l.get().len() + 1).sum());
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
        let (buffer, skipped) = json_lines(&request.data.unwrap());
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
}
