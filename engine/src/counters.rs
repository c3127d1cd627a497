//! Counters the engine keeps for metrics and tests (read them; never branch on them).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the host side of the engine has done since start.
#[derive(Default, Debug)]
pub struct HostCounters {
    pub enrollments: Counter,
    pub reenrollments: Counter,
    pub reads: Counter,
    /// Reads answered from the compact record without an actor.
    pub reads_without_actor: Counter,
    pub writes: Counter,
    pub unknown_node_keys: Counter,
    pub activations: Counter,
    pub deactivations: Counter,
    pub live_results: Counter,
    pub flushes: Counter,
    pub flush_failures: Counter,
    pub rows_flushed: Counter,
}
