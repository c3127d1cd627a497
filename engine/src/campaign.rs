//! `CampaignActor`: one live query, from start to finish.
//!
//! - Spawned by [`Campaigns::start`](crate::campaigns::Campaigns::start), unlinked. In
//!   `pre_start` it registers itself with the [`CampaignRouter`] (so no answer can arrive
//!   before it is reachable), then a task places the SQL in every target's
//!   [`HostActor`](crate::host::HostActor) mailbox.
//! - Receives each target's answer from the router, counts it once ([`CampaignState`]), and
//!   sends it to every subscriber at once over a bounded channel, then the new `status`.
//!   A subscriber whose channel is full is dropped and told so: nothing is lost silently.
//! - Keeps every forwarded result (bounded by the row cap), so a subscriber that joins late
//!   still sees all of them.
//! - Finishes when every target that was online at the start has answered, on `Stop`, at its
//!   deadline, or when it has had no subscriber for the grace period. Then it cancels the query
//!   in the mailboxes of hosts that did not answer, records the outcome, leaves the router and
//!   stops — nothing of it remains. A campaign that finished before anyone subscribed waits
//!   (up to the grace period) for its first subscriber, so a fast fleet's answers are not lost.
//! - Timers: the deadline, and a one-second tick for the subscriber grace period.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::campaign_state::{Accepted, CampaignState, Progress, Totals};
use crate::campaigns::{CampaignContext, CampaignEntry};
use crate::ids::{CampaignId, HostId};
use crate::live::{HostResult, LiveQuery};
use crate::store::CampaignOutcome;

/// Hosts not seen for this long count as missing in action.
const MISSING_AFTER_SECS: i64 = 30 * 24 * 3600;
/// Enqueues in flight at once while a campaign fans out.
const FAN_OUT_CONCURRENCY: usize = 256;

/// A result as subscribers receive it, shared by all of them.
#[derive(Debug)]
pub struct ResultEvent {
    pub result: HostResult,
    /// The wire form, encoded by whichever subscriber gets there first and reused by the rest.
    pub encoded: OnceLock<Arc<str>>,
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
}

/// The receiving end of a subscription. Dropping it unsubscribes.
pub struct Subscription {
    events: mpsc::Receiver<CampaignEvent>,
    overflowed: Arc<AtomicBool>,
    campaign: ActorRef<CampaignMsg>,
}

impl Subscription {
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

struct Subscriber {
    events: mpsc::Sender<CampaignEvent>,
    overflowed: Arc<AtomicBool>,
}

pub enum CampaignMsg {
    Result(HostResult),
    Subscribe(RpcReplyPort<Subscription>),
    Totals(RpcReplyPort<Totals>),
    Unsubscribed,
    Stop,
    Deadline,
    Tick,
}

pub struct CampaignActor;

pub struct CampaignArgs {
    pub(crate) id: CampaignId,
    pub(crate) entry: CampaignEntry,
    pub(crate) targets: Vec<HostId>,
    pub(crate) deadline: Duration,
    pub(crate) ctx: Arc<CampaignContext>,
}

pub struct CampaignActorState {
    id: CampaignId,
    ctx: Arc<CampaignContext>,
    state: CampaignState,
    subscribers: Vec<Subscriber>,
    /// Every event after `totals` so far — statuses, results, notices — replayed to each new
    /// subscriber, so one that joins late sees exactly what an early one saw.
    backlog: Vec<CampaignEvent>,
    ever_subscribed: bool,
    /// Since when the campaign has had no subscriber.
    unwatched_since: Instant,
    finished: Option<FinishReason>,
    /// Tells the fan-out task to take back what it enqueues after the campaign finished.
    fan_out_cancelled: Arc<AtomicBool>,
}

impl CampaignActorState {
    /// Starts the backlog with the first `status` (nothing answered yet).
    fn with_initial_status(mut self) -> Self {
        self.backlog
            .push(CampaignEvent::Status(self.state.progress(false)));
        self
    }

    fn broadcast(&mut self, event: CampaignEvent) {
        let before = self.subscribers.len();
        let counters = &self.ctx.counters;
        self.subscribers.retain(
            |subscriber| match subscriber.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.overflowed.store(true, Ordering::Release);
                    counters.subscribers_overflowed.incr();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        );
        if before > 0 && self.subscribers.is_empty() {
            self.unwatched_since = Instant::now();
        }
    }

