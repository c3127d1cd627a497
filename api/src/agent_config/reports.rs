//! `Reports`: Fleet's query reports — the latest snapshot rows each host sent for each
//! scheduled query, at most [`Reports::cap`] rows per query — kept in memory and written to the
//! store in batches, off the log endpoint's path.
//!
//! The log handler records a host's newest answer with [`Reports::record`] (a map update);
//! [`Reports::run_flusher`] writes what changed every flush interval, and at shutdown
//! ([`Reports::flush`]). At start the stored reports are loaded back.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_engine::HostId;
use flotilla_engine::store::StoreError;
use flotilla_storage::admin::{AdminStore, QueryId, ReportRows};
use parking_lot::Mutex;

/// Fleet's default `query_report_cap`.
pub const DEFAULT_REPORT_CAP: usize = 1000;

/// One host's latest answer: when it arrived and its rows (JSON objects as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostReport {
    pub last_fetched: i64,
    pub rows: Arc<[String]>,
}

#[derive(Default)]
struct QueryReport {
    hosts: BTreeMap<HostId, HostReport>,
    rows: usize,
}

#[derive(Default)]
struct Inner {
    queries: BTreeMap<QueryId, QueryReport>,
    /// (query, host) pairs changed since the last flush.
    dirty: HashSet<(QueryId, HostId)>,
}

pub struct Reports {
    inner: Mutex<Inner>,
    cap: usize,
}

impl Reports {
    pub fn new(cap: usize) -> Reports {
        Reports {
            inner: Mutex::new(Inner::default()),
            cap,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Reports as the store has them.
    pub async fn load(store: &dyn AdminStore, cap: usize) -> Result<Reports, StoreError> {
        let reports = Reports::new(cap);
        let stored_reports = store.reports().await?;
        {
            let mut inner = reports.inner.lock();
            for stored in stored_reports {
                let report = inner.queries.entry(stored.query).or_default();
                report.rows += stored.rows.len();
                report.hosts.insert(
                    stored.host,
                    HostReport {
                        last_fetched: stored.last_fetched,
                        rows: stored.rows.into(),
                    },
                );
            }
        }
        Ok(reports)
    }

    /// Replaces `host`'s rows for `query` with its newer answer, within the cap: an answer of
    /// more rows than the cap is not kept, and a report at its cap takes no new answers (as
    /// Fleet does). Returns whether the answer was kept.
    pub fn record(
        &self,
        query: QueryId,
        host: HostId,
        last_fetched: i64,
        rows: Vec<String>,
    ) -> bool {
        if rows.len() > self.cap {
            return false;
        }
        let mut inner = self.inner.lock();
        let report = inner.queries.entry(query).or_default();
        if report.rows >= self.cap {
            return false;
        }
        let previous = report.hosts.get(&host).map_or(0, |h| h.rows.len());
        let room = self.cap - (report.rows - previous);
        let mut rows = rows;
        rows.truncate(room);
        report.rows = report.rows - previous + rows.len();
        report.hosts.insert(
            host,
            HostReport {
                last_fetched,
                rows: rows.into(),
            },
        );
        inner.dirty.insert((query, host));
        true
    }

    /// Every host's answer to `query`, by host id, and whether the report is at its cap.
    pub fn query(&self, query: QueryId) -> (Vec<(HostId, HostReport)>, bool) {
        let inner = self.inner.lock();
        match inner.queries.get(&query) {
            Some(report) => (
                report
                    .hosts
                    .iter()
                    .map(|(host, rows)| (*host, rows.clone()))
                    .collect(),
                report.rows >= self.cap,
            ),
            None => (Vec::new(), false),
        }
    }

    /// One host's answer to `query`, and whether the report is at its cap.
    pub fn host(&self, query: QueryId, host: HostId) -> (Option<HostReport>, bool) {
        let inner = self.inner.lock();
        match inner.queries.get(&query) {
            Some(report) => (report.hosts.get(&host).cloned(), report.rows >= self.cap),
            None => (None, false),
        }
    }

    /// Forgets a query's report in memory; the caller deletes it from the store.
    pub fn forget(&self, query: QueryId) {
        let mut inner = self.inner.lock();
        inner.queries.remove(&query);
        inner.dirty.retain(|(q, _)| *q != query);
    }

    /// Writes every change since the last flush. On failure the changes stay for the next one.
    pub async fn flush(&self, store: &dyn AdminStore) -> Result<usize, StoreError> {
        let batch: Vec<ReportRows> = {
            let mut inner = self.inner.lock();
            let dirty: Vec<(QueryId, HostId)> = inner.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|(query, host)| {
                    let report = inner.queries.get(&query)?.hosts.get(&host)?;
                    Some(ReportRows {
                        query,
                        host,
                        last_fetched: report.last_fetched,
                        rows: report.rows.to_vec(),
                    })
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(error) = store.write_reports(&batch).await {
            let mut inner = self.inner.lock();
            inner
                .dirty
                .extend(batch.iter().map(|report| (report.query, report.host)));
            return Err(error);
        }
        Ok(batch.len())
    }

    /// Flushes every `interval` until `stop` fires (or its sender is dropped), then flushes
    /// once more and returns that last flush's outcome. A flush in progress is never cut
    /// short, so nothing it took from the dirty set is lost.
    pub async fn run_flusher(
        self: Arc<Self>,
        store: Arc<dyn AdminStore>,
        interval: Duration,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<usize, StoreError> {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(error) = self.flush(store.as_ref()).await {
                        tracing::warn!(%error, "writing query reports failed; retrying at the next flush");
                    }
                }
                _ = &mut stop => return self.flush(store.as_ref()).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"n\":\"{i}\"}}")).collect()
    }

    #[test]
    fn a_hosts_newest_answer_replaces_its_rows() {
        let reports = Reports::new(10);
        assert!(reports.record(QueryId(1), HostId(1), 100, rows(3)));
        assert!(reports.record(QueryId(1), HostId(1), 200, rows(2)));
        let (hosts, clipped) = reports.query(QueryId(1));
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].1.rows.len(), 2);
        assert_eq!(hosts[0].1.last_fetched, 200);
        assert!(!clipped);
    }

    #[test]
    fn reports_stop_at_the_cap() {
        let reports = Reports::new(10);
        assert!(
            !reports.record(QueryId(1), HostId(9), 1, rows(11)),
            "too many alone"
        );
        for host in 1..=3 {
            assert!(reports.record(QueryId(1), HostId(host), 1, rows(4)));
        }
        // 4 + 4 + 2 (truncated to fit): at the cap.
        let (hosts, clipped) = reports.query(QueryId(1));
        assert_eq!(hosts.iter().map(|(_, r)| r.rows.len()).sum::<usize>(), 10);
        assert!(clipped);
        assert!(!reports.record(QueryId(1), HostId(4), 2, rows(1)), "full");
        assert!(reports.query(QueryId(2)).0.is_empty());
        reports.forget(QueryId(1));
        assert!(reports.query(QueryId(1)).0.is_empty());
    }
}
