//! What a [`HostActor`](crate::host::HostActor) is told and what it answers: the message
//! enum, the distributed-read reply it builds and the distributed-write answers it takes in.
//! Apart from the actor so the registry ([`Hosts`](crate::hosts::Hosts)) and the per-host
//! [`HostSlot`](crate::slot::HostSlot) can name them without importing the actor.

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::ids::CampaignId;
use crate::live::{LiveAnswer, LiveQuery};
use crate::row::Row;

/// A query in a distributed-read reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingQuery {
    pub name: Arc<str>,
    pub sql: Arc<str>,
    /// SQL osquery runs first; the query runs only if this returns a row.
    pub discovery: Arc<str>,
}

/// The reply to a distributed read, built once per change and shared by every read until the
/// next change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadWork {
    pub queries: Vec<PendingQuery>,
    /// Seconds osquery should check in every 5 s instead of its interval.
    pub accelerate: Option<u32>,
}

impl ReadWork {
    pub fn empty() -> Arc<ReadWork> {
        static EMPTY: std::sync::OnceLock<Arc<ReadWork>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(Default::default).clone()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty() && self.accelerate.is_none()
    }
}

/// A detail query's answer from a distributed write (only successful ones are passed in).
#[derive(Clone, Debug)]
pub struct DetailAnswer {
    /// The name without `fleet_detail_query_`.
    pub suffix: String,
    pub rows: Vec<Row>,
}

/// What a distributed write carries that the engine cares about.
#[derive(Clone, Debug, Default)]
pub struct HostResults {
    pub details: Vec<DetailAnswer>,
    pub live: Vec<LiveAnswer>,
    /// Dynamic-label answers: label id and membership (`None`: the query failed on the host).
    pub labels: Vec<(u64, Option<bool>)>,
    /// Policy answers: policy id and response (`Some(true)` pass, `Some(false)` fail, `None`
    /// unknown: the query failed on the host).
    pub policies: Vec<(u64, Option<bool>)>,
}

impl HostResults {
    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
            && self.live.is_empty()
            && self.labels.is_empty()
            && self.policies.is_empty()
    }
}

pub enum HostMsg {
    Read {
        now: i64,
        reply: RpcReplyPort<Arc<ReadWork>>,
    },
    Write {
        now: i64,
        results: Arc<HostResults>,
        reply: RpcReplyPort<()>,
    },
    /// A call, not a cast, so an enqueue racing with deactivation is retried, never lost.
    Enqueue {
        query: LiveQuery,
        reply: RpcReplyPort<()>,
    },
    Cancel {
        campaign: CampaignId,
    },
    IdleCheck,
}