    fn status(&mut self) {
        let event = CampaignEvent::Status(self.state.progress(self.finished.is_some()));
        self.backlog.push(event.clone());
        self.broadcast(event);
    }

    fn subscribe(&mut self) -> (mpsc::Receiver<CampaignEvent>, Arc<AtomicBool>) {
        let capacity = self
            .ctx
            .config
            .subscriber_buffer
            .max(self.backlog.len() + 4);
        let (events, receiver) = mpsc::channel(capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let _ = events.try_send(CampaignEvent::Totals(self.state.totals()));
        for event in &self.backlog {
            let _ = events.try_send(event.clone());
        }
        self.subscribers.push(Subscriber {
            events,
            overflowed: overflowed.clone(),
        });
        self.ever_subscribed = true;
        (receiver, overflowed)
    }

    /// Takes a result; returns whether the counts changed (so a `status` is due).
    fn on_result(&mut self, result: HostResult) -> bool {
        let host = result.host;
        match self.state.on_result(host, result.answer.row_count) {
            Accepted::Forward => {
                self.ctx.counters.results_routed.incr();
                let event = CampaignEvent::Result(Arc::new(ResultEvent {
                    result,
                    encoded: OnceLock::new(),
                }));
                self.backlog.push(event.clone());
                self.broadcast(event);
                true
            }
            Accepted::OverRowCap { first } => {
                self.ctx.counters.results_routed.incr();
                if first {
                    let notice = CampaignEvent::Notice(
                        format!(
                            "this campaign reached its limit of {} rows; further results are counted but not shown",
                            self.ctx.config.max_rows
                        )
                        .into(),
                    );
                    self.backlog.push(notice.clone());
                    self.broadcast(notice);
                }
                true
            }
            Accepted::Duplicate => {
                self.ctx.counters.results_duplicate.incr();
                false
            }
            Accepted::NotTargeted => false,
        }
    }

    /// Marks the campaign finished: hosts drop the query, subscribers get the final status,
    /// the outcome is recorded. Returns whether the actor can stop now.
    fn finish(&mut self, reason: FinishReason) -> bool {
        if self.finished.is_some() {
            return self.ever_subscribed;
        }
        self.finished = Some(reason);
        self.ctx.counters.finished(reason);
        self.fan_out_cancelled.store(true, Ordering::Release);
        for host in self.state.unanswered() {
            self.ctx.hosts.cancel(host, self.id);
        }
        self.status();
        let totals = self.state.totals();
        let progress = self.state.progress(true);
        let outcome = CampaignOutcome {
            reason: reason.as_str(),
            targets: totals.count as u64,
            online: totals.online as u64,
            responded: progress.actual_results as u64,
            finished_at: crate::unix_now(),
        };
        let (store, id, counters) = (self.ctx.store.clone(), self.id, self.ctx.counters.clone());
        tokio::spawn(async move {
            if let Err(error) = store.finish_campaign(id, &outcome).await {
                counters.store_errors.incr();
                tracing::warn!(campaign = %id, %error, "could not record the campaign's outcome");
            }
        });
        tracing::info!(campaign = %self.id, reason = reason.as_str(), responded = progress.actual_results, expected = progress.expected_results, "campaign finished");
        // Answers that arrive before anyone watches are kept until the first subscriber (or
        // the grace period) unless the campaign was ended on purpose.
        self.ever_subscribed || reason != FinishReason::AllAnswered
    }
}

impl Actor for CampaignActor {
    type Msg = CampaignMsg;
    type State = CampaignActorState;
    type Arguments = CampaignArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CampaignMsg>,
        args: CampaignArgs,
    ) -> Result<CampaignActorState, ActorProcessingErr> {
        let ctx = args.ctx;
        let now = crate::unix_now();
        let state = CampaignState::new(
            args.targets.iter().copied(),
            |host| ctx.hosts.is_online(host, now),
            |host| {
                ctx.hosts
                    .presence(host, now)
                    .is_some_and(|p| now - p.last_seen >= MISSING_AFTER_SECS)
            },
            ctx.config.max_rows,
        );
        let sql = args.entry.sql.clone();
        ctx.router
            .insert(args.id, args.entry.with_actor(myself.clone()));

        let fan_out_cancelled = Arc::new(AtomicBool::new(false));
        let query = LiveQuery::expiring(args.id, sql, Instant::now() + args.deadline);
        let (hosts, cancelled, campaign) = (ctx.hosts.clone(), fan_out_cancelled.clone(), args.id);
        let counters = ctx.counters.clone();
        let targets = args.targets;
        tokio::spawn(async move {
            futures_util::stream::iter(targets)
                .map(|host| {
                    let (hosts, query, cancelled) = (&hosts, query.clone(), &cancelled);
                    let counters = &counters;
                    async move {
                        if cancelled.load(Ordering::Acquire) {
                            return;
                        }
                        match hosts.enqueue(host, query).await {
                            Ok(()) => counters.hosts_enqueued.incr(),
                            Err(error) => {
                                tracing::debug!(%campaign, %host, %error, "could not enqueue live query")
                            }
                        }
                        if cancelled.load(Ordering::Acquire) {
                            hosts.cancel(host, campaign);
                        }
                    }
                })
                .buffer_unordered(FAN_OUT_CONCURRENCY)
                .collect::<()>()
                .await;
        });
        myself.send_after(args.deadline, || CampaignMsg::Deadline);
        myself.send_interval(Duration::from_secs(1), || CampaignMsg::Tick);
        ctx.counters.started.incr();
        Ok(CampaignActorState {
            id: args.id,
            ctx,
            state,
            subscribers: Vec::new(),
            backlog: Vec::new(),
            ever_subscribed: false,
            unwatched_since: Instant::now(),
            finished: None,
            fan_out_cancelled,
        }
        .with_initial_status())
    }

