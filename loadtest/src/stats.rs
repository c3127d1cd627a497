//! Request counters: live atomics per agent and serialisable snapshots that can be summed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::endpoints::Endpoint;

#[derive(Debug, Default)]
struct EndpointCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
}

/// Live counters of one agent, shared by all its "threads". Cheap to update from many tasks.
///
/// Every HTTP exchange goes through [`AgentCounters::record`], which is the single place to
/// hook finer measurements (e.g. latency histograms) in later.
#[derive(Debug, Default)]
pub struct AgentCounters {
    endpoints: [EndpointCounters; 7],
    enrolls: AtomicU64,
    node_invalid: AtomicU64,
}

impl AgentCounters {
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

#[cfg(test)]
mod tests {
    use super::*;

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
