//! Request bodies of the osquery endpoints, and the lenient readings osquery's history needs:
//! values that are numbers in new agents and strings in old ones, `""` where rows are empty.

use std::borrow::Cow;
use std::collections::HashMap;

use flotilla_engine::detail::Row;
use flotilla_engine::live::QueryStats;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

/// A body whose only field of interest is the node key (config, distributed/read).
#[derive(Deserialize)]
pub struct KeyBody<'a> {
    #[serde(borrow, default)]
    pub node_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct EnrollBody {
    #[serde(default)]
    pub enroll_secret: Option<String>,
    #[serde(default)]
    pub host_identifier: Option<String>,
    /// `table -> column -> value`; values are strings from osquery, but anything scalar is taken.
    #[serde(default)]
    pub host_details: Option<HashMap<String, HashMap<String, Value>>>,
}

#[derive(Deserialize)]
pub struct WriteBody<'a> {
    #[serde(borrow, default)]
    pub node_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub queries: HashMap<Cow<'a, str>, &'a RawValue>,
    #[serde(default)]
    pub statuses: HashMap<String, Value>,
    #[serde(default)]
    pub messages: HashMap<String, Value>,
    #[serde(default)]
    pub stats: HashMap<String, Value>,
}

#[derive(Deserialize)]
pub struct LogBody<'a> {
    #[serde(borrow, default)]
    pub node_key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub log_type: Option<String>,
    #[serde(borrow, default)]
    pub data: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
pub struct CarveBeginBody<'a> {
    #[serde(borrow, default)]
    pub node_key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub block_count: Value,
    #[serde(default)]
    pub block_size: Value,
    #[serde(default)]
    pub carve_size: Value,
    #[serde(default)]
    pub carve_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
pub struct CarveBlockBody {
    #[serde(default)]
    pub block_id: Value,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
}

/// A scalar as osquery would have written it as a string.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// An unsigned integer sent as a number or a decimal string.
pub fn lenient_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A status: 0 is success. Numbers (osquery ≥ 3) and numeric strings (older) are read; anything
/// else counts as a failure rather than an error that would make osquery resend forever.
pub fn status_code(value: Option<&Value>) -> i64 {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(1),
        Some(_) => 1,
    }
}

/// Detail-query rows as string maps; `""`, `null` or anything not an array of objects is no rows.
pub fn rows(raw: &RawValue) -> Vec<Row> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw.get()) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::Object(map) => Some(
                map.iter()
                    .map(|(k, v)| (k.clone(), scalar_text(v)))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// A live query's rows kept as the host encoded them, with their count. Anything but an array
/// (osquery sends `""` for no rows) becomes `[]`.
pub fn raw_rows(raw: &RawValue) -> (String, usize) {
    match serde_json::from_str::<Vec<IgnoredAny>>(raw.get()) {
        Ok(items) => (raw.get().to_owned(), items.len()),
        Err(_) => ("[]".to_owned(), 0),
    }
}

pub fn stats(value: Option<&Value>) -> Option<QueryStats> {
    let Value::Object(map) = value? else {
        return None;
    };
    if map.is_empty() {
        return None;
    }
    let field = |name: &str| map.get(name).and_then(lenient_u64).unwrap_or(0);
    Some(QueryStats {
        wall_time_ms: field("wall_time_ms"),
        user_time: field("user_time"),
        system_time: field("system_time"),
        memory: field("memory"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn statuses_take_numbers_and_strings() {
        assert_eq!(status_code(None), 0);
        assert_eq!(status_code(Some(&Value::from(0))), 0);
        assert_eq!(status_code(Some(&Value::from("0"))), 0);
        assert_eq!(status_code(Some(&Value::from("1"))), 1);
        assert_eq!(status_code(Some(&Value::from("bogus"))), 1);
        assert_eq!(status_code(Some(&serde_json::json!({}))), 1);
    }

    #[test]
    fn rows_accept_empty_string_and_stringify_scalars() {
        assert!(rows(&raw("\"\"")).is_empty());
        assert!(rows(&raw("null")).is_empty());
        let parsed = rows(&raw(r#"[{"a":"x","b":2,"c":null}, 7]"#));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0]["a"], "x");
        assert_eq!(parsed[0]["b"], "2");
        assert_eq!(parsed[0]["c"], "");
    }

    #[test]
    fn raw_rows_keep_the_hosts_encoding() {
        assert_eq!(
            raw_rows(&raw(r#"[{"u":"root"},{"u":"bin"}]"#)),
            (r#"[{"u":"root"},{"u":"bin"}]"#.into(), 2)
        );
        assert_eq!(raw_rows(&raw("\"\"")), ("[]".into(), 0));
    }

    #[test]
    fn stats_are_optional_and_lenient() {
        assert_eq!(stats(None), None);
        assert_eq!(stats(Some(&serde_json::json!({}))), None);
        let s = stats(Some(
            &serde_json::json!({"wall_time_ms": 3, "memory": "10"}),
        ))
        .unwrap();
        assert_eq!((s.wall_time_ms, s.memory, s.user_time), (3, 10, 0));
    }
}
