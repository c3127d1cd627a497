//! `Campaigns`: starting live queries, finding them, subscribing to them; and the
//! [`CampaignRouter`], the [`ResultSink`] through which host actors hand answers to campaigns.
//!
//! The router exists before the host registry (hosts need a sink at start) and the campaigns
//! registry after it (campaigns enqueue into hosts); both share one map of running campaigns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorRef};

use crate::campaign::{CampaignActor, CampaignArgs, CampaignMsg, FinishReason, Subscription};
use crate::campaign_state::Totals;
use crate::counters::Counter;
use crate::hosts::Hosts;
use crate::ids::{CampaignId, HostId};
use crate::live::{HostResult, ResultSink};
use crate::store::{CampaignRecord, CampaignStore, StoreError};

#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// Campaigns running at once on this node; one more is refused with [`CampaignError::TooMany`].
    pub max_active: usize,
    /// How long a campaign runs at most.
    pub deadline: Duration,
    /// Rows forwarded per campaign; answers past it are counted, not shown.
    pub max_rows: usize,
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
            subscriber_buffer: 8_192,
            subscriber_grace: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("too many live queries are running (limit {limit}); wait for one to finish")]
    TooMany { limit: usize },
    #[error("no hosts targeted")]
    NoTargets,
    #[error("no running campaign with id {0}")]
    NotFound(CampaignId),
    #[error("live query unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for CampaignError {
    fn from(error: StoreError) -> Self {
        CampaignError::Unavailable(error.to_string())
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
    /// accepted and could not forward to the campaign's home node.
    pub results_dropped: Counter,
    pub subscribers_overflowed: Counter,
    /// Campaigns the store failed to record (at start or when finished).
    pub store_errors: Counter,
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

/// A running campaign as others see it.
#[derive(Clone, Debug)]
pub struct CampaignEntry {
    pub sql: Arc<str>,
    /// The user who started it; only they may watch it.
    pub owner: Option<u64>,
    actor: Option<ActorRef<CampaignMsg>>,
}

impl CampaignEntry {
    pub(crate) fn with_actor(mut self, actor: ActorRef<CampaignMsg>) -> CampaignEntry {
        self.actor = Some(actor);
        self
    }
}

/// The running campaigns by id; host actors deliver answers through it.
#[derive(Clone, Default)]
pub struct CampaignRouter {
    campaigns: Arc<DashMap<CampaignId, CampaignEntry>>,
    counters: Arc<CampaignCounters>,
}

impl CampaignRouter {
    pub fn new() -> CampaignRouter {
        CampaignRouter::default()
    }

    pub(crate) fn insert(&self, id: CampaignId, entry: CampaignEntry) {
        self.campaigns.insert(id, entry);
    }

    pub(crate) fn remove(&self, id: CampaignId) {
        self.campaigns.remove(&id);
    }

    fn actor(&self, id: CampaignId) -> Option<ActorRef<CampaignMsg>> {
        self.campaigns.get(&id).and_then(|e| e.actor.clone())
    }
}

impl ResultSink for CampaignRouter {
    fn deliver(&self, result: HostResult) {
        let campaign = result.answer.campaign;
        match self.actor(campaign) {
            Some(actor) if actor.cast(CampaignMsg::Result(result)).is_ok() => {}
            _ => {
                self.counters.results_unrouted.incr();
                tracing::debug!(%campaign, "live result for a campaign that is not running");
            }
        }
    }
}

pub(crate) struct CampaignContext {
    pub(crate) hosts: Hosts,
    pub(crate) router: CampaignRouter,
    pub(crate) store: Arc<dyn CampaignStore>,
    pub(crate) config: CampaignConfig,
    pub(crate) counters: Arc<CampaignCounters>,
    /// Campaigns started and not yet stopped; bounded by `config.max_active`.
    active: AtomicUsize,
}

impl CampaignContext {
    pub(crate) fn release_slot(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A campaign to start.
#[derive(Clone, Debug)]
pub struct NewCampaign {
    pub record: CampaignRecord,
    /// The hosts it targets, already resolved from hosts, labels and teams.
    pub targets: Vec<HostId>,
    /// Overrides the configured deadline (the synchronous APIs use a shorter one).
    pub deadline: Option<Duration>,
}

/// A started campaign.
#[derive(Clone, Debug)]
pub struct StartedCampaign {
    pub id: CampaignId,
    pub totals: Totals,
}

#[derive(Clone)]
pub struct Campaigns {
    ctx: Arc<CampaignContext>,
}

impl Campaigns {
    pub fn new(
        router: CampaignRouter,
        hosts: Hosts,
        store: Arc<dyn CampaignStore>,
        config: CampaignConfig,
    ) -> Campaigns {
        Campaigns {
            ctx: Arc::new(CampaignContext {
                counters: router.counters.clone(),
                hosts,
                router,
                store,
                config,
                active: AtomicUsize::new(0),
            }),
        }
    }

    pub fn counters(&self) -> &CampaignCounters {
        &self.ctx.counters
    }

    /// Campaigns running on this node.
    pub fn active(&self) -> usize {
        self.ctx.router.campaigns.len()
    }

    /// A running campaign's entry (owner, SQL), for permission checks.
    pub fn get(&self, id: CampaignId) -> Option<CampaignEntry> {
        self.ctx.router.campaigns.get(&id).map(|e| e.clone())
    }

    /// Records and starts a campaign: its SQL goes to every target's mailbox.
    pub async fn start(&self, new: NewCampaign) -> Result<StartedCampaign, CampaignError> {
        if new.targets.is_empty() {
            return Err(CampaignError::NoTargets);
        }
        let limit = self.ctx.config.max_active;
        if self.ctx.active.fetch_add(1, Ordering::AcqRel) >= limit {
            self.ctx.release_slot();
            return Err(CampaignError::TooMany { limit });
        }
        let id = match self.ctx.store.create_campaign(&new.record).await {
            Ok(id) => id,
            Err(error) => {
                self.ctx.counters.store_errors.incr();
                self.ctx.release_slot();
                return Err(error.into());
            }
        };
        let mut targets = new.targets;
        targets.sort_unstable();
        targets.dedup();
        let entry = CampaignEntry {
            sql: new.record.sql.as_str().into(),
            owner: new.record.user_id,
            actor: None,
        };
        let args = CampaignArgs {
            id,
            entry,
            targets,
            deadline: new.deadline.unwrap_or(self.ctx.config.deadline),
            ctx: self.ctx.clone(),
        };
        let (actor, _) = Actor::spawn(None, CampaignActor, args).await.map_err(|e| {
            self.ctx.release_slot();
            CampaignError::Unavailable(format!("campaign failed to start: {e}"))
        })?;
        let totals = self.totals(&actor).await.unwrap_or_default();
        Ok(StartedCampaign { id, totals })
    }

    async fn totals(&self, actor: &ActorRef<CampaignMsg>) -> Option<Totals> {
        match actor
            .call(CampaignMsg::Totals, Some(Duration::from_secs(5)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(totals)) => Some(totals),
            _ => None,
        }
    }

    async fn subscribe_to(
        &self,
        actor: &ActorRef<CampaignMsg>,
    ) -> Result<Subscription, CampaignError> {
        match actor
            .call(CampaignMsg::Subscribe, Some(Duration::from_secs(5)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(subscription)) => Ok(subscription),
            _ => Err(CampaignError::Unavailable(
                "the campaign did not answer".into(),
            )),
        }
    }

    /// Subscribes to a running campaign: totals, every result so far, then results and status
    /// as they happen, until it finishes.
    pub async fn subscribe(&self, id: CampaignId) -> Result<Subscription, CampaignError> {
        let actor = self
            .ctx
            .router
            .actor(id)
            .ok_or(CampaignError::NotFound(id))?;
        self.subscribe_to(&actor)
            .await
            .map_err(|_| CampaignError::NotFound(id))
    }

    /// Ends every running campaign (at shutdown): subscribers get the final status and their
    /// streams end, so open websockets close instead of holding the shutdown up.
    pub fn stop_all(&self) -> usize {
        let ids: Vec<CampaignId> = self.ctx.router.campaigns.iter().map(|e| *e.key()).collect();
        ids.into_iter().filter(|&id| self.stop(id)).count()
    }

    /// Ends a campaign now. False if it was not running.
    pub fn stop(&self, id: CampaignId) -> bool {
        self.ctx
            .router
            .actor(id)
            .is_some_and(|actor| actor.cast(CampaignMsg::Stop).is_ok())
    }
}
