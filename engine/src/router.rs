//! `CampaignRouter`: the running campaigns by id, and the [`ResultSink`] through which host
//! actors hand answers to them. It exists before the host registry (hosts need a sink at
//! start); [`Campaigns`](crate::campaigns::Campaigns) is built after and shares its map.
//! With a shared relay, answers go out through the [`Outbox`] instead.

use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use ractor::ActorRef;

use crate::campaign_msg::CampaignMsg;
use crate::counters::CampaignCounters;
use crate::ids::CampaignId;
use crate::live::{HostResult, ResultSink};
use crate::outbox::Outbox;
use crate::relay::CampaignSpec;

/// A running campaign as others see it.
#[derive(Clone, Debug)]
pub struct CampaignEntry {
    pub sql: Arc<str>,
    /// The user who started it; only they may watch it.
    pub owner: Option<u64>,
    pub(crate) spec: Arc<CampaignSpec>,
    pub(crate) actor: Option<ActorRef<CampaignMsg>>,
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
    pub(crate) campaigns: Arc<DashMap<CampaignId, CampaignEntry>>,
    pub(crate) counters: Arc<CampaignCounters>,
    /// With a shared relay, answers go out through it (and come back to every node's
    /// campaign actor from the campaign's log) instead of straight to the local actor.
    outbox: Arc<OnceLock<Outbox>>,
}

impl CampaignRouter {
    pub fn new() -> CampaignRouter {
        CampaignRouter::default()
    }

    /// From now on, answers go to the relay through `outbox` (shared relay only).
    pub(crate) fn send_through(&self, outbox: Outbox) {
        let _ = self.outbox.set(outbox);
    }

    pub(crate) fn insert(&self, id: CampaignId, entry: CampaignEntry) {
        self.campaigns.insert(id, entry);
    }

    pub(crate) fn remove(&self, id: CampaignId) {
        self.campaigns.remove(&id);
    }

    pub(crate) fn actor(&self, id: CampaignId) -> Option<ActorRef<CampaignMsg>> {
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
