//! Flotilla's engine: the actors behind every osquery check-in and live query.
//!
//! - [`Engine`] — one node's engine as one value: built by [`Engine::start`], it holds the
//!   registries below and the tasks that relay answers and follow the other nodes sharing a
//!   relay, and [`Engine::shutdown`] stops them in order and flushes host writes.
//! - [`hosts::Hosts`] — the registry of enrolled hosts and the entry point for enroll, distributed
//!   read/write and authentication. Each host is a [`host::HostActor`] while it has work and a
//!   compact [`record::HostRecord`] while it is idle; its registry entry, shared with the
//!   actor and the writer, is a `slot::HostSlot`, and its messages are in `host_msg`.
//! - [`writer`] — batched writes of last-seen times and vitals to the store.
//! - [`detail`] and [`vitals`] — the detail queries and what their answers mean.
//! - [`campaigns`] — starting and watching live queries; each is a [`campaign::CampaignActor`]
//!   whose bookkeeping is the plain [`campaign_state::CampaignState`]. The
//!   [`campaigns::CampaignRouter`] (in `router`) is the [`live::ResultSink`] host actors hand
//!   answers to; the actor's messages and subscription types are in `campaign_msg`.
//! - [`live`] — live-query types shared by hosts and campaigns.
//! - [`labels`], [`policies`] — the label and policy queries hosts run, replaced as a whole.
//! - [`store`] — the durability traits `flotilla-storage` implements.
//! - [`relay`] — what nodes sharing a relay tell each other; [`relay::LocalRelay`] for one node.
//!   The tasks that use a shared one are in `mirror` and `outbox`.
//!
//! Imports run one way: registries (`hosts`, `campaigns`) import their actors (`host`,
//! `campaign`), actors import the message and slot files, and nothing below imports `engine`.
//!
//! The engine knows nothing of HTTP, JSON wire formats, sqlx or Redis.

pub mod campaign;
mod campaign_msg;
pub mod campaign_state;
pub mod campaigns;
pub mod config;
pub mod counters;
pub mod detail;
pub mod device;
mod engine;
pub mod enroll;
pub mod host;
mod host_msg;
pub mod hosts;
pub mod ids;
pub mod labels;
pub mod live;
mod mirror;
mod outbox;
pub mod policies;
pub mod record;
pub mod relay;
mod router;
mod row;
mod slot;
pub mod software;
mod software_queries;
pub mod store;
pub mod text;
pub mod vitals;
mod writer;

#[cfg(any(test, feature = "test-support"))]
pub mod memory_store;

pub use campaigns::{CampaignConfig, CampaignError, CampaignRouter, Campaigns};
pub use config::EngineConfig;
pub use engine::{Engine, EngineStores};
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
