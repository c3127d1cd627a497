//! What the agent takes from a config: pushed options, scheduled queries, decorators
//! (reference §6), and the result lines scheduled queries produce (§8.3, §9).

use serde_json::{Map, Value, json};

use crate::answer::{AnswerContext, QueryAnswerer, QueryKind};
use crate::clock::calendar_time;
use crate::host::{HostProfile, fnv1a};
use crate::sql::Row;

/// Options from a config's `options` object that the simulator honours.
/// Values may be numbers, numeric strings or booleans, as osquery accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigOptions {
    pub distributed_interval: Option<u64>,
    pub distributed_tls_max_attempts: Option<u64>,
    pub logger_tls_period: Option<u64>,
    pub logger_tls_max_lines: Option<u64>,
    pub logger_tls_compress: Option<bool>,
    pub pack_delimiter: Option<String>,
}

fn opt_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn opt_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_u64().map(|n| n != 0),
        _ => None,
    }
}

impl ConfigOptions {
    pub fn from_config(config: &Value) -> Self {
        let Some(o) = config.get("options").and_then(Value::as_object) else {
            return ConfigOptions::default();
        };
        ConfigOptions {
            distributed_interval: o.get("distributed_interval").and_then(opt_u64),
            distributed_tls_max_attempts: o.get("distributed_tls_max_attempts").and_then(opt_u64),
            logger_tls_period: o.get("logger_tls_period").and_then(opt_u64),
            logger_tls_max_lines: o.get("logger_tls_max_lines").and_then(opt_u64),
            logger_tls_compress: o.get("logger_tls_compress").and_then(opt_bool),
            pack_delimiter: o
                .get("pack_delimiter")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// A 40-hex-digit fingerprint of a config (stands in for osquery's SHA-1 `config_hash`).
pub(crate) fn config_hash(config: &Value) -> String {
    let text = config.to_string();
    let parts = [
        fnv1a(&text),
        fnv1a(&format!("a{text}")),
        fnv1a(&format!("b{text}")),
    ];
    let hex = format!("{:016x}{:016x}{:016x}", parts[0], parts[1], parts[2]);
    hex[..40].to_string()
}

/// One scheduled query and its differential state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduledQuery {
    pub name: String,
    pub sql: String,
    pub interval: u64,
    pub splayed: u64,
    pub snapshot: bool,
    pub removed: bool,
    previous: Option<Vec<Row>>,
    counter: u64,
}

/// Queries and decorations of the current config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schedule {
    pub queries: Vec<ScheduledQuery>,
    pub decorations: Map<String, Value>,
    last_check: u64,
}

const DEFAULT_INTERVAL: u64 = 3600;
const MAX_INTERVAL: u64 = 604_800;
const SPLAY_PERCENT: u64 = 10;

fn parse_query(name: String, q: &Value, profile: &HostProfile) -> Option<ScheduledQuery> {
    let sql = q.get("query")?.as_str()?.to_string();
    if sql.is_empty() {
        return None;
    }
    if let Some(p) = q.get("platform").and_then(Value::as_str)
        && !profile.template.matches_platform(p)
    {
        return None;
    }
    let interval = q
        .get("interval")
        .map(opt_u64)
        .unwrap_or(Some(DEFAULT_INTERVAL))?;
    if !(1..=MAX_INTERVAL).contains(&interval) {
        return None;
    }
    let splay = interval * SPLAY_PERCENT / 100;
    let offset = (profile.seed ^ fnv1a(&name)) % (2 * splay + 1);
    let splayed = (interval - splay + offset).max(1);
    Some(ScheduledQuery {
        name,
        sql,
        interval,
        splayed,
        snapshot: q.get("snapshot").and_then(opt_bool).unwrap_or(false),
        removed: q.get("removed").and_then(opt_bool).unwrap_or(true),
        previous: None,
        counter: 0,
    })
}

impl Schedule {
    /// Build from a config. Differential state of queries with an unchanged name and SQL is
    /// carried over from `previous`. Pack `discovery` queries must all yield rows.
    pub fn from_config(
        config: &Value,
        delimiter: &str,
        profile: &HostProfile,
        answerer: &dyn QueryAnswerer,
        ctx: &AnswerContext<'_>,
        previous: Option<&Schedule>,
        now: u64,
    ) -> Schedule {
        let mut queries = Vec::new();
        if let Some(s) = config.get("schedule").and_then(Value::as_object) {
            queries.extend(
                s.iter()
                    .filter_map(|(n, q)| parse_query(n.clone(), q, profile)),
            );
        }
        if let Some(packs) = config.get("packs").and_then(Value::as_object) {
            let disc_ctx = ctx.with_kind(QueryKind::Scheduled);
            for (pack_name, pack) in packs {
                // Pack strings (paths/URLs) are not supported by the TLS config plugin.
                let Some(pack) = pack.as_object() else {
                    continue;
                };
                if let Some(p) = pack.get("platform").and_then(Value::as_str)
                    && !profile.template.matches_platform(p)
                {
                    continue;
                }
                let discovered = pack
                    .get("discovery")
                    .and_then(Value::as_array)
                    .is_none_or(|d| {
                        d.iter().all(|sql| {
                            sql.as_str().is_some_and(
                                |s| matches!(answerer.discover(s, &disc_ctx), Ok(n) if n > 0),
                            )
                        })
                    });
                if !discovered {
                    continue;
                }
                let Some(qs) = pack.get("queries").and_then(Value::as_object) else {
                    continue;
                };
                for (qname, q) in qs {
                    let full = format!("pack{delimiter}{pack_name}{delimiter}{qname}");
                    queries.extend(parse_query(full, q, profile));
                }
            }
        }
        if let Some(prev) = previous {
            for q in &mut queries {
                if let Some(p) = prev
                    .queries
                    .iter()
                    .find(|p| p.name == q.name && p.sql == q.sql)
                {
                    q.previous = p.previous.clone();
                    q.counter = p.counter;
                }
            }
        }

        let mut decorations = Map::new();
        if let Some(d) = config.get("decorators").and_then(Value::as_object) {
            let dctx = ctx.with_kind(QueryKind::Decorator);
            for key in ["load", "always"] {
                for sql in d
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if let Ok(rows) = answerer.answer("", sql, &dctx).result
                        && let Some(first) = rows.into_iter().next()
                    {
                        decorations.extend(first.into_iter().map(|(k, v)| (k, Value::String(v))));
                    }
                }
            }
        }
        Schedule {
            queries,
            decorations,
            last_check: previous.map_or(now, |p| p.last_check),
        }
    }

