//! How osquery reads response bodies (reference §3.5, §5.2, §10.3). Pure functions.
//!
//! The HTTP status code is never looked at; only the body decides.

use serde_json::{Map, Value};

use crate::error::AgentError;

/// Interpret the body of a config, distributed read/write or logger response.
///
/// * empty body → success with `{}`;
/// * not parseable JSON → [`AgentError::InvalidJson`];
/// * `"node_invalid": true` (a JSON boolean; `"true"` or `1` do not count) →
///   [`AgentError::NodeInvalid`] — the caller must delete its cached node key;
/// * an `error` member of any type → [`AgentError::Server`];
/// * anything else → success with the parsed value (normally an object).
pub fn interpret_response(body: &[u8]) -> Result<Value, AgentError> {
    let value = parse_body(body)?;
    if value.get("node_invalid") == Some(&Value::Bool(true)) {
        let detail = value.get("error").map(error_text);
        return Err(AgentError::NodeInvalid(detail));
    }
    if let Some(err) = value.get("error") {
        return Err(AgentError::Server(error_text(err)));
    }
    Ok(value)
}

/// Interpret an enroll response: the key is `node_key`, or `id` when `node_key` is absent, and
/// must be a non-empty JSON string. `node_invalid` and `error` are not inspected.
pub fn parse_enroll_response(body: &[u8]) -> Result<String, AgentError> {
    let value = parse_body(body).map_err(|e| AgentError::Enroll(e.to_string()))?;
    let key = match value.get("node_key") {
        Some(k) => k,
        None => value.get("id").unwrap_or(&Value::Null),
    };
    match key {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Null => Err(AgentError::Enroll(format!(
            "no node_key in response {}",
            preview(&value)
        ))),
        other => Err(AgentError::Enroll(format!("unusable node_key {other}"))),
    }
}

/// Interpret a carve start response: it must parse and hold a non-empty string `session_id`.
pub fn parse_carve_begin_response(body: &[u8]) -> Result<String, AgentError> {
    let value = parse_body(body)?;
    match value.get("session_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(AgentError::Protocol(format!(
            "carve start response without session_id: {}",
            preview(&value)
        ))),
    }
}

/// Interpret a carve block response: only JSON-parseability is checked (empty is fine).
pub fn check_carve_block_response(body: &[u8]) -> Result<(), AgentError> {
    parse_body(body).map(|_| ())
}

fn parse_body(body: &[u8]) -> Result<Value, AgentError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| AgentError::InvalidJson(e.to_string()))
}

fn error_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn preview(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_body_is_success() {
        assert_eq!(interpret_response(b"").unwrap(), json!({}));
    }

    #[test]
    fn non_json_is_failure() {
        assert!(matches!(
            interpret_response(b"<html>502</html>"),
            Err(AgentError::InvalidJson(_))
        ));
        // Whitespace only is not "empty": the JSON parser rejects it.
        assert!(matches!(
            interpret_response(b"  "),
            Err(AgentError::InvalidJson(_))
        ));
    }

    #[test]
    fn node_invalid_only_as_boolean_true() {
        let e = interpret_response(br#"{"node_invalid": true, "error": "bad key"}"#).unwrap_err();
        assert_eq!(e, AgentError::NodeInvalid(Some("bad key".into())));
        assert!(e.is_node_invalid());
        assert_eq!(
            interpret_response(br#"{"node_invalid": true}"#).unwrap_err(),
            AgentError::NodeInvalid(None)
        );
        // Strings and numbers read as false; no error member → success.
        assert!(interpret_response(br#"{"node_invalid": "true"}"#).is_ok());
        assert!(interpret_response(br#"{"node_invalid": 1}"#).is_ok());
        assert!(interpret_response(br#"{"node_invalid": false, "queries": {}}"#).is_ok());
        // A string "true" with an error member is a plain error, not node_invalid.
        assert!(matches!(
            interpret_response(br#"{"node_invalid": "true", "error": "x"}"#),
            Err(AgentError::Server(_))
        ));
    }

    #[test]
    fn error_member_of_any_type_fails() {
        assert_eq!(
            interpret_response(br#"{"error": "db down"}"#).unwrap_err(),
            AgentError::Server("db down".into())
        );
        assert_eq!(
            interpret_response(br#"{"error": null}"#).unwrap_err(),
            AgentError::Server("null".into())
        );
        assert!(interpret_response(br#"{"error": {"code": 5}}"#).is_err());
    }

    #[test]
    fn other_json_is_success() {
        assert_eq!(interpret_response(br#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        assert_eq!(interpret_response(b"[]").unwrap(), json!([]));
    }

    #[test]
    fn enroll_key_sources() {
        assert_eq!(
            parse_enroll_response(br#"{"node_key": "k1"}"#).unwrap(),
            "k1"
        );
        assert_eq!(parse_enroll_response(br#"{"id": "k2"}"#).unwrap(), "k2");
        assert!(parse_enroll_response(br#"{"node_key": ""}"#).is_err());
        assert!(parse_enroll_response(br#"{"node_key": 5}"#).is_err());
        assert!(parse_enroll_response(br#"{"node_invalid": true}"#).is_err());
        assert!(parse_enroll_response(b"").is_err());
        assert!(parse_enroll_response(b"nope").is_err());
        // `error` is not inspected: a key wins.
        assert_eq!(
            parse_enroll_response(br#"{"node_key": "k", "error": "x"}"#).unwrap(),
            "k"
        );
    }

    #[test]
    fn carve_responses() {
        assert_eq!(
            parse_carve_begin_response(br#"{"session_id": "s", "success": true}"#).unwrap(),
            "s"
        );
        assert!(parse_carve_begin_response(br#"{"session_id": ""}"#).is_err());
        assert!(parse_carve_begin_response(b"").is_err());
        assert!(check_carve_block_response(b"").is_ok());
        assert!(check_carve_block_response(br#"{"error": "ignored"}"#).is_ok());
        assert!(check_carve_block_response(b"oops").is_err());
    }
}
