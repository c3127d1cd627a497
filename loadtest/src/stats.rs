//! Request counters: live atomics (per agent, or one set shared by many agents), optional
//! latency histograms, and serialisable snapshots that can be summed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::endpoints::Endpoint;

#[derive(Debug, Default)]
struct EndpointCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
}

/// Largest latency a histogram tracks exactly (µs); longer requests are recorded as this.
/// Requests time out after 16 s, so a minute leaves room for retries' clocks.
pub const HISTOGRAM_MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds: 1 µs to [`HISTOGRAM_MAX_US`], 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3).expect("valid histogram bounds")
}

/// Latency histograms: one per endpoint for the whole run, plus one over all endpoints that
/// the progress display empties every tick ([`AgentCounters::take_interval`]).
#[derive(Debug)]
struct Histograms {
    per_endpoint: Vec<Histogram<u64>>,
    interval: Histogram<u64>,
    /// Requests, errors and latencies from the steady-state start on (see
    /// [`AgentCounters::steady_from`]), per endpoint.
    steady: Vec<(u64, u64, Histogram<u64>)>,
}

/// One endpoint's requests, errors and latency histogram in the steady state.
pub type SteadyEndpoint = (u64, u64, Histogram<u64>);

/// Live counters of one agent, shared by all its "threads" — or, in the load tester, by every
/// agent. Cheap to update from many tasks.
///
/// Every HTTP exchange goes through [`AgentCounters::record`]. Counters made with
/// [`AgentCounters::with_histograms`] also keep latency histograms (about 1 MB, so share one
/// set between agents rather than giving each agent its own).
#[derive(Debug, Default)]
pub struct AgentCounters {
    endpoints: [EndpointCounters; Endpoint::ALL.len()],
    enrolls: AtomicU64,
    node_invalid: AtomicU64,
    key_holders: AtomicI64,
    histograms: Option<Mutex<Histograms>>,
    steady_start: OnceLock<Instant>,
}

impl AgentCounters {
    /// Counters that also keep latency histograms (see [`AgentCounters::latency`]).
    pub fn with_histograms() -> Self {
        AgentCounters {
            histograms: Some(Mutex::new(Histograms {
                per_endpoint: Endpoint::ALL.iter().map(|_| latency_histogram()).collect(),
                interval: latency_histogram(),
                steady: Endpoint::ALL
                    .iter()
                    .map(|_| (0, 0, latency_histogram()))
                    .collect(),
            })),
            ..AgentCounters::default()
        }
    }

    /// Record one HTTP exchange (one attempt): its latency and whether it failed
    /// (transport error or a failure by osquery's response rules).
    pub fn record(&self, endpoint: Endpoint, elapsed: Duration, failed: bool) {
        let c = &self.endpoints[endpoint.index()];
        c.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        c.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        c.latency_us_max.fetch_max(us, Ordering::Relaxed);
        if let Some(h) = &self.histograms {
            let steady = self
                .steady_start
                .get()
                .is_some_and(|start| Instant::now() >= *start);
            let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
            h.per_endpoint[endpoint.index()].saturating_record(us.max(1));
            h.interval.saturating_record(us.max(1));
            if steady {
                let (requests, errors, latency) = &mut h.steady[endpoint.index()];
                *requests += 1;
                *errors += u64::from(failed);
                latency.saturating_record(us.max(1));
            }
        }
    }

    /// Counts exchanges that start after `start` (by when they finish) a second time, as the
    /// steady state: the run once enrollment and first check-ins are over. Only the first call
    /// counts.
    pub fn steady_from(&self, start: Instant) {
        let _ = self.steady_start.set(start);
    }

    /// `endpoint`'s requests, errors and latencies in the steady state, if histograms are kept.
    pub fn steady(&self, endpoint: Endpoint) -> Option<SteadyEndpoint> {
        let h = self.histograms.as_ref()?;
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        Some(h.steady[endpoint.index()].clone())
    }

    /// Latency histogram of `endpoint` over the whole run (µs), if histograms are kept.
    pub fn latency(&self, endpoint: Endpoint) -> Option<Histogram<u64>> {
        let h = self.histograms.as_ref()?;
        let h = h.lock().unwrap_or_else(|p| p.into_inner());
        Some(h.per_endpoint[endpoint.index()].clone())
    }

