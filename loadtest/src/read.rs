//! Distributed read responses and osquery's rules for accepting them (reference §7.3).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::answer::{AnswerContext, QueryAnswerer};
use crate::error::AgentError;

/// A parsed `distributed/read` response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResponse {
    /// Valid `queries` entries: name → SQL.
    pub queries: BTreeMap<String, String>,
    /// `discovery` entries: name → SQL.
    pub discovery: BTreeMap<String, String>,
    /// `accelerate` seconds — only when it is a JSON integer in int32 range
    /// (a string such as `"60"` is ignored, as osquery does).
    pub accelerate: Option<i64>,
    /// Why processing stopped early, if it did. A bad `discovery` entry discards everything;
    /// a bad `queries` entry keeps the entries before it (in name order here — osquery iterates
    /// in document order, which a JSON map does not preserve). `accelerate` is then ignored.
    pub invalid: Option<String>,
}

/// The result of applying discovery to a read response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedWork {
    /// Queries to run, in lexicographic name order.
    pub run: Vec<(String, String)>,
    /// Names dropped because their discovery query returned no rows (never reported back).
    pub skipped: Vec<String>,
    /// `accelerate` to apply, if any.
    pub accelerate: Option<i64>,
    /// Why the response was (partly) discarded, if it was.
    pub error: Option<String>,
}

impl ReadResponse {
    /// Parse a response value. Only a non-object is an error (osquery: "Error Parsing JSON").
    pub fn from_json(value: &Value) -> Result<Self, AgentError> {
        let obj = value.as_object().ok_or_else(|| {
            AgentError::Protocol(format!(
                "distributed read response is not an object: {value}"
            ))
        })?;
        let mut out = ReadResponse::default();

        if let Some(disc) = obj.get("discovery") {
            let Some(disc) = disc.as_object() else {
                out.invalid = Some("discovery is not an object".into());
                return Ok(out);
            };
            for (name, sql) in disc {
                match sql.as_str() {
                    Some(s) if !s.is_empty() => {
                        out.discovery.insert(name.clone(), s.to_string());
                    }
                    _ => {
                        out.discovery.clear();
                        out.invalid = Some(format!("invalid discovery query for {name}"));
                        return Ok(out);
                    }
                }
            }
        }

        if let Some(queries) = obj.get("queries") {
            let Some(queries) = queries.as_object() else {
                out.invalid = Some("queries is not an object".into());
                return Ok(out);
            };
            for (name, sql) in queries {
                match sql.as_str() {
                    Some(s) if !s.is_empty() && !name.is_empty() => {
                        out.queries.insert(name.clone(), s.to_string());
                    }
                    _ => {
                        out.invalid = Some(format!("invalid distributed query {name:?}"));
                        return Ok(out);
                    }
                }
            }
        }

        out.accelerate = obj.get("accelerate").and_then(json_int32);
        Ok(out)
    }

    /// Apply the discovery rule: run every discovery query first; a name whose discovery
    /// yields 0 rows is dropped silently; a discovery SQL error discards the whole response.
    pub fn accept(&self, answerer: &dyn QueryAnswerer, ctx: &AnswerContext<'_>) -> AcceptedWork {
        if self.invalid.is_some() && self.queries.is_empty() {
            return AcceptedWork {
                error: self.invalid.clone(),
                ..AcceptedWork::default()
            };
        }
        let mut skipped = BTreeSet::new();
        for (name, sql) in &self.discovery {
            match answerer.discover(sql, ctx) {
                Ok(0) => {
                    skipped.insert(name.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    return AcceptedWork {
                        error: Some(format!("discovery query for {name} failed: {e}")),
                        ..AcceptedWork::default()
                    };
                }
            }
        }
        let run = self
            .queries
            .iter()
            .filter(|(name, _)| !skipped.contains(*name))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        AcceptedWork {
            run,
            skipped: skipped
                .into_iter()
                .filter(|n| self.queries.contains_key(n))
                .collect(),
            accelerate: if self.invalid.is_none() {
                self.accelerate
            } else {
                None
            },
            error: self.invalid.clone(),
        }
    }
}

fn json_int32(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if !(n.is_i64() || n.is_u64()) {
        return None;
    }
    let i = n.as_i64()?;
    (i32::MIN as i64..=i32::MAX as i64)
        .contains(&i)
        .then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::QueryAnswer;
    use crate::intervals::Intervals;
    use serde_json::json;

    /// `SELECT 1` → one row, `SELECT 0 rows` → none, `BAD` → SQL error.
    struct Stub;
    impl QueryAnswerer for Stub {
        fn discover(&self, sql: &str, _: &AnswerContext<'_>) -> Result<usize, String> {
            match sql {
                "SELECT 1" => Ok(1),
                "BAD" => Err("near \"BAD\": syntax error".into()),
                _ => Ok(0),
            }
        }
        fn answer(&self, _: &str, _: &str, _: &AnswerContext<'_>) -> QueryAnswer {
            QueryAnswer::rows(vec![])
        }
    }

    fn accept(v: Value) -> AcceptedWork {
        let iv = Intervals::default();
        ReadResponse::from_json(&v)
            .unwrap()
            .accept(&Stub, &AnswerContext::new(&iv))
    }

    #[test]
    fn accelerate_only_as_integer() {
        let acc = |v: Value| {
            ReadResponse::from_json(&json!({ "accelerate": v }))
                .unwrap()
                .accelerate
        };
        assert_eq!(acc(json!(300)), Some(300));
        assert_eq!(acc(json!("60")), None);
        assert_eq!(acc(json!(60.0)), None);
        assert_eq!(acc(json!(true)), None);
        assert_eq!(acc(json!(5_000_000_000u64)), None);
    }

    #[test]
    fn discovery_drops_zero_row_queries_silently() {
        let w = accept(json!({
            "queries": {"b": "SELECT * FROM users", "a": "SELECT 2", "c": "SELECT 3"},
            "discovery": {"a": "SELECT 1", "b": "SELECT 0 rows"},
            "accelerate": 10
        }));
        assert_eq!(
            w.run.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert_eq!(w.skipped, vec!["b".to_string()]);
        assert_eq!(w.accelerate, Some(10));
        assert!(w.error.is_none());
    }

    #[test]
    fn discovery_error_discards_everything() {
        let w = accept(json!({
            "queries": {"a": "SELECT 2", "b": "SELECT 3"},
            "discovery": {"a": "BAD"},
            "accelerate": 10
        }));
        assert!(w.run.is_empty());
        assert_eq!(w.accelerate, None);
        assert!(w.error.is_some());
        let w =
            accept(json!({"queries": {"a": "SELECT 2"}, "discovery": {"a": ""}, "accelerate": 5}));
        assert!(w.run.is_empty() && w.accelerate.is_none() && w.error.is_some());
    }

    #[test]
    fn invalid_query_entry_stops_processing() {
        let w =
            accept(json!({"queries": {"a": "SELECT 1", "b": 7, "c": "SELECT 3"}, "accelerate": 5}));
        assert_eq!(w.run, vec![("a".to_string(), "SELECT 1".to_string())]);
        assert!(w.accelerate.is_none());
        assert!(w.error.is_some());
    }

    #[test]
    fn not_an_object() {
        assert!(ReadResponse::from_json(&json!([])).is_err());
        assert_eq!(
            ReadResponse::from_json(&json!({})).unwrap(),
            ReadResponse::default()
        );
    }
}
