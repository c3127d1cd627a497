//! Fleet's live-query wire formats: the results-websocket messages (`{"type", "data"}` text
//! frames) and the campaign object.

use std::sync::Arc;

use flotilla_engine::campaign::{CampaignEvent, ResultEvent};
use flotilla_engine::campaign_state::{Progress, Totals};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// A whole websocket message: `{"type": kind, "data": data}`.
pub fn message(kind: &str, data: impl Serialize) -> String {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: T,
    }
    serde_json::to_string(&Envelope { kind, data }).expect("websocket messages serialise")
}

pub fn totals(totals: &Totals) -> String {
    message(
        "totals",
        json!({
            "count": totals.count,
            "online": totals.online,
            "offline": totals.offline,
            "missing_in_action": totals.missing_in_action,
        }),
    )
}

pub fn status(progress: &Progress) -> String {
    message(
        "status",
        json!({
            "expected_results": progress.expected_results,
            "actual_results": progress.actual_results,
            "status": if progress.finished { "finished" } else { "pending" },
        }),
    )
}

pub fn error(text: &str) -> String {
    message("error", text)
}

/// The rows of a result with `host_hostname` and `host_display_name` added to each, as Fleet
/// sends them to live-query clients.
pub fn decorated_rows(rows_json: &str, hostname: &str, display_name: &str) -> Vec<Value> {
    let rows: Vec<Value> = serde_json::from_str(rows_json).unwrap_or_default();
    rows.into_iter()
        .filter_map(|row| match row {
            Value::Object(mut map) => {
                map.insert("host_hostname".into(), Value::from(hostname));
                map.insert("host_display_name".into(), Value::from(display_name));
                Some(Value::Object(map))
            }
            _ => None,
        })
        .collect()
}

/// A `result` message, encoded once per result however many subscribers it goes to.
pub fn result(event: &ResultEvent) -> Arc<str> {
    event
        .encoded
        .get_or_init(|| {
            let result = &event.result;
            let hostname = &*result.hostname;
            let mut data = Map::new();
            data.insert(
                "distributed_query_execution_id".into(),
                Value::from(result.answer.campaign.0),
            );
            data.insert(
                "host".into(),
                json!({"id": result.host.0, "hostname": hostname, "display_name": hostname}),
            );
            data.insert(
                "rows".into(),
                Value::Array(decorated_rows(&result.answer.rows, hostname, hostname)),
            );
            if let Some(stats) = result.answer.stats {
                data.insert(
                    "stats".into(),
                    json!({
                        "wall_time_ms": stats.wall_time_ms,
                        "user_time": stats.user_time,
                        "system_time": stats.system_time,
                        "memory": stats.memory,
                    }),
                );
            }
            if let Some(error) = &result.answer.error {
                data.insert("error".into(), Value::from(&**error));
            }
            message("result", Value::Object(data)).into()
        })
        .clone()
}

/// Any campaign event as its websocket message.
pub fn event(event: &CampaignEvent) -> Arc<str> {
    match event {
        CampaignEvent::Totals(t) => totals(t).into(),
        CampaignEvent::Status(p) => status(p).into(),
        CampaignEvent::Result(r) => result(r),
        CampaignEvent::Notice(text) => error(text).into(),
    }
}

/// Fleet's campaign object (note the capitalised `Metrics` keys, as Fleet sends them).
pub fn campaign(
    id: u64,
    query_id: Option<u64>,
    user_id: Option<u64>,
    created_at: i64,
    totals: &Totals,
) -> Value {
    let time = chrono::DateTime::from_timestamp(created_at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "created_at": time,
        "updated_at": time,
        "Metrics": {
            "TotalHosts": totals.count,
            "OnlineHosts": totals.online,
            "OfflineHosts": totals.offline,
            "MissingInActionHosts": totals.missing_in_action,
            "NewHosts": 0,
        },
        "id": id,
        "query_id": query_id,
        "status": 0,
        "user_id": user_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_engine::live::{HostResult, LiveAnswer};
    use flotilla_engine::{CampaignId, HostId};

    #[test]
    fn result_messages_carry_fleets_fields_and_decorated_rows() {
        let event = ResultEvent {
            result: HostResult {
                host: HostId(7),
                hostname: "web-1".into(),
                answer: LiveAnswer {
                    campaign: CampaignId(42),
                    rows: r#"[{"username":"root"}]"#.into(),
                    row_count: 1,
                    error: None,
                    stats: None,
                },
            },
            encoded: Default::default(),
            held: Default::default(),
        };
        let text = result(&event);
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["type"], "result");
        let data = &message["data"];
        assert_eq!(data["distributed_query_execution_id"], 42);
        assert_eq!(data["host"]["id"], 7);
        assert_eq!(data["host"]["display_name"], "web-1");
        assert_eq!(data["rows"][0]["username"], "root");
        assert_eq!(data["rows"][0]["host_hostname"], "web-1");
        assert_eq!(data["rows"][0]["host_display_name"], "web-1");
        assert!(
            data.get("error").is_none(),
            "no error key when the query succeeded"
        );
        assert!(
            Arc::ptr_eq(&text, &result(&event)),
            "encoded once, then shared"
        );
    }

    #[test]
    fn status_and_totals_use_fleets_names() {
        let s: Value = serde_json::from_str(&status(&Progress {
            expected_results: 2,
            actual_results: 2,
            finished: true,
        }))
        .unwrap();
        assert_eq!(
            s,
            json!({"type":"status","data":{"expected_results":2,"actual_results":2,"status":"finished"}})
        );
        let t: Value = serde_json::from_str(&totals(&Totals {
            count: 3,
            online: 2,
            offline: 1,
            missing_in_action: 0,
        }))
        .unwrap();
        assert_eq!(t["data"]["missing_in_action"], 0);
        assert_eq!(t["data"]["count"], 3);
    }
}