    /// The all-endpoint histogram since the previous call, which starts a new interval.
    pub fn take_interval(&self) -> Option<Histogram<u64>> {
        let h = self.histograms.as_ref()?;
        let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
        let taken = h.interval.clone();
        h.interval.reset();
        Some(taken)
    }

    /// Note that an agent now holds a node key (`true`) or lost it (`false`).
    pub fn record_key_held(&self, held: bool) {
        self.key_holders
            .fetch_add(if held { 1 } else { -1 }, Ordering::Relaxed);
    }

    /// Agents counting into these counters that hold a node key right now.
    pub fn key_holders(&self) -> u64 {
        u64::try_from(self.key_holders.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Requests and errors over all endpoints so far.
    pub fn totals(&self) -> (u64, u64) {
        self.endpoints.iter().fold((0, 0), |(r, e), c| {
            (
                r + c.requests.load(Ordering::Relaxed),
                e + c.errors.load(Ordering::Relaxed),
            )
        })
    }

    /// Count one successful enrollment (a node key was obtained).
    pub fn record_enroll(&self) {
        self.enrolls.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one `node_invalid: true` response.
    pub fn record_node_invalid(&self) {
        self.node_invalid.fetch_add(1, Ordering::Relaxed);
    }

    /// Copy the counters. `has_node_key` says whether the agent currently holds a key.
    pub fn snapshot(&self, has_node_key: bool) -> AgentStats {
        let endpoints = Endpoint::ALL
            .iter()
            .map(|&e| {
                let c = &self.endpoints[e.index()];
                let s = EndpointStats {
                    requests: c.requests.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    latency_us_sum: c.latency_us_sum.load(Ordering::Relaxed),
                    latency_us_max: c.latency_us_max.load(Ordering::Relaxed),
                };
                (e, s)
            })
            .collect();
        AgentStats {
            endpoints,
            enrolls: self.enrolls.load(Ordering::Relaxed),
            node_invalid: self.node_invalid.load(Ordering::Relaxed),
            hosts_with_node_key: u64::from(has_node_key),
        }
    }
}

/// Counters of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// HTTP requests sent (every retry attempt counts).
    pub requests: u64,
    /// Requests that failed (transport error or failure by osquery's rules).
    pub errors: u64,
    /// Sum of request latencies, µs.
    pub latency_us_sum: u64,
    /// Largest request latency, µs.
    pub latency_us_max: u64,
}

impl EndpointStats {
    /// Mean latency, or zero without requests.
    pub fn mean_latency(&self) -> Duration {
        Duration::from_micros(self.latency_us_sum.checked_div(self.requests).unwrap_or(0))
    }

    fn merge(&mut self, other: &EndpointStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_us_sum += other.latency_us_sum;
        self.latency_us_max = self.latency_us_max.max(other.latency_us_max);
    }
}

/// A snapshot of one agent's counters, or the sum over many agents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentStats {
    /// Per endpoint.
    pub endpoints: BTreeMap<Endpoint, EndpointStats>,
    /// Successful enrollments.
    pub enrolls: u64,
    /// `node_invalid: true` responses seen.
    pub node_invalid: u64,
    /// Agents holding a node key when the snapshot was taken (0 or 1 for one agent).
    pub hosts_with_node_key: u64,
}

impl AgentStats {
    /// Add `other` into `self`.
    pub fn merge(&mut self, other: &AgentStats) {
        for (e, s) in &other.endpoints {
            self.endpoints.entry(*e).or_default().merge(s);
        }
        self.enrolls += other.enrolls;
        self.node_invalid += other.node_invalid;
        self.hosts_with_node_key += other.hosts_with_node_key;
    }

    /// Counters of one endpoint (zero if never used).
    pub fn endpoint(&self, e: Endpoint) -> EndpointStats {
        self.endpoints.get(&e).copied().unwrap_or_default()
    }

    /// Requests over all endpoints.
    pub fn total_requests(&self) -> u64 {
        self.endpoints.values().map(|s| s.requests).sum()
    }