    async fn post_start(
        &self,
        myself: ActorRef<CampaignMsg>,
        state: &mut CampaignActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Nobody online to wait for: complete at once (subscribers still get everything).
        if state.state.all_online_answered() && state.finish(FinishReason::AllAnswered) {
            myself.stop(None);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CampaignMsg>,
        message: CampaignMsg,
        state: &mut CampaignActorState,
    ) -> Result<(), ActorProcessingErr> {
        let stop_now = match message {
            CampaignMsg::Result(result) => {
                let counted = state.on_result(result);
                if state.finished.is_none() && state.state.all_online_answered() {
                    // The final status says it all; no intermediate one.
                    state.finish(FinishReason::AllAnswered)
                } else {
                    if counted {
                        state.status();
                    }
                    false
                }
            }
            CampaignMsg::Subscribe(reply) => {
                let (events, overflowed) = state.subscribe();
                let _ = reply.send(Subscription {
                    events,
                    overflowed,
                    campaign: myself.clone(),
                });
                // A campaign that finished unwatched has now been seen: it can go.
                state.finished.is_some()
            }
            CampaignMsg::Totals(reply) => {
                let _ = reply.send(state.state.totals());
                false
            }
            CampaignMsg::Unsubscribed => {
                let before = state.subscribers.len();
                state.subscribers.retain(|s| !s.events.is_closed());
                if before > 0 && state.subscribers.is_empty() {
                    state.unwatched_since = Instant::now();
                }
                false
            }
            CampaignMsg::Stop => {
                state.finish(FinishReason::Stopped);
                true
            }
            CampaignMsg::Deadline => {
                state.finish(FinishReason::Deadline);
                true
            }
            CampaignMsg::Tick => {
                state.subscribers.retain(|s| !s.events.is_closed());
                let grace = state.ctx.config.subscriber_grace;
                if state.subscribers.is_empty() && state.unwatched_since.elapsed() >= grace {
                    state.finish(FinishReason::NoSubscribers);
                    true
                } else {
                    false
                }
            }
        };
        if stop_now {
            myself.stop(None);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CampaignMsg>,
        state: &mut CampaignActorState,
    ) -> Result<(), ActorProcessingErr> {
        if state.finished.is_none() {
            // Stopped abnormally (a panic): still take the query back from every host.
            state.finish(FinishReason::Stopped);
        }
        state.ctx.router.remove(state.id);
        state.ctx.release_slot();
        Ok(())
    }
}
