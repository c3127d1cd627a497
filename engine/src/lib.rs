//! Flotilla's engine: the actors behind every osquery check-in and live query.
//!
//! - [`hosts::Hosts`] — the registry of enrolled hosts and the entry point for enroll, distributed
//!   read/write and authentication. Each host is a [`host::HostActor`] while it has work and a
//!   compact [`record::HostRecord`] while it is idle.
//! - [`writer`] — batched writes of last-seen times and vitals to the store.
//! - [`detail`] and [`vitals`] — the detail queries and what their answers mean.
//! - [`campaigns`] — starting and watching live queries; each is a [`campaign::CampaignActor`]
//!   whose bookkeeping is the plain [`campaign_state::CampaignState`]. The
//!   [`campaigns::CampaignRouter`] is the [`live::ResultSink`] host actors hand answers to.
//! - [`live`] — live-query types shared by hosts and campaigns.
//! - [`store`] — the durability traits `flotilla-storage` implements.
//! - [`relay`] — what nodes sharing a relay tell each other; [`relay::LocalRelay`] for one node.
//!
//! The engine knows nothing of HTTP, JSON wire formats, sqlx or Redis.

pub mod campaign;
pub mod campaign_state;
pub mod campaigns;
pub mod config;
pub mod counters;
pub mod detail;
pub mod enroll;
pub mod host;
pub mod hosts;
pub mod ids;
pub mod labels;
pub mod live;
mod mirror;
pub mod record;
pub mod relay;
pub mod store;
pub mod vitals;
mod writer;

#[cfg(any(test, feature = "test-support"))]
pub mod memory_store;

pub use campaigns::{CampaignConfig, CampaignError, CampaignRouter, Campaigns};
pub use config::EngineConfig;
pub use hosts::{Census, HostError, Hosts, PlatformCount, Presence};
pub use ids::{CampaignId, HostId, NodeKey, TeamId};
pub use relay::{LocalRelay, Relay, RelayError, RelayEvent};

/// Seconds since the Unix epoch, from the wall clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
