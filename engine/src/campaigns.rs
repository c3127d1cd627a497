//! `Campaigns`: starting live queries, finding them, subscribing to them; and the
//! [`CampaignRouter`], the [`ResultSink`] through which host actors hand answers to campaigns.
//!
//! The router exists before the host registry (hosts need a sink at start) and the campaigns
//! registry after it (campaigns enqueue into hosts); both share one map of running campaigns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorRef};

use crate::campaign::{CampaignActor, CampaignArgs, CampaignMsg, FinishReason, Subscription};
use crate::campaign_state::Totals;
use crate::counters::Counter;
use crate::hosts::Hosts;
use crate::ids::{CampaignId, HostId};
use crate::live::{HostResult, ResultSink};
use crate::mirror::Outbox;
use crate::relay::CampaignSpec;
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
    /// Nodes share a relay (Redis) and it cannot be reached: no live query can start anywhere.
    #[error(
        "live queries are unavailable: the relay between nodes (Redis) cannot be reached; try again when it is back"
    )]
    RelayUnavailable,
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
    /// accepted and could not append to the campaign's log because Redis stayed unreachable
    /// past every campaign's end (15 minutes).
    pub results_dropped: Counter,
    pub subscribers_overflowed: Counter,
    /// Answers this node sent to the shared relay.
    pub results_relayed: Counter,
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
    spec: Arc<CampaignSpec>,
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
    /// With a shared relay, answers go out through it (and come back to every node's
    /// campaign actor from the campaign's log) instead of straight to the local actor.
    outbox: Arc<OnceLock<Outbox>>,
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
        if let Some(outbox) = self.outbox.get() {
            outbox.send(result);
            return;
        }
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
    /// Serialises joins so two announcements of one campaign start one mirror.
    joining: tokio::sync::Mutex<()>,
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

