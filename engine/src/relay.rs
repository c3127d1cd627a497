//! The relay: what nodes of one deployment tell each other.
//!
//! A single node uses [`LocalRelay`]: nothing leaves the process and answers go straight from a
//! host's actor to its campaign's actor. Several nodes behind a load balancer share a relay
//! (Redis, in `flotilla-storage`) so that any node can serve any host and any admin:
//!
//! - **Campaigns are mirrored on every node.** The node an admin starts a campaign on records it
//!   and [announces](Relay::announce_campaign) its [`CampaignSpec`] (SQL, targets, who was
//!   online, deadline). Every node then runs a `CampaignActor` for it, places the SQL in its own
//!   host mailboxes and serves its own websocket subscribers.
//! - **Answers go through one ordered log per campaign.** A node that receives a host's answer
//!   [appends](Relay::send_results) it; every node [reads](Relay::results) the log in the same
//!   order, so each node's counts, duplicates and "all answered" are the same, and a node that
//!   reads a host's answer takes the query out of that host's mailbox here too.
//! - **Finishing is claimed once.** Any node may decide a campaign is over (all answered, its
//!   deadline, a stop, nobody watching anywhere); the first [claim](Relay::claim_finish) wins,
//!   records the outcome and tells the others, which finish after reading the log to its end.
//! - **Hosts**: enrollments and admin changes are announced ([`RelayEvent::HostChanged`]) and
//!   each node tells the others which hosts checked in with it ([`RelayEvent::HostsSeen`]), so
//!   every node knows which hosts are online whichever node they talk to, and which answered
//!   their detail, label or policy queries ([`RelayEvent::HostsAnswered`]), so a host behind
//!   round robin runs its hourly queries once, not once per node. A node that reconnects
//!   compares its hosts with the store, for deletions and team moves it did not hear of.
//!
//! Events are a fast path only: a node that missed some (a reconnect) [reconciles](Relay::active_campaigns)
//! against the relay's state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::ids::{CampaignId, HostId};
use crate::live::HostResult;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The relay could not be reached; the operation may succeed later.
    #[error("relay unavailable: {0}")]
    Unavailable(String),
    /// The relay answered with something this node cannot read.
    #[error("relay data error: {0}")]
    Data(String),
}

/// Everything a node needs to run its mirror of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignSpec {
    pub id: CampaignId,
    pub sql: Arc<str>,
    /// The user who started it (only they may watch it).
    pub owner: Option<u64>,
    /// Every target, sorted, without duplicates.
    pub targets: Vec<HostId>,
    /// The targets that were online when it started, sorted: the answers it waits for.
    pub online: Vec<HostId>,
    /// Targets not seen for 30 days (part of the totals).
    pub missing: usize,
    /// When it ends at the latest, Unix milliseconds.
    pub deadline_unix_ms: i64,
}

/// When a host last answered each kind of scheduled query, in Unix seconds (0: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerTimes {
    pub detail: i64,
    pub label: i64,
    pub policy: i64,
}

/// Kinds of shared configuration whose change every node must pick up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Labels,
    EnrollSecrets,
    AgentOptions,
    /// Global and team policies: every node reloads the set hosts are handed.
    Policies,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Labels => "labels",
            Topic::EnrollSecrets => "enroll_secrets",
            Topic::AgentOptions => "agent_options",
            Topic::Policies => "policies",
        }
    }

    pub fn parse(s: &str) -> Option<Topic> {
        match s {
            "labels" => Some(Topic::Labels),
            "enroll_secrets" => Some(Topic::EnrollSecrets),
            "agent_options" => Some(Topic::AgentOptions),
            "policies" => Some(Topic::Policies),
            _ => None,
        }
    }
}

/// What nodes announce to each other. Events from this node are not delivered back to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    CampaignStarted(CampaignId),
    /// The campaign's finish was claimed, for this reason.
    CampaignFinished {
        id: CampaignId,
        reason: String,
    },
    /// A host enrolled, re-enrolled, moved or was deleted: reload it from the store.
    HostChanged(HostId),
    /// Hosts that checked in with the sending node, with their latest check-in (Unix seconds).
    HostsSeen(Vec<(HostId, i64)>),
    /// Hosts that answered their detail, label or policy queries on the sending node, and when.
    HostsAnswered(Vec<(HostId, AnswerTimes)>),
    Changed(Topic),
    /// Local only: the connection to the relay was re-established and events may have been
    /// missed; reconcile.
    Reconnected,
}

/// Reads one campaign's answers in log order. Each call waits up to `wait` for new ones.
#[async_trait]
pub trait ResultReader: Send + 'static {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<HostResult>, RelayError>;
}

