//! What a [`CampaignActor`](crate::campaign::CampaignActor) is told and what its subscribers
//! receive: [`CampaignMsg`], [`FinishReason`], the [`Subscription`] and its [`CampaignEvent`]s.
//! Apart from the actor so the [`CampaignRouter`](crate::router::CampaignRouter) and the
//! counters can name them without importing the actor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::campaign_state::{Progress, Totals};
use crate::counters::CampaignCounters;
use crate::live::HostResult;

/// A result as subscribers receive it, shared by all of them.
#[derive(Debug)]
pub struct ResultEvent {
    pub result: HostResult,
    /// The wire form, encoded by whichever subscriber gets there first and reused by the rest.
    pub encoded: OnceLock<Arc<str>>,
    /// Counts the result's rows in `flotilla_campaign_result_bytes` while anyone holds it.
    pub held: HeldBytes,
}

/// Bytes of result rows held in memory (by campaigns and by their subscribers' queues), added
/// to [`CampaignCounters::result_bytes_held`] while this lives.
#[derive(Debug, Default)]
pub struct HeldBytes(Option<(Arc<CampaignCounters>, usize)>);

impl HeldBytes {
    pub fn new(counters: Arc<CampaignCounters>, bytes: usize) -> HeldBytes {
        counters.result_bytes_held.add(bytes as i64);
        HeldBytes(Some((counters, bytes)))
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if let Some((counters, bytes)) = &self.0 {
            counters.result_bytes_held.add(-(*bytes as i64));
        }
    }
}

/// What a subscriber receives, in order: `Totals`, then results and status as they happen.
#[derive(Clone, Debug)]
pub enum CampaignEvent {
    Totals(Totals),
    Status(Progress),
    Result(Arc<ResultEvent>),
    /// Something the subscriber should know, e.g. that the row cap truncated the results.
    Notice(Arc<str>),
}

/// Why a campaign finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    AllAnswered,
    Stopped,
    NoSubscribers,
    Deadline,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::AllAnswered => "all_answered",
            FinishReason::Stopped => "stopped",
            FinishReason::NoSubscribers => "no_subscribers",
            FinishReason::Deadline => "deadline",
        }
    }

    pub fn parse(s: &str) -> Option<FinishReason> {
        [
            FinishReason::AllAnswered,
            FinishReason::Stopped,
            FinishReason::NoSubscribers,
            FinishReason::Deadline,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    events: mpsc::Receiver<CampaignEvent>,
    overflowed: Arc<AtomicBool>,
    campaign: ActorRef<CampaignMsg>,
}

impl Subscription {
    pub(crate) fn new(
        events: mpsc::Receiver<CampaignEvent>,
        overflowed: Arc<AtomicBool>,
        campaign: ActorRef<CampaignMsg>,
    ) -> Subscription {
        Subscription {
            events,
            overflowed,
            campaign,
        }
    }

    /// The next event; `None` when the campaign has finished (or dropped this subscriber).
    pub async fn next(&mut self) -> Option<CampaignEvent> {
        self.events.recv().await
    }

    /// True when the subscription ended because the subscriber fell behind.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.campaign.cast(CampaignMsg::Unsubscribed);
    }
}

pub enum CampaignMsg {
    Result(HostResult),
    Subscribe(RpcReplyPort<Subscription>),
    Totals(RpcReplyPort<Totals>),
    Unsubscribed,
    Stop,
    Deadline,
    Tick,
    /// Another node claimed the finish: finish once the answer log is read to its end.
    RemoteFinished(FinishReason),
    /// The relay reader found no more answers after `RemoteFinished`.
    Drained,
    /// Whether any node has a subscriber (the answer to a check made on `Tick`).
    WatchedElsewhere(bool),
    IsFinished(RpcReplyPort<bool>),
}
