//! The body of a `distributed/write` request (reference §7.5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::{QueryAnswer, QueryStats};
use crate::sql::Row;

/// Results of distributed queries awaiting (or in) one write request.
///
/// Serialises as `{"queries": {name: [rows]}, "statuses": {name: 0|1}, "messages": {name: ""},
/// "stats": {name: {...}}}`; the node key is added per attempt by [`WriteBody::to_json`].
/// A failed query has `[]` rows, status 1 and its error text as message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBody {
    /// Rows per query (string → string objects).
    pub queries: BTreeMap<String, Vec<Row>>,
    /// 0 = success, 1 = failure (osquery uses `Status::failure`, not SQLite codes).
    pub statuses: BTreeMap<String, u32>,
    /// Error text per query, `""` when it succeeded.
    pub messages: BTreeMap<String, String>,
    /// Performance numbers per query.
    pub stats: BTreeMap<String, QueryStats>,
}

impl WriteBody {
    /// Record the answer of query `name` (replacing an older result of the same name).
    pub fn insert(&mut self, name: &str, answer: QueryAnswer) {
        let (rows, status, message) = match answer.result {
            Ok(rows) => (rows, 0, String::new()),
            Err(e) => (Vec::new(), 1, e),
        };
        self.queries.insert(name.to_string(), rows);
        self.statuses.insert(name.to_string(), status);
        self.messages.insert(name.to_string(), message);
        self.stats.insert(name.to_string(), answer.stats);
    }

    /// Fold `newer` into `self`; on a name clash the newer result wins.
    pub fn merge(&mut self, newer: WriteBody) {
        self.queries.extend(newer.queries);
        self.statuses.extend(newer.statuses);
        self.messages.extend(newer.messages);
        self.stats.extend(newer.stats);
    }

    /// Number of query results.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// True without results (then no write request is sent).
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Query names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.queries.keys().cloned().collect()
    }

    /// The request body with `node_key`.
    pub fn to_json(&self, node_key: &str) -> Value {
        let mut v =
            serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()));
        if let Value::Object(m) = &mut v {
            m.insert("node_key".into(), Value::String(node_key.to_string()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_body_shape() {
        let mut w = WriteBody::default();
        let row: Row = [("pid".to_string(), "1234".to_string())]
            .into_iter()
            .collect();
        w.insert(
            "q_ok",
            QueryAnswer::rows(vec![row]).with_stats(QueryStats {
                wall_time_ms: 3,
                user_time: 1,
                system_time: 0,
                memory: 0,
            }),
        );
        w.insert("q_bad", QueryAnswer::failed("no such table: nope"));
        assert_eq!(
            w.to_json("key-1"),
            json!({
                "node_key": "key-1",
                "queries": {"q_ok": [{"pid": "1234"}], "q_bad": []},
                "statuses": {"q_ok": 0, "q_bad": 1},
                "messages": {"q_ok": "", "q_bad": "no such table: nope"},
                "stats": {
                    "q_ok": {"wall_time_ms": 3, "user_time": 1, "system_time": 0, "memory": 0},
                    "q_bad": {"wall_time_ms": 0, "user_time": 0, "system_time": 0, "memory": 0}
                }
            })
        );
    }

    #[test]
    fn newer_result_wins() {
        let mut old = WriteBody::default();
        old.insert("a", QueryAnswer::failed("x"));
        old.insert("b", QueryAnswer::rows(vec![]));
        let mut new = WriteBody::default();
        new.insert("a", QueryAnswer::rows(vec![]));
        old.merge(new);
        assert_eq!(old.len(), 2);
        assert_eq!(old.statuses["a"], 0);
        assert_eq!(old.messages["a"], "");
    }
}