    /// Errors over all endpoints.
    pub fn total_errors(&self) -> u64 {
        self.endpoints.values().map(|s| s.errors).sum()
    }
}

/// Latency percentiles of a histogram in milliseconds with microsecond resolution
/// (all zero for an empty histogram).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest value, ms.
    pub max_ms: f64,
}

/// µs → ms, keeping three decimals (microsecond resolution).
pub fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Percentiles {
    /// Percentiles of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean_ms: (h.mean().round()) / 1000.0,
            p50_ms: us_to_ms(h.value_at_quantile(0.50)),
            p90_ms: us_to_ms(h.value_at_quantile(0.90)),
            p99_ms: us_to_ms(h.value_at_quantile(0.99)),
            max_ms: us_to_ms(h.max()),
        }
    }

    /// Percentiles of a list of durations (recorded into a histogram first).
    pub fn of_durations(values: impl IntoIterator<Item = Duration>) -> Self {
        let mut h = latency_histogram();
        for v in values {
            let us = u64::try_from(v.as_micros()).unwrap_or(u64::MAX);
            h.saturating_record(us.max(1));
        }
        Percentiles::of(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=1000 ms: p50 = 500 ms, p90 = 900 ms, p99 = 990 ms, max = 1000 ms.
        let p = Percentiles::of_durations((1..=1000).map(Duration::from_millis));
        assert_eq!(p.count, 1000);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.001;
        assert!(close(p.p50_ms, 500.0), "{p:?}");
        assert!(close(p.p90_ms, 900.0), "{p:?}");
        assert!(close(p.p99_ms, 990.0), "{p:?}");
        assert!(close(p.max_ms, 1000.0), "{p:?}");
        assert!(close(p.mean_ms, 500.5), "{p:?}");
        // Microsecond resolution below a millisecond.
        let small = Percentiles::of_durations([Duration::from_micros(123)]);
        assert_eq!(small.p50_ms, 0.123);
        assert_eq!(
            Percentiles::of(&latency_histogram()),
            Percentiles::default()
        );
    }

    #[test]
    fn shared_counters_keep_histograms_and_intervals() {
        let c = AgentCounters::with_histograms();
        c.record(Endpoint::DistributedRead, Duration::from_micros(800), false);
        c.record(Endpoint::DistributedRead, Duration::from_millis(20), false);
        c.record(Endpoint::Log, Duration::from_millis(2), true);
        let read = c.latency(Endpoint::DistributedRead).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(Percentiles::of(&read).p50_ms, 0.8);
        assert_eq!(c.take_interval().unwrap().len(), 3);
        assert_eq!(
            c.take_interval().unwrap().len(),
            0,
            "a new interval starts empty"
        );
        assert_eq!(
            c.latency(Endpoint::Log).unwrap().len(),
            1,
            "run totals stay"
        );
        assert_eq!(c.totals(), (3, 1));
        c.record_key_held(true);
        c.record_key_held(true);
        c.record_key_held(false);
        assert_eq!(c.key_holders(), 1);
        assert!(AgentCounters::default().latency(Endpoint::Log).is_none());
    }

    #[test]
    fn record_and_merge() {
        let c = AgentCounters::default();
        c.record(Endpoint::Config, Duration::from_millis(3), false);
        c.record(Endpoint::Config, Duration::from_millis(5), true);
        c.record_enroll();
        let a = c.snapshot(true);
        assert_eq!(a.endpoint(Endpoint::Config).requests, 2);
        assert_eq!(a.endpoint(Endpoint::Config).errors, 1);
        assert_eq!(
            a.endpoint(Endpoint::Config).mean_latency(),
            Duration::from_millis(4)
        );
        let mut sum = AgentStats::default();
        sum.merge(&a);
        sum.merge(&a);
        assert_eq!(sum.total_requests(), 4);
        assert_eq!(sum.enrolls, 2);
        assert_eq!(sum.hosts_with_node_key, 2);
        assert_eq!(sum.endpoint(Endpoint::Config).latency_us_max, 5000);
        let json = serde_json::to_value(&sum).unwrap();
        assert_eq!(json["endpoints"]["config"]["requests"], 4);
    }
}
