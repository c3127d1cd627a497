//! Counters the engine keeps for metrics and tests (read them; never branch on them).
//!
//! Everything here is a plain atomic, so recording costs one relaxed add on the path that does
//! the work. The API's `/metrics` reads these at scrape time; the engine itself knows nothing
//! of Prometheus.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::campaign_msg::FinishReason;

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

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

/// A value that goes up and down (a queue depth).
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of [`LatencyHistogram`]'s buckets: 1 ms to 10 s, as Prometheus'
/// default buckets minus the sub-millisecond ones.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations over [`LATENCY_BUCKETS`], lock-free: one observation is three
/// relaxed adds.
#[derive(Default, Debug)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last slot is "above the largest bound".
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// What [`LatencyHistogram::snapshot`] reads: sum in seconds, count, and the count of each
/// bucket by its upper bound (not cumulative, `+Inf` last), as prometheus-client encodes them.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub sum_seconds: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The buckets, their sum and count. The count is the sum of the buckets as read, so the
    /// snapshot is consistent even while others observe.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }
}

/// What the host side of the engine has done since start.
#[derive(Default, Debug)]
pub struct HostCounters {
    pub enrollments: Counter,
    pub reenrollments: Counter,
    /// Enrollments refused because the store failed (the agent retries).
    pub enroll_store_failures: Counter,
    pub reads: Counter,
    /// Reads answered from the compact record without an actor.
    pub reads_without_actor: Counter,
    pub writes: Counter,
    pub unknown_node_keys: Counter,
    /// Orbit enrollments that created a host, and those that re-keyed a known one.
    pub orbit_enrollments: Counter,
    pub orbit_reenrollments: Counter,
    /// Orbit requests with a key no host holds (orbit re-enrolls on the 401).
    pub unknown_orbit_keys: Counter,
    /// Fleet Desktop requests with a device token that is unknown or expired.
    pub device_auth_failures: Counter,
    pub activations: Counter,
    pub deactivations: Counter,
    /// Software inventories that differed from the host's last one and went to the writer.
    pub software_sets_changed: Counter,
    pub live_results: Counter,
    pub flushes: Counter,
    pub flush_failures: Counter,
    pub rows_flushed: Counter,
    /// How long each `flush_hosts` call to the store took, failed ones included.
    pub flush_duration: LatencyHistogram,
    /// Messages sent to the host writer that it has not taken yet.
    pub writer_queue: Gauge,
    /// Hosts whose vitals or labels wait in the writer for the next flush.
    pub writer_pending_hosts: Gauge,
}

/// What a relay between nodes carries, for [`RelayCounters::received`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayKind {
    CampaignStarted,
    CampaignFinished,
    Result,
    Other,
}

impl RelayKind {
    pub const ALL: [RelayKind; 4] = [
        RelayKind::CampaignStarted,
        RelayKind::CampaignFinished,
        RelayKind::Result,
        RelayKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RelayKind::CampaignStarted => "campaign_started",
            RelayKind::CampaignFinished => "campaign_finished",
            RelayKind::Result => "result",
            RelayKind::Other => "other",
        }
    }
}

/// What the relay between nodes (Redis) has done since start. Created by the server and
/// shared by the relay, which records, and `/metrics`, which reads. All zero on a single node.
#[derive(Default, Debug)]
pub struct RelayCounters {
    pub published: Counter,
    /// Indexed by the position of the kind in [`RelayKind::ALL`]; use [`RelayCounters::received`].
    received: [Counter; RelayKind::ALL.len()],
    /// Failed publishes, failed subscriptions, lost connections, undecodable messages.
    pub errors: Counter,
    /// From a message's publication on one node to its receipt on another (wall clocks).
    pub lag: LatencyHistogram,
    /// Whether the relay is connected now; false until it first is. Readiness reads it when a
    /// relay is configured.
    connected: AtomicBool,
}

impl RelayCounters {
    pub fn received(&self, kind: RelayKind) {
        self.received[kind as usize].incr();
    }

    pub fn received_count(&self, kind: RelayKind) -> u64 {
        self.received[kind as usize].get()
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_puts_each_duration_in_its_bucket() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(30));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(snapshot.buckets[0], (0.001, 1));
        assert_eq!(snapshot.buckets[1], (0.0025, 0));
        assert_eq!(snapshot.buckets[2], (0.005, 1));
        let overflow = snapshot.buckets.last().unwrap();
        assert!(overflow.0.is_infinite());
        assert_eq!(overflow.1, 1);
        assert!((snapshot.sum_seconds - 30.0035).abs() < 1e-9);
    }

    #[test]
    fn relay_kinds_index_their_own_counter() {
        let relay = RelayCounters::default();
        relay.received(RelayKind::Result);
        relay.received(RelayKind::Result);
        relay.received(RelayKind::CampaignStarted);
        for (i, kind) in RelayKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
        assert_eq!(relay.received_count(RelayKind::Result), 2);
        assert_eq!(relay.received_count(RelayKind::CampaignStarted), 1);
        assert_eq!(relay.received_count(RelayKind::Other), 0);
    }
}

/// What campaigns have done since start.
#[derive(Default, Debug)]
pub struct CampaignCounters {
    pub started: Counter,
    pub finished_all_answered: Counter,
    pub finished_stopped: Counter,
    pub finished_no_subscribers: Counter,
    pub finished_deadline: Counter,
    /// Target mailboxes a campaign's query was placed in.
    pub hosts_enqueued: Counter,
    pub results_routed: Counter,
    pub results_duplicate: Counter,
    /// Answers for campaigns not running here (finished, or never known). Not a loss: nobody
    /// is waiting for them.
    pub results_unrouted: Counter,
    /// Answers accepted from a host for a running campaign that reached no subscriber, with
    /// nobody told: a loss, so it must stay 0. Within one node nothing can drop an answer (a
    /// subscriber that falls behind is disconnected and told, `subscribers_overflowed`; rows past
    /// the cap are counted and announced); the relay between nodes counts here an answer it
    /// accepted and could not append to the campaign's log because Redis stayed unreachable
    /// past every campaign's end (15 minutes).
    pub results_dropped: Counter,
    pub subscribers_overflowed: Counter,
    /// Answers this node sent to the shared relay.
    pub results_relayed: Counter,
    /// Campaigns the store failed to record (at start or when finished).
    pub store_errors: Counter,
    /// Bytes of result rows in memory now: kept by campaigns for late subscribers and queued
    /// to subscribers (shared, counted once), until the last holder lets go.
    pub result_bytes_held: Gauge,
}

impl CampaignCounters {
    pub(crate) fn finished(&self, reason: FinishReason) {
        match reason {
            FinishReason::AllAnswered => self.finished_all_answered.incr(),
            FinishReason::Stopped => self.finished_stopped.incr(),
            FinishReason::NoSubscribers => self.finished_no_subscribers.incr(),
            FinishReason::Deadline => self.finished_deadline.incr(),
        }
    }
}
