//! `CampaignActor`: one live query, from start to finish.
//!
//! - Spawned by [`Campaigns::start`](crate::campaigns::Campaigns::start) and, for a campaign
//!   another node started, [`Campaigns::join`](crate::campaigns::Campaigns::join); unlinked. In
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
//! - Owns alone its [`CampaignState`] (who answered, totals, the row cap), its subscribers and
//!   the results kept for late ones. Shares with the registry only [`CampaignContext`] (hosts,
//!   router, store, counters, the concurrency count) and its entry in the router.
//! - With a shared relay, it also announces its finish and reads the campaign's answer log
//!   (a reader task it stops in `post_stop`).
//! - Timers: the deadline, and a one-second tick for the subscriber grace period.
//! - Stop and panic: `post_stop` finishes a campaign that had not finished (a panic), so the
//!   query is still taken back from every host; it then leaves the router and frees its place
//!   under the concurrency cap.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::campaign_state::{Accepted, CampaignState};
use crate::config::CampaignConfig;
use crate::counters::CampaignCounters;
use crate::hosts::Hosts;
use crate::ids::CampaignId;
use crate::live::{HostResult, LiveQuery};
use crate::relay::{CampaignSpec, RelayEvent};
use crate::router::{CampaignEntry, CampaignRouter};
use crate::store::{CampaignCounts, CampaignOutcome, CampaignStore};

pub use crate::campaign_msg::{
    CampaignEvent, CampaignMsg, FinishReason, HeldBytes, ResultEvent, Subscription,
};

/// Enqueues in flight at once while a campaign fans out.
const FAN_OUT_CONCURRENCY: usize = 256;

struct Subscriber {
    events: mpsc::Sender<CampaignEvent>,
    overflowed: Arc<AtomicBool>,
}

pub(crate) struct CampaignContext {
    pub(crate) hosts: Hosts,
    pub(crate) router: CampaignRouter,
    pub(crate) store: Arc<dyn CampaignStore>,
    pub(crate) config: CampaignConfig,
    pub(crate) counters: Arc<CampaignCounters>,
    /// Campaigns started and not yet stopped; bounded by `config.max_active`.
    pub(crate) active: AtomicUsize,
    /// Serialises joins so two announcements of one campaign start one mirror.
    pub(crate) joining: tokio::sync::Mutex<()>,
}

