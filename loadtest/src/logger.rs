//! Log types, log line builders and the agent's in-memory log buffer (reference §8).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::calendar_time;

/// The `log_type` of a logger request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    /// Scheduled-query results.
    Result,
    /// glog status lines.
    Status,
}

impl LogType {
    /// `"result"` or `"status"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Result => "result",
            LogType::Status => "status",
        }
    }
}

/// What a status line says (glog record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEntry<'a> {
    /// 0 INFO, 1 WARNING, 2 ERROR.
    pub severity: u8,
    /// Source file of the log statement.
    pub filename: &'a str,
    /// Source line.
    pub line: u32,
    /// Text.
    pub message: &'a str,
}

/// A status line as osquery >= 5.10 formats it (`unixTime`, `severity`, `line` are numbers).
pub fn status_line(
    host_identifier: &str,
    version: &str,
    entry: &StatusEntry<'_>,
    decorations: &Map<String, Value>,
    unix: u64,
) -> Value {
    let mut v = json!({
        "hostIdentifier": host_identifier,
        "calendarTime": calendar_time(unix),
        "unixTime": unix,
        "severity": entry.severity,
        "filename": entry.filename,
        "line": entry.line,
        "message": entry.message,
        "version": version,
    });
    if !decorations.is_empty()
        && let Value::Object(m) = &mut v
    {
        m.insert("decorations".into(), Value::Object(decorations.clone()));
    }
    v
}

/// Buffered result and status lines with osquery's flush quota (results first).
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    results: VecDeque<Value>,
    statuses: VecDeque<Value>,
    /// `buffered_log_max` (0 = unlimited).
    pub max_buffered: usize,
    backoff: [Backoff; 2],
}

#[derive(Debug, Default, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

fn slot(t: LogType) -> usize {
    match t {
        LogType::Result => 0,
        LogType::Status => 1,
    }
}

impl LogBuffer {
    pub fn new(max_buffered: usize) -> Self {
        LogBuffer {
            max_buffered,
            ..LogBuffer::default()
        }
    }

    pub fn push(&mut self, t: LogType, line: Value) {
        match t {
            LogType::Result => self.results.push_back(line),
            LogType::Status => self.statuses.push_back(line),
        }
        if self.max_buffered > 0 {
            while self.len() > self.max_buffered {
                // Purge the oldest lines, taking from the longer queue.
                if self.results.len() >= self.statuses.len() {
                    self.results.pop_front();
                } else {
                    self.statuses.pop_front();
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.results.len() + self.statuses.len()
    }

    /// Lines of the next flush: up to `max_lines` in total, results first, statuses fill the rest.
    /// A type in backoff still uses its share of the quota but is not returned.
    pub fn batch(&self, max_lines: usize, now: Instant) -> (Vec<Value>, Vec<Value>) {
        let n_results = self.results.len().min(max_lines);
        let n_status = self.statuses.len().min(max_lines - n_results);
        let results = if self.allowed(LogType::Result, now) {
            self.results.iter().take(n_results).cloned().collect()
        } else {
            Vec::new()
        };
        let statuses = if self.allowed(LogType::Status, now) {
            self.statuses.iter().take(n_status).cloned().collect()
        } else {
            Vec::new()
        };
        (results, statuses)
    }

    pub fn allowed(&self, t: LogType, now: Instant) -> bool {
        self.backoff[slot(t)].until.is_none_or(|u| now >= u)
    }

    /// The first `n` lines of type `t` were delivered.
    pub fn ack(&mut self, t: LogType, n: usize) {
        let q = match t {
            LogType::Result => &mut self.results,
            LogType::Status => &mut self.statuses,
        };
        q.drain(..n.min(q.len()));
        self.backoff[slot(t)] = Backoff::default();
    }

    /// A send of type `t` failed: wait `period·n²` (capped) after `n` consecutive failures;
    /// no backoff when the cap is not above the period.
    pub fn fail(&mut self, t: LogType, period: Duration, cap: Duration, now: Instant) {
        let b = &mut self.backoff[slot(t)];
        b.failures = b.failures.saturating_add(1);
        if cap > period {
            let wait = period
                .saturating_mul(b.failures.saturating_mul(b.failures))
                .min(cap);
            b.until = Some(now + wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_prefers_results() {
        let mut b = LogBuffer::new(0);
        for i in 0..3 {
            b.push(LogType::Result, json!({ "r": i }));
            b.push(LogType::Status, json!({ "s": i }));
        }
        let now = Instant::now();
        let (r, s) = b.batch(4, now);
        assert_eq!((r.len(), s.len()), (3, 1));
        b.ack(LogType::Result, 3);
        let (r, s) = b.batch(4, now);
        assert_eq!((r.len(), s.len()), (0, 3));
    }

    #[test]
    fn backoff_is_per_type_and_squared() {
        let mut b = LogBuffer::new(0);
        b.push(LogType::Result, json!(1));
        b.push(LogType::Status, json!(2));
        let now = Instant::now();
        let p = Duration::from_secs(4);
        b.fail(LogType::Result, p, Duration::from_secs(3600), now);
        b.fail(LogType::Result, p, Duration::from_secs(3600), now);
        assert!(!b.allowed(LogType::Result, now + Duration::from_secs(15)));
        assert!(b.allowed(LogType::Result, now + Duration::from_secs(16)));
        assert!(b.allowed(LogType::Status, now));
        let (r, s) = b.batch(10, now);
        assert_eq!((r.len(), s.len()), (0, 1));
        b.ack(LogType::Result, 0);
        assert!(b.allowed(LogType::Result, now));
    }

    #[test]
    fn buffer_cap_purges_oldest() {
        let mut b = LogBuffer::new(2);
        for i in 0..5 {
            b.push(LogType::Result, json!(i));
        }
        assert_eq!(b.len(), 2);
        let (r, _) = b.batch(10, Instant::now());
        assert_eq!(r, vec![json!(3), json!(4)]);
    }

    #[test]
    fn status_line_fields() {
        let e = StatusEntry {
            severity: 0,
            filename: "init.cpp",
            line: 10,
            message: "hello",
        };
        let v = status_line("h1", "5.23.1", &e, &Map::new(), 1_785_837_600);
        assert_eq!(v["calendarTime"], "Tue Aug  4 10:00:00 2026 UTC");
        assert!(v["unixTime"].is_u64() && v["severity"].is_u64() && v["line"].is_u64());
        assert!(v.get("decorations").is_none());
    }
}
