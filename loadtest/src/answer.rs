//! The seam between the simulated transport and simulated query execution.

use serde::{Deserialize, Serialize};

use crate::intervals::Intervals;
use crate::sql::Row;

/// Why a query is being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// A query from a distributed read (detail, label, policy or live query).
    Distributed,
    /// A scheduled query from the config (`schedule` or `packs`).
    Scheduled,
    /// A decorator query from the config.
    Decorator,
}

/// What an answerer may know about the agent asking.
#[derive(Debug, Clone, Copy)]
pub struct AnswerContext<'a> {
    /// Why the query runs.
    pub kind: QueryKind,
    /// The agent's current timing flags (for `osquery_flags`).
    pub intervals: &'a Intervals,
    /// Hash of the loaded config, `""` if none (for `osquery_info.config_hash`).
    pub config_hash: &'a str,
}

impl<'a> AnswerContext<'a> {
    /// A context for a distributed query with no config loaded.
    pub fn new(intervals: &'a Intervals) -> Self {
        AnswerContext {
            kind: QueryKind::Distributed,
            intervals,
            config_hash: "",
        }
    }

    /// The same context for another kind of query.
    pub fn with_kind(mut self, kind: QueryKind) -> Self {
        self.kind = kind;
        self
    }
}

/// Per-query performance numbers of a distributed write (`stats`, osquery 5.8+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStats {
    /// Wall-clock time, ms.
    pub wall_time_ms: u64,
    /// User CPU time of the osquery process during the query, ms.
    pub user_time: u64,
    /// System CPU time of the osquery process during the query, ms.
    pub system_time: u64,
    /// Growth of resident memory, bytes (0 if it shrank).
    pub memory: u64,
}

/// The outcome of running one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAnswer {
    /// Rows (all values strings), or the SQL/table error text.
    pub result: Result<Vec<Row>, String>,
    /// Performance numbers.
    pub stats: QueryStats,
}

impl QueryAnswer {
    /// A successful answer.
    pub fn rows(rows: Vec<Row>) -> Self {
        QueryAnswer {
            result: Ok(rows),
            stats: QueryStats::default(),
        }
    }

    /// A failed answer with osquery's error text (e.g. `no such table: foo`).
    pub fn failed(message: impl Into<String>) -> Self {
        QueryAnswer {
            result: Err(message.into()),
            stats: QueryStats::default(),
        }
    }

    /// Replace the stats.
    pub fn with_stats(mut self, stats: QueryStats) -> Self {
        self.stats = stats;
        self
    }
}

/// Executes queries for a simulated agent. Implementations decide what the host "has".
pub trait QueryAnswerer: Send + Sync {
    /// Run a discovery query: the number of rows it yields, or an SQL error (which makes the
    /// agent drop the whole distributed read response, as osquery does).
    fn discover(&self, sql: &str, ctx: &AnswerContext<'_>) -> Result<usize, String>;

    /// Run query `name` (`sql`).
    fn answer(&self, name: &str, sql: &str, ctx: &AnswerContext<'_>) -> QueryAnswer;
}