impl CampaignContext {
    pub(crate) fn release_slot(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct CampaignActor;

pub struct CampaignArgs {
    pub(crate) spec: CampaignSpec,
    pub(crate) entry: CampaignEntry,
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
    /// With a shared relay: this node's reader of the campaign's answer log.
    reader: Option<ReaderHandle>,
    /// A finish another node claimed, waiting for the answer log to be read to its end.
    remote_finish: Option<(FinishReason, Instant)>,
    /// A check of whether another node has a subscriber is under way.
    watch_check_pending: bool,
    /// The counts last written to the store, when, and whether a write is under way.
    recorded: CampaignCounts,
    recorded_at: Instant,
    recording: Arc<AtomicBool>,
}

/// How often a running campaign's counts are written to the store (when they changed).
const RECORD_COUNTS_EVERY: Duration = Duration::from_secs(5);

/// The task reading the campaign's answer log from the relay.
struct ReaderHandle {
    /// Set when the actor stops: the reader ends.
    stop: Arc<AtomicBool>,
    /// Set on `RemoteFinished`: the reader reports `Drained` after its next empty read.
    drain: Arc<AtomicBool>,
}

/// How long a node waits to read the answer log to its end before finishing as another node
/// said, when the log cannot be read.
const REMOTE_FINISH_WAIT: Duration = Duration::from_secs(5);

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
        let accepted =
            self.state
                .on_result(host, result.answer.row_count, result.answer.rows.len());
        if self.distributed() && matches!(accepted, Accepted::Forward | Accepted::OverCap { .. }) {
            // The answer may have come through another node: no node hands the query again.
            self.ctx.hosts.cancel(host, self.id);
        }
        match accepted {
            Accepted::Forward => {
                self.ctx.counters.results_routed.incr();
                let held = HeldBytes::new(self.ctx.counters.clone(), result.answer.rows.len());
                let event = CampaignEvent::Result(Arc::new(ResultEvent {
                    result,
                    encoded: OnceLock::new(),
                    held,
                }));
                self.backlog.push(event.clone());
                self.broadcast(event);
                true
            }
            Accepted::OverCap { first } => {
                self.ctx.counters.results_routed.incr();
                if first {
                    let notice = CampaignEvent::Notice(
                        format!(
                            "this campaign reached its limit of {} rows or {} bytes of results; further results are counted but not shown",
                            self.ctx.config.max_rows, self.ctx.config.max_bytes
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

    fn distributed(&self) -> bool {
        self.reader.is_some()
    }

    /// Marks the campaign finished: hosts drop the query, subscribers get the final status,
    /// the outcome is recorded (by whichever node claims the finish, when nodes share a relay).
    /// Returns whether the actor can stop now.
    fn finish(&mut self, reason: FinishReason) -> bool {
        self.finish_as(reason, true)
    }

    /// `claim`: this node decided the finish and claims it; false when another node did.
    fn finish_as(&mut self, reason: FinishReason, claim: bool) -> bool {
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
        if claim {
            let (store, id, counters) =
                (self.ctx.store.clone(), self.id, self.ctx.counters.clone());
            let relay = self.distributed().then(|| self.ctx.hosts.relay());
            tokio::spawn(async move {
                if let Some(relay) = relay
                    && !claim_finish(relay.as_ref(), id, reason).await
                {
                    return;
                }
                if let Err(error) = store.finish_campaign(id, &outcome).await {
                    counters.store_errors.incr();
                    tracing::warn!(campaign = %id, %error, "could not record the campaign's outcome");
                }
            });
        }
        tracing::info!(campaign = %self.id, reason = reason.as_str(), responded = progress.actual_results, expected = progress.expected_results, "campaign finished");
        // Answers that arrive before anyone watches are kept until the first subscriber (or
        // the grace period) unless the campaign was ended on purpose.
        self.ever_subscribed || reason != FinishReason::AllAnswered
    }

    /// Writes the counts so far to the store, at most every [`RECORD_COUNTS_EVERY`], when they
    /// changed and no earlier write is still under way: a campaign closed after a crash keeps
    /// how far it got.
    fn record_counts(&mut self) {
        let totals = self.state.totals();
        let counts = CampaignCounts {
            targets: totals.count as u64,
            online: totals.online as u64,
            responded: self.state.progress(false).actual_results as u64,
        };
        if counts == self.recorded
            || self.recorded_at.elapsed() < RECORD_COUNTS_EVERY
            || self.recording.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.recorded = counts;
        self.recorded_at = Instant::now();
        let (store, id, recording) = (self.ctx.store.clone(), self.id, self.recording.clone());
        let counters = self.ctx.counters.clone();
        tokio::spawn(async move {
            if let Err(error) = store
                .record_campaign_counts(id, counts, crate::unix_now())
                .await
            {
                counters.store_errors.incr();
                tracing::debug!(campaign = %id, %error, "could not record the campaign's counts");
            }
            recording.store(false, Ordering::Release);
        });
    }

    /// On the one-second tick: keeps this node's subscribers known to the others, and finishes
    /// a campaign nobody has watched anywhere for the grace period.
    fn on_tick(&mut self, myself: &ActorRef<CampaignMsg>) -> bool {
        self.subscribers.retain(|s| !s.events.is_closed());
        if let Some((reason, since)) = self.remote_finish
            && since.elapsed() >= REMOTE_FINISH_WAIT
        {
            return self.finish_as(reason, false);
        }
        if self.finished.is_some() {
            // Finished and waiting (the grace period) for its first subscriber.
            return self.unwatched_since.elapsed() >= self.ctx.config.subscriber_grace;
        }
        self.record_counts();
        let relay = self.distributed().then(|| self.ctx.hosts.relay());
        if !self.subscribers.is_empty() {
            if let Some(relay) = relay {
                let id = self.id;
                tokio::spawn(async move {
                    if let Err(error) = relay.mark_watched(id).await {
                        tracing::debug!(campaign = %id, %error, "could not note the campaign's subscribers");
                    }
                });
            }
            return false;
        }
        if self.unwatched_since.elapsed() < self.ctx.config.subscriber_grace {
            return false;
        }
        match relay {
            None => self.finish(FinishReason::NoSubscribers),
            Some(_) if self.watch_check_pending => false,
            Some(relay) => {
                self.watch_check_pending = true;
                let (id, myself) = (self.id, myself.clone());
                tokio::spawn(async move {
                    // Unreachable relay: assume watched rather than end what others may watch.
                    let watched = relay.watched(id).await.unwrap_or(true);
                    let _ = myself.cast(CampaignMsg::WatchedElsewhere(watched));
                });
                false
            }
        }
    }
}

/// Claims a campaign's finish on the relay, retrying while it is unreachable (up to a minute).
/// True if this node won the claim, or the relay stayed unreachable (the outcome is then
/// recorded anyway, so the store never keeps a finished campaign open).
async fn claim_finish(
    relay: &dyn crate::relay::Relay,
    id: CampaignId,
    reason: FinishReason,
) -> bool {
    let mut delay = Duration::from_millis(200);
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        match relay.claim_finish(id, reason.as_str()).await {
            Ok(won) => {
                if won {
                    let event = RelayEvent::CampaignFinished {
                        id,
                        reason: reason.as_str().to_owned(),
                    };
                    if let Err(error) = relay.publish(&event).await {
                        tracing::debug!(campaign = %id, %error, "could not announce the finish; nodes will find it when they reconcile");
                    }
                }
                return won;
            }
            Err(error) if Instant::now() >= give_up => {
                tracing::warn!(campaign = %id, %error, "could not claim the campaign's finish on the relay; recording it anyway");
                return true;
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads the campaign's answer log and hands each answer to the actor, until the actor stops.
fn spawn_reader(
    relay: Arc<dyn crate::relay::Relay>,
    id: CampaignId,
    myself: ActorRef<CampaignMsg>,
) -> ReaderHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    let handle = ReaderHandle {
        stop: stop.clone(),
        drain: drain.clone(),
    };
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        let mut reader = None;
        while !stop.load(Ordering::Acquire) {
            let current = match &mut reader {
                Some(reader) => reader,
                None => match relay.results(id).await {
                    Ok(fresh) => reader.insert(fresh),
                    Err(error) => {
                        tracing::debug!(campaign = %id, %error, "cannot read the campaign's answers yet");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            match current.next_batch(Duration::from_millis(500)).await {
                Ok(batch) if batch.is_empty() => {
                    delay = Duration::from_millis(100);
                    if drain.load(Ordering::Acquire) && myself.cast(CampaignMsg::Drained).is_err() {
                        break;
                    }
                }
                Ok(batch) => {
                    delay = Duration::from_millis(100);
                    for result in batch {
                        if myself.cast(CampaignMsg::Result(result)).is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(campaign = %id, %error, "reading the campaign's answers failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    handle
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
        let spec = args.spec;
        let state = CampaignState::new(
            spec.targets.iter().copied(),
            spec.online.iter().copied(),
            spec.missing,
            ctx.config.max_rows,
            ctx.config.max_bytes,
        );
        ctx.router
            .insert(spec.id, args.entry.with_actor(myself.clone()));

        let remaining = Duration::from_millis(
            (spec.deadline_unix_ms - crate::relay::unix_now_ms()).max(0) as u64,
        );
        let fan_out_cancelled = Arc::new(AtomicBool::new(false));
        let query = LiveQuery::expiring(spec.id, spec.sql.clone(), Instant::now() + remaining);
        let (hosts, cancelled, campaign) = (ctx.hosts.clone(), fan_out_cancelled.clone(), spec.id);
        let counters = ctx.counters.clone();
        let targets = spec.targets;
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
        let relay = ctx.hosts.relay();
        let reader = (!relay.is_local()).then(|| spawn_reader(relay, spec.id, myself.clone()));
        myself.send_after(remaining, || CampaignMsg::Deadline);
        myself.send_interval(Duration::from_secs(1), || CampaignMsg::Tick);
        ctx.counters.started.incr();
        Ok(CampaignActorState {
            id: spec.id,
            ctx,
            state,
            subscribers: Vec::new(),
            backlog: Vec::new(),
            ever_subscribed: false,
            unwatched_since: Instant::now(),
            finished: None,
            fan_out_cancelled,
            reader,
            remote_finish: None,
            watch_check_pending: false,
            recorded: CampaignCounts::default(),
            recorded_at: Instant::now(),
            recording: Arc::new(AtomicBool::new(false)),
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
                let _ = reply.send(Subscription::new(events, overflowed, myself.clone()));
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
            CampaignMsg::Tick => state.on_tick(&myself),
            CampaignMsg::RemoteFinished(reason) => {
                if state.finished.is_some() {
                    false
                } else if let Some(reader) = &state.reader {
                    reader.drain.store(true, Ordering::Release);
                    state.remote_finish = Some((reason, Instant::now()));
                    false
                } else {
                    state.finish_as(reason, false)
                }
            }
            CampaignMsg::IsFinished(reply) => {
                let _ = reply.send(state.finished.is_some());
                false
            }
            CampaignMsg::Drained => match state.remote_finish {
                Some((reason, _)) => state.finish_as(reason, false),
                None => false,
            },
            CampaignMsg::WatchedElsewhere(watched) => {
                state.watch_check_pending = false;
                if watched {
                    // Someone watches on another node: wait another grace period.
                    state.unwatched_since = Instant::now();
                    false
                } else if state.subscribers.is_empty() && state.finished.is_none() {
                    state.finish(FinishReason::NoSubscribers)
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
        if let Some(reader) = &state.reader {
            reader.stop.store(true, Ordering::Release);
        }
        state.ctx.router.remove(state.id);
        state.ctx.release_slot();
        Ok(())
    }
}