/// Hosts not seen for this long count as missing in action.
const MISSING_AFTER_SECS: i64 = 30 * 24 * 3600;

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
    /// The campaigns of this node. When `hosts` has a shared relay, this also starts the tasks
    /// that publish answers, follow the other nodes' announcements and reconcile with the relay.
    pub fn new(
        router: CampaignRouter,
        hosts: Hosts,
        store: Arc<dyn CampaignStore>,
        config: CampaignConfig,
    ) -> Campaigns {
        let relay = hosts.relay();
        let campaigns = Campaigns {
            ctx: Arc::new(CampaignContext {
                counters: router.counters.clone(),
                hosts,
                router,
                store,
                config,
                active: AtomicUsize::new(0),
                joining: tokio::sync::Mutex::new(()),
            }),
        };
        if !relay.is_local() {
            let outbox = Outbox::start(relay.clone(), campaigns.ctx.counters.clone());
            let _ = campaigns.ctx.router.outbox.set(outbox);
            crate::mirror::follow(campaigns.clone(), relay);
        }
        campaigns
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

    /// Records and starts a campaign: its SQL goes to every target's mailbox — on every node,
    /// when nodes share a relay (it fails if the relay is unreachable).
    pub async fn start(&self, new: NewCampaign) -> Result<StartedCampaign, CampaignError> {
        if new.targets.is_empty() {
            return Err(CampaignError::NoTargets);
        }
        let limit = self.ctx.config.max_active;
        if self.ctx.active.fetch_add(1, Ordering::AcqRel) >= limit {
            self.ctx.release_slot();
            return Err(CampaignError::TooMany { limit });
        }
        let relay = self.ctx.hosts.relay();
        if !relay.is_local()
            && let Err(error) = relay.ping().await
        {
            self.ctx.release_slot();
            tracing::warn!(%error, "refused a live query: the relay is unreachable");
            return Err(CampaignError::RelayUnavailable);
        }
        let id = match self.ctx.store.create_campaign(&new.record).await {
            Ok(id) => id,
            Err(error) => {
                self.ctx.counters.store_errors.incr();
                self.ctx.release_slot();
                return Err(error.into());
            }
        };
        let deadline = new.deadline.unwrap_or(self.ctx.config.deadline);
        let spec = self.spec(id, &new.record, new.targets, deadline);
        if !relay.is_local()
            && let Err(error) = relay.announce_campaign(&spec).await
        {
            self.ctx.release_slot();
            self.abandon(id, &spec);
            tracing::warn!(campaign = %id, %error, "refused a live query: the relay is unreachable");
            return Err(CampaignError::RelayUnavailable);
        }
        let actor = self.spawn(spec).await?;
        let totals = self.totals(&actor).await.unwrap_or_default();
        Ok(StartedCampaign { id, totals })
    }

    /// What a campaign is, for every node: targets sorted, who is online now, the deadline.
    fn spec(
        &self,
        id: CampaignId,
        record: &CampaignRecord,
        mut targets: Vec<HostId>,
        deadline: Duration,
    ) -> CampaignSpec {
        targets.sort_unstable();
        targets.dedup();
        let now = crate::unix_now();
        let mut online = Vec::new();
        let mut missing = 0;
        for &host in &targets {
            match self.ctx.hosts.presence(host, now) {
                Some(p) if p.online => online.push(host),
                Some(p) if now - p.last_seen >= MISSING_AFTER_SECS => missing += 1,
                _ => {}
            }
        }
        CampaignSpec {
            id,
            sql: record.sql.as_str().into(),
            owner: record.user_id,
            targets,
            online,
            missing,
            deadline_unix_ms: crate::relay::unix_now_ms() + deadline.as_millis() as i64,
        }
    }

    /// Records a campaign that could not be announced as finished, so it does not stay open.
    fn abandon(&self, id: CampaignId, spec: &CampaignSpec) {
        let store = self.ctx.store.clone();
        let outcome = crate::store::CampaignOutcome {
            reason: "relay_unavailable",
            targets: spec.targets.len() as u64,
            online: spec.online.len() as u64,
            responded: 0,
            finished_at: crate::unix_now(),
        };
        tokio::spawn(async move {
            if let Err(error) = store.finish_campaign(id, &outcome).await {
                tracing::warn!(campaign = %id, %error, "could not record the campaign's outcome");
            }
        });
    }

    /// Starts this node's actor for `spec`; its slot is already taken.
    async fn spawn(&self, spec: CampaignSpec) -> Result<ActorRef<CampaignMsg>, CampaignError> {
        let entry = CampaignEntry {
            sql: spec.sql.clone(),
            owner: spec.owner,
            spec: Arc::new(spec.clone()),
            actor: None,
        };
        let args = CampaignArgs {
            spec,
            entry,
            ctx: self.ctx.clone(),
        };
        let (actor, _) = Actor::spawn(None, CampaignActor, args).await.map_err(|e| {
            self.ctx.release_slot();
            CampaignError::Unavailable(format!("campaign failed to start: {e}"))
        })?;
        Ok(actor)
    }

    /// Mirrors a campaign another node started (or one that was running when this node
    /// started). Nothing to do if it already runs here, has finished, or the relay does not
    /// know it. Mirrors are not refused for the `max_active` limit: their hosts must get the
    /// query whichever node they talk to.
    pub async fn join(&self, id: CampaignId) -> Result<bool, CampaignError> {
        if self.ctx.router.campaigns.contains_key(&id) {
            return Ok(false);
        }
        let relay = self.ctx.hosts.relay();
        let spec = relay
            .campaign(id)
            .await
            .map_err(|e| CampaignError::Unavailable(e.to_string()))?;
        let Some(spec) = spec else {
            return Ok(false);
        };
        if relay
            .finished(id)
            .await
            .map_err(|e| CampaignError::Unavailable(e.to_string()))?
            .is_some()
            || spec.deadline_unix_ms <= crate::relay::unix_now_ms()
        {
            return Ok(false);
        }
        let _guard = self.ctx.joining.lock().await;
        if self.ctx.router.campaigns.contains_key(&id) {
            return Ok(false);
        }
        self.ctx.active.fetch_add(1, Ordering::AcqRel);
        self.spawn(spec).await?;
        tracing::info!(campaign = %id, "mirroring a live query started on another node");
        Ok(true)
    }

    /// Ids of the campaigns running on this node.
    pub fn running(&self) -> Vec<CampaignId> {
        self.ctx.router.campaigns.iter().map(|e| *e.key()).collect()
    }

    /// The spec of a campaign running here.
    pub(crate) fn spec_of(&self, id: CampaignId) -> Option<Arc<CampaignSpec>> {
        self.ctx.router.campaigns.get(&id).map(|e| e.spec.clone())
    }

    /// Whether this node's actor for the campaign has finished (and waits for a subscriber).
    pub(crate) async fn is_finished_here(&self, id: CampaignId) -> bool {
        let Some(actor) = self.ctx.router.actor(id) else {
            return true;
        };
        !matches!(
            actor
                .call(CampaignMsg::IsFinished, Some(Duration::from_secs(5)))
                .await,
            Ok(ractor::rpc::CallResult::Success(false))
        )
    }

    /// Tells this node's actor that another node finished the campaign.
    pub(crate) fn finished_elsewhere(&self, id: CampaignId, reason: &str) {
        let reason = FinishReason::parse(reason).unwrap_or(FinishReason::Stopped);
        if let Some(actor) = self.ctx.router.actor(id) {
            let _ = actor.cast(CampaignMsg::RemoteFinished(reason));
        }
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
        if !self.ctx.hosts.relay().is_local() && self.ctx.router.actor(id).is_none() {
            // Started on another node a moment ago: mirror it now rather than wait.
            self.join(id).await?;
        }
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