    /// Run the queries whose splayed interval boundary (wall-clock multiples, as osquery's
    /// scheduler) passed since the last call. Returns result lines and failures (name, error).
    pub fn run_due(
        &mut self,
        now: u64,
        answerer: &dyn QueryAnswerer,
        ctx: &AnswerContext<'_>,
        host_identifier: &str,
    ) -> (Vec<Value>, Vec<(String, String)>) {
        let last = self.last_check;
        self.last_check = now;
        let mut lines = Vec::new();
        let mut failures = Vec::new();
        let sctx = ctx.with_kind(QueryKind::Scheduled);
        for q in &mut self.queries {
            if now / q.splayed <= last / q.splayed {
                continue;
            }
            match answerer.answer(&q.name, &q.sql, &sctx).result {
                Ok(rows) => {
                    lines.extend(q.result_lines(rows, host_identifier, &self.decorations, now))
                }
                Err(e) => failures.push((q.name.clone(), e)),
            }
        }
        (lines, failures)
    }
}

impl ScheduledQuery {
    fn common(
        &self,
        host_identifier: &str,
        decorations: &Map<String, Value>,
        now: u64,
    ) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("hostIdentifier".into(), json!(host_identifier));
        m.insert("calendarTime".into(), json!(calendar_time(now)));
        m.insert("unixTime".into(), json!(now));
        m.insert("epoch".into(), json!(0));
        m.insert("counter".into(), json!(self.counter));
        m.insert("numerics".into(), json!(false));
        if !decorations.is_empty() {
            m.insert("decorations".into(), Value::Object(decorations.clone()));
        }
        m
    }

    /// Lines for one execution: a snapshot line, or event-format differential lines
    /// (`added`/`removed`, counter 0 on the first run, +1 on every later run with a diff).
    fn result_lines(
        &mut self,
        rows: Vec<Row>,
        host_identifier: &str,
        decorations: &Map<String, Value>,
        now: u64,
    ) -> Vec<Value> {
        let to_obj = |r: &Row| {
            Value::Object(
                r.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        if self.snapshot {
            let mut m = self.common(host_identifier, decorations, now);
            m.insert(
                "snapshot".into(),
                Value::Array(rows.iter().map(to_obj).collect()),
            );
            m.insert("action".into(), json!("snapshot"));
            return vec![Value::Object(m)];
        }
        let (added, removed): (Vec<Row>, Vec<Row>) = match &self.previous {
            None => (rows.clone(), Vec::new()),
            Some(prev) => (
                rows.iter().filter(|r| !prev.contains(r)).cloned().collect(),
                prev.iter().filter(|r| !rows.contains(r)).cloned().collect(),
            ),
        };
        let first = self.previous.is_none();
        self.previous = Some(rows);
        let removed = if self.removed { removed } else { Vec::new() };
        if added.is_empty() && removed.is_empty() {
            return Vec::new();
        }
        if !first {
            self.counter += 1;
        }
        let mut lines = Vec::new();
        for (action, set) in [("added", &added), ("removed", &removed)] {
            for r in set {
                let mut m = self.common(host_identifier, decorations, now);
                m.insert("columns".into(), to_obj(r));
                m.insert("action".into(), json!(action));
                lines.push(Value::Object(m));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::Intervals;
    use crate::template::OsTemplate;
    use crate::template_answerer::{LiveQueryProfile, TemplateAnswerer};

    #[test]
    fn options_accept_numbers_and_strings() {
        let o = ConfigOptions::from_config(&json!({"options": {
            "distributed_interval": 10, "logger_tls_period": "7", "logger_tls_compress": "true", "pack_delimiter": "/"
        }}));
        assert_eq!(o.distributed_interval, Some(10));
        assert_eq!(o.logger_tls_period, Some(7));
        assert_eq!(o.logger_tls_compress, Some(true));
        assert_eq!(o.pack_delimiter.as_deref(), Some("/"));
        assert_eq!(config_hash(&json!({"a": 1})).len(), 40);
    }

    #[test]
    fn schedule_packs_decorators_and_diffs() {
        let profile = HostProfile::new(OsTemplate::Ubuntu, "h1", "5.23.1");
        let ans = TemplateAnswerer::new(profile.clone(), LiveQueryProfile::default());
        let iv = Intervals::default();
        let ctx = AnswerContext::new(&iv);
        let config = json!({
            "schedule": {"info": {"query": "SELECT version FROM osquery_info", "interval": 10}},
            "packs": {
                "Global": {"queries": {
                    "snap": {"query": "SELECT hostname FROM system_info", "interval": 60, "snapshot": true},
                    "win_only": {"query": "SELECT 1", "interval": 60, "platform": "windows"}
                }},
                "needs_windows": {"discovery": ["SELECT 1 FROM os_version WHERE platform = 'windows'"],
                                  "queries": {"x": {"query": "SELECT 1", "interval": 60}}},
                "remote": "/path/to/pack.conf"
            },
            "decorators": {"load": ["SELECT uuid AS host_uuid FROM system_info;"]}
        });
        let mut s = Schedule::from_config(&config, "/", &profile, &ans, &ctx, None, 1_000_000);
        let names: Vec<&str> = s.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, vec!["info", "pack/Global/snap"]);
        assert_eq!(s.decorations["host_uuid"], json!(profile.hardware_uuid));
        let info = &s.queries[0];
        assert!((9..=11).contains(&info.splayed));

        // Two hours later everything is due once.
        let (lines, failures) = s.run_due(1_007_200, &ans, &ctx, "h1");
        assert!(failures.is_empty());
        let diff: Vec<&Value> = lines.iter().filter(|l| l["name"] == "info").collect();
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0]["action"], "added");
        assert_eq!(diff[0]["counter"], 0);
        assert_eq!(diff[0]["columns"]["version"], "5.23.1");
        assert_eq!(
            diff[0]["decorations"]["host_uuid"],
            json!(profile.hardware_uuid)
        );
        let snap: Vec<&Value> = lines
            .iter()
            .filter(|l| l["name"] == "pack/Global/snap")
            .collect();
        assert_eq!(snap[0]["action"], "snapshot");
        assert_eq!(snap[0]["snapshot"][0]["hostname"], "h1");
        // Unchanged rows → no differential line the next time.
        let (lines, _) = s.run_due(1_014_400, &ans, &ctx, "h1");
        assert!(lines.iter().all(|l| l["name"] != "info"));
        // Nothing is due twice within the same interval slot.
        let (lines, _) = s.run_due(1_014_400, &ans, &ctx, "h1");
        assert!(lines.is_empty());
    }
}
