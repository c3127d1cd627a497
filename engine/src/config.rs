//! `EngineConfig`: the engine's tunables, with the defaults a new user gets.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often a host's detail queries run again after they last filled its vitals.
    pub detail_update_interval: Duration,
    /// How often a host's dynamic-label queries run again.
    pub label_update_interval: Duration,
    /// How often a host's policies run again.
    pub policy_update_interval: Duration,
    /// Spread of the per-host jitter added to `detail_update_interval`, in percent of it, so
    /// hourly work does not synchronise across the fleet.
    pub max_jitter_percent: u32,
    /// A host actor with nothing pending stops after this long without a message; its host is
    /// then answered from the compact record until it has work again.
    pub host_idle_timeout: Duration,
    /// Upper bound on any call into an actor; a reply that takes longer is an error, not a hang.
    pub actor_call_timeout: Duration,
    /// How often batched host writes (last-seen times, vitals) reach the store.
    pub flush_interval: Duration,
    /// A host's last-seen time is written at most this often (it is exact in memory). With the
    /// default a host costs at most one store write a minute for check-ins.
    pub seen_write_granularity: Duration,
    /// Slack added to a host's own check-in interval before it counts as offline.
    pub online_buffer: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            detail_update_interval: Duration::from_secs(3600),
            label_update_interval: Duration::from_secs(3600),
            policy_update_interval: Duration::from_secs(3600),
            max_jitter_percent: 10,
            host_idle_timeout: Duration::from_secs(30),
            actor_call_timeout: Duration::from_secs(5),
            flush_interval: Duration::from_secs(5),
            seen_write_granularity: Duration::from_secs(60),
            online_buffer: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Campaigns running at once on this node; one more is refused with [`CampaignError::TooMany`].
    pub max_active: usize,
    /// How long a campaign runs at most.
    pub deadline: Duration,
    /// Rows forwarded per campaign; answers past it are counted, not shown.
    pub max_rows: usize,
    /// Bytes of result rows forwarded (and kept for late subscribers) per campaign; answers
    /// past it are counted, not shown.
    pub max_bytes: usize,
    /// Events a subscriber may have waiting before it is dropped as too slow.
    pub subscriber_buffer: usize,
    /// How long a campaign waits for its first subscriber, or for a new one after the last left.
    pub subscriber_grace: Duration,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            max_active: 1_000,
            deadline: Duration::from_secs(600),
            max_rows: 250_000,
            max_bytes: 64 << 20,
            subscriber_buffer: 8_192,
            subscriber_grace: Duration::from_secs(60),
        }
    }
}