#[async_trait]
pub trait Relay: Send + Sync + 'static {
    /// True for the in-process relay of a single node: nothing to announce, answers are
    /// delivered in process.
    fn is_local(&self) -> bool {
        false
    }

    /// This node's name, for logs.
    fn node(&self) -> &str;

    /// Makes a started campaign known to every node. Fails if the relay is unreachable, in
    /// which case the campaign must not start.
    async fn announce_campaign(&self, spec: &CampaignSpec) -> Result<(), RelayError>;

    /// A campaign's spec, if the relay still holds it (running, or finished very recently).
    async fn campaign(&self, id: CampaignId) -> Result<Option<CampaignSpec>, RelayError>;

    /// Campaigns announced and not yet finished.
    async fn active_campaigns(&self) -> Result<Vec<CampaignId>, RelayError>;

    /// Appends answers to their campaigns' logs.
    async fn send_results(&self, results: &[HostResult]) -> Result<(), RelayError>;

    /// A reader of a campaign's answers from the beginning of its log.
    async fn results(&self, id: CampaignId) -> Result<Box<dyn ResultReader>, RelayError>;

    /// Claims the campaign's finish for `reason`. True for the first claim, which must then
    /// record the outcome; false if another node (or an earlier call) got there first.
    async fn claim_finish(&self, id: CampaignId, reason: &str) -> Result<bool, RelayError>;

    /// The reason the campaign finished, if it has.
    async fn finished(&self, id: CampaignId) -> Result<Option<String>, RelayError>;

    /// Notes that the campaign has a subscriber on this node (renewed every few seconds).
    async fn mark_watched(&self, id: CampaignId) -> Result<(), RelayError>;

    /// Whether any node noted a subscriber in the last few seconds.
    async fn watched(&self, id: CampaignId) -> Result<bool, RelayError>;

    /// Tells the other nodes.
    async fn publish(&self, event: &RelayEvent) -> Result<(), RelayError>;

    /// What the other nodes announce, as it arrives.
    fn events(&self) -> tokio::sync::broadcast::Receiver<RelayEvent>;

    /// Answers when the relay is reachable.
    async fn ping(&self) -> Result<(), RelayError>;

    /// Takes (or, if this node holds it, renews) the cluster-wide lock `name` for `ttl`: true
    /// while this node holds it. Jobs that must run on one node at a time (the vulnerability
    /// match, the software counts) run only while they hold theirs. A single node always
    /// holds every lock.
    async fn hold_lock(&self, name: &str, ttl: Duration) -> Result<bool, RelayError> {
        let _ = (name, ttl);
        Ok(true)
    }
}

/// The relay of a single node: nothing to tell anyone.
pub struct LocalRelay {
    events: tokio::sync::broadcast::Sender<RelayEvent>,
}

impl Default for LocalRelay {
    fn default() -> Self {
        LocalRelay {
            events: tokio::sync::broadcast::channel(1).0,
        }
    }
}

struct NoResults;

#[async_trait]
impl ResultReader for NoResults {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<HostResult>, RelayError> {
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }
}

#[async_trait]
impl Relay for LocalRelay {
    fn is_local(&self) -> bool {
        true
    }

    fn node(&self) -> &str {
        "local"
    }

    async fn announce_campaign(&self, _spec: &CampaignSpec) -> Result<(), RelayError> {
        Ok(())
    }

    async fn campaign(&self, _id: CampaignId) -> Result<Option<CampaignSpec>, RelayError> {
        Ok(None)
    }

    async fn active_campaigns(&self) -> Result<Vec<CampaignId>, RelayError> {
        Ok(Vec::new())
    }

    async fn send_results(&self, _results: &[HostResult]) -> Result<(), RelayError> {
        Err(RelayError::Unavailable(
            "the in-process relay delivers answers directly".into(),
        ))
    }

    async fn results(&self, _id: CampaignId) -> Result<Box<dyn ResultReader>, RelayError> {
        Ok(Box::new(NoResults))
    }

    async fn claim_finish(&self, _id: CampaignId, _reason: &str) -> Result<bool, RelayError> {
        Ok(true)
    }

    async fn finished(&self, _id: CampaignId) -> Result<Option<String>, RelayError> {
        Ok(None)
    }

    async fn mark_watched(&self, _id: CampaignId) -> Result<(), RelayError> {
        Ok(())
    }

    async fn watched(&self, _id: CampaignId) -> Result<bool, RelayError> {
        Ok(false)
    }

    async fn publish(&self, _event: &RelayEvent) -> Result<(), RelayError> {
        Ok(())
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<RelayEvent> {
        self.events.subscribe()
    }

    async fn ping(&self) -> Result<(), RelayError> {
        Ok(())
    }
}

/// Unix milliseconds now.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
