//! `Campaigns`: the registry of live queries — starting them, finding them, subscribing to
//! them. Each running one is a [`CampaignActor`].
//!
//! The [`CampaignRouter`] exists before the host registry (hosts need a sink at start) and the
//! campaigns registry after it (campaigns enqueue into hosts); both share one map of running
//! campaigns.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorRef};

use crate::campaign::{CampaignActor, CampaignArgs, CampaignContext};
use crate::campaign_msg::{CampaignMsg, FinishReason, Subscription};
use crate::campaign_state::Totals;
use crate::hosts::Hosts;
use crate::ids::{CampaignId, HostId};
use crate::relay::CampaignSpec;
use crate::store::{CampaignRecord, CampaignStore, StoreError};

pub use crate::config::CampaignConfig;
pub use crate::counters::CampaignCounters;
pub use crate::router::{CampaignEntry, CampaignRouter};

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
    /// The campaigns of this node. With a shared relay, [`Engine::start`](crate::Engine::start)
    /// builds them and starts the tasks that relay answers and follow the other nodes.
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
                joining: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn counters(&self) -> &CampaignCounters {
        &self.ctx.counters
    }

    pub(crate) fn shared_counters(&self) -> Arc<CampaignCounters> {
        self.ctx.counters.clone()
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
