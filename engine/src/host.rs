//! `HostActor`: one enrolled host while it has something to hold.
//!
//! - Spawned by [`Hosts`](crate::hosts::Hosts) on demand ("activation") when a check-in finds
//!   work due or a campaign enqueues a live query; never linked to a supervisor, so one host
//!   stopping or failing touches no other.
//! - Owns the host's pending live queries and the cached reply to its distributed reads.
//!   While it runs it is also the only writer of the host's
//!   [`HostRecord`](crate::record::HostRecord) (through its [`HostSlot`]). What every host
//!   actor shares read-only is the [`HostContext`]; its messages are in `host_msg`.
//! - Messages: reads and writes from the osquery endpoints, enqueue/cancel from campaigns; it
//!   sends vitals to the [`HostWriter`](crate::writer::HostWriter) and live answers to the
//!   [`ResultSink`](crate::live::ResultSink), both without waiting.
//! - Timer: an idle check every half idle-timeout. With no live query pending, no detail,
//!   label or policy query due and no work handed out or taken in (a read that answers nothing does not count) for
//!   `host_idle_timeout`, it detaches itself from the slot and stops;
//!   a caller that raced with that gets an error from the dead mailbox and activates a new one.
//! - A panic stops only this actor; `post_stop` detaches it so the next call activates afresh.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::config::EngineConfig;
use crate::counters::HostCounters;
use crate::detail;
use crate::ids::CampaignId;
use crate::labels::Labels;
use crate::live::{HostResult, LiveQuery, ResultSink};
use crate::policies::Policies;
use crate::slot::HostSlot;
use crate::software;
use crate::vitals::Vitals;
use crate::writer::WriterHandle;

pub use crate::host_msg::{DetailAnswer, HostMsg, HostResults, PendingQuery, ReadWork};

/// Seconds a just-enrolled host is asked to check in quickly.
const NEW_HOST_ACCELERATE_SECS: u32 = 10;
/// Seconds a host handed a live query is asked to check in every 5 s: an admin running one
/// live query usually runs the next within the minute.
const LIVE_QUERY_ACCELERATE_SECS: u32 = 60;

/// What every host actor shares: configuration, the writer, the result sink, counters.
pub struct HostContext {
    pub config: EngineConfig,
    pub(crate) writer: WriterHandle,
    pub(crate) sink: Arc<dyn ResultSink>,
    pub counters: Arc<HostCounters>,
    /// `SELECT 1`, the discovery of every live query, shared.
    pub(crate) select_one: Arc<str>,
    /// The dynamic-label queries every host runs.
    pub(crate) labels: Labels,
    /// The policy queries hosts run, each host those that apply to it.
    pub(crate) policies: Policies,
    /// Whether hosts run the software inventory queries.
    pub(crate) software_inventory: AtomicBool,
}

pub struct HostActor;

/// What a cached reply depends on besides the mailbox.
#[derive(Clone, Copy, PartialEq, Eq)]
struct WorkKey {
    detail_due: bool,
    labels_due: bool,
    label_version: u64,
    policies_due: bool,
    policy_version: u64,
    /// Which team's policies a host runs.
    team: Option<crate::ids::TeamId>,
    software: bool,
}

pub struct HostArgs {
    pub(crate) slot: Arc<HostSlot>,
    pub(crate) ctx: Arc<HostContext>,
}

pub struct HostState {
    slot: Arc<HostSlot>,
    ctx: Arc<HostContext>,
    /// Live queries waiting for this host's answer, by campaign.
    live: BTreeMap<CampaignId, LiveQuery>,
    /// The last reply built, and what it was built for: details due, labels due, label set.
    cached: Option<(WorkKey, Arc<ReadWork>)>,
    /// When the actor last handed out work, took results in or received a query.
    last_message: Instant,
    /// The policy set version of the last reply that carried policies: what the host's
    /// answers are answers to.
    policies_sent: Option<u64>,
}

impl HostState {
    /// Drops live queries whose campaign deadline has passed.
    fn prune_expired(&mut self) {
        let now = Instant::now();
        let before = self.live.len();
        self.live.retain(|_, query| query.expires > now);
        if self.live.len() != before {
            self.cached = None;
        }
    }

    fn work(&mut self, now: i64) -> Arc<ReadWork> {
        self.prune_expired();
        let label_set = self.ctx.labels.current();
        let policy_set = self.ctx.policies.current();
        let mut nothing_to_run = false;
        let (key, is_new, platform) = {
            let mut state = self.slot.lock();
            let record = &mut state.record;
            let mut policies_due = record.policies_due(now, &policy_set, &self.ctx.config);
            // Due, but none applies to this host: done for this round, nothing sent (policies
            // wait for the platform, as labels do).
            if policies_due
                && !record.platform.is_empty()
                && policy_set
                    .for_host(record.team, &record.platform)
                    .next()
                    .is_none()
            {
                record.policy_updated_at = now;
                record.policy_version = policy_set.version;
                policies_due = false;
                nothing_to_run = true;
            }
            let key = WorkKey {
                detail_due: record.detail_due(now, &self.ctx.config),
                labels_due: record.labels_due(now, &label_set, &self.ctx.config),
                label_version: label_set.version,
                policies_due,
                policy_version: policy_set.version,
                team: record.team,
                software: self.ctx.software_inventory.load(Ordering::Relaxed),
            };
            (key, record.is_new(), record.platform.clone())
        };
        if nothing_to_run {
            self.ctx.writer.policies(self.slot.id, Vec::new(), now);
        }
        if let Some((cached_key, work)) = &self.cached
            && *cached_key == key
        {
            return work.clone();
        }
        let select_one = self.ctx.select_one.clone();
        let mut queries = Vec::new();
        if key.detail_due {
            queries.extend(
                detail::for_platform(&platform)
                    .filter(|q| key.software || !q.software)
                    .map(|q| PendingQuery {
                        name: q.name.clone(),
                        sql: q.sql.clone(),
                        discovery: q.discovery.clone(),
                    }),
            );
        }
        // Labels wait for the platform: a label for one platform must not go to every host.
        if key.labels_due && !platform.is_empty() {
            queries.extend(
                label_set
                    .queries
                    .iter()
                    .filter(|q| q.applies_to(&platform))
                    .map(|q| PendingQuery {
                        name: q.name.clone(),
                        sql: q.sql.clone(),
                        discovery: select_one.clone(),
                    }),
            );
        }
        if key.policies_due && !platform.is_empty() {
            queries.extend(
                policy_set
                    .for_host(key.team, &platform)
                    .map(|q| PendingQuery {
                        name: q.name.clone(),
                        sql: q.sql.clone(),
                        discovery: select_one.clone(),
                    }),
            );
            self.policies_sent = Some(policy_set.version);
        }
        queries.extend(self.live.values().map(|q| PendingQuery {
            name: q.name.clone(),
            sql: q.sql.clone(),
            discovery: select_one.clone(),
        }));
        let accelerate = if !self.live.is_empty() {
            Some(LIVE_QUERY_ACCELERATE_SECS)
        } else {
            (key.detail_due && is_new).then_some(NEW_HOST_ACCELERATE_SECS)
        };
        let work = if queries.is_empty() {
            ReadWork::empty()
        } else {
            Arc::new(ReadWork {
                queries,
                accelerate,
            })
        };
        self.cached = Some((key, work.clone()));
        work
    }

    fn apply(&mut self, now: i64, results: &HostResults) {
        if !results.details.is_empty() {
            let mut vitals = Vitals::default();
            for answer in &results.details {
                detail::ingest(&answer.suffix, &answer.rows, &mut vitals);
            }
            let (platform, os_version, fingerprint) = {
                let mut state = self.slot.lock();
                state.record.absorb(&vitals);
                state.record.detail_updated_at = now;
                state.record.refetch_requested = false;
                self.slot.mark_answered();
                let r = &state.record;
                (
                    r.platform.clone(),
                    r.os_version.clone(),
                    r.software_fingerprint,
                )
            };
            // Built outside the slot's lock, which the host's check-ins take.
            let changed_software =
                self.software(&results.details, &platform, &os_version, fingerprint);
            if let Some(inventory) = &changed_software {
                self.slot.lock().record.software_fingerprint = inventory.fingerprint;
            }
            self.ctx.writer.vitals(self.slot.id, vitals, now);
            if let Some(inventory) = changed_software {
                self.ctx.counters.software_sets_changed.incr();
                self.ctx.writer.software(self.slot.id, inventory, now);
            }
            self.cached = None;
        }
        if !results.labels.is_empty() {
            self.apply_labels(now, &results.labels);
        }
        if !results.policies.is_empty() {
            self.apply_policies(now, &results.policies);
        }
        if results.live.is_empty() {
            return;
        }
        let hostname = self.slot.lock().record.hostname.clone();
        for answer in &results.live {
            if self.live.remove(&answer.campaign).is_some() {
                self.cached = None;
            }
            self.ctx.counters.live_results.incr();
            self.ctx.sink.deliver(HostResult {
                host: self.slot.id,
                hostname: hostname.clone(),
                answer: answer.clone(),
            });
        }
    }

    /// The host's software set from this round's software answers, if the platform's main
    /// software query answered, the inventory is on, and the set differs from the last one
    /// sent (`last_fingerprint`).
    fn software(
        &self,
        details: &[crate::host_msg::DetailAnswer],
        platform: &str,
        os_version: &str,
        last_fingerprint: u64,
    ) -> Option<Arc<software::Inventory>> {
        if !self.ctx.software_inventory.load(Ordering::Relaxed)
            || !details.iter().any(|a| software::is_main_query(&a.suffix))
        {
            return None;
        }
        let rows = details
            .iter()
            .filter(|a| software::is_software_query(&a.suffix))
            .flat_map(|a| a.rows.iter());
        let inventory = software::Inventory::from_rows(rows, platform, os_version);
        (inventory.fingerprint != last_fingerprint).then(|| Arc::new(inventory))
    }

    /// Takes in the answers to label queries this host is handed — in the current set and for
    /// its platform — and drops any other: a host cannot make itself a member of a label it
    /// was never sent (a manual label, another platform's, a deleted one).
    fn apply_labels(&mut self, now: i64, answers: &[(u64, Option<bool>)]) {
        let set = self.ctx.labels.current();
        let known: Vec<(u64, bool)> = {
            let mut state = self.slot.lock();
            let record = &mut state.record;
            let accepted: Vec<(u64, Option<bool>)> = answers
                .iter()
                .filter(|(id, _)| set.applies(*id, &record.platform))
                .copied()
                .collect();
            if accepted.len() < answers.len() {
                tracing::debug!(host = %self.slot.id, dropped = answers.len() - accepted.len(), "answers to labels the host was not handed");
            }
            if accepted.is_empty() {
                return;
            }
            record.label_updated_at = now;
            record.label_version = set.version;
            self.slot.mark_answered();
            accepted
                .into_iter()
                .filter_map(|(label, member)| member.map(|m| (label, m)))
                .collect()
        };
        self.ctx.writer.labels(self.slot.id, known, now);
        self.cached = None;
    }

    /// Takes in the answers to policies this host was handed — in the current set and
    /// applying to it — and drops any other: a host cannot report on a policy it was never
    /// sent.
    fn apply_policies(&mut self, now: i64, answers: &[(u64, Option<bool>)]) {
        let set = self.ctx.policies.current();
        let accepted: Vec<(u64, Option<bool>)> = {
            let mut state = self.slot.lock();
            let record = &mut state.record;
            let accepted: Vec<(u64, Option<bool>)> = answers
                .iter()
                .filter(|(id, _)| set.applies(*id, record.team, &record.platform))
                .copied()
                .collect();
            if accepted.is_empty() {
                return;
            }
            record.policy_updated_at = now;
            record.policy_version = self.policies_sent.unwrap_or(set.version);
            self.slot.mark_answered();
            accepted
        };
        if accepted.len() < answers.len() {
            tracing::debug!(host = %self.slot.id, dropped = answers.len() - accepted.len(), "answers to policies the host was not handed");
        }
        self.ctx.writer.policies(self.slot.id, accepted, now);
        self.cached = None;
    }

    /// True when nothing needs this actor: no live query, no details due, and no work handed
    /// out or taken in for the idle timeout.
    fn idle(&self, now: i64) -> bool {
        if !self.live.is_empty() || self.last_message.elapsed() < self.ctx.config.host_idle_timeout
        {
            return false;
        }
        let labels = self.ctx.labels.current();
        let policies = self.ctx.policies.current();
        let state = self.slot.lock();
        !state.record.detail_due(now, &self.ctx.config)
            && !state.record.labels_due(now, &labels, &self.ctx.config)
            && !state.record.policies_due(now, &policies, &self.ctx.config)
    }
}

impl Actor for HostActor {
    type Msg = HostMsg;
    type State = HostState;
    type Arguments = HostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HostMsg>,
        args: HostArgs,
    ) -> Result<HostState, ActorProcessingErr> {
        let period =
            (args.ctx.config.host_idle_timeout / 2).max(std::time::Duration::from_millis(100));
        myself.send_interval(period, || HostMsg::IdleCheck);
        Ok(HostState {
            slot: args.slot,
            ctx: args.ctx,
            live: BTreeMap::new(),
            cached: None,
            last_message: Instant::now(),
            policies_sent: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<HostMsg>,
        message: HostMsg,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HostMsg::Read { now, reply } => {
                let work = state.work(now);
                // Only a read that hands out work keeps the actor: a host checking in every
                // 10 s with nothing to do must let it go idle, and be answered from its
                // compact record again.
                if !work.is_empty() {
                    state.last_message = Instant::now();
                }
                let _ = reply.send(work);
            }
            HostMsg::Write {
                now,
                results,
                reply,
            } => {
                state.last_message = Instant::now();
                state.apply(now, &results);
                let _ = reply.send(());
            }
            HostMsg::Enqueue { query, reply } => {
                state.last_message = Instant::now();
                state.live.insert(query.campaign, query);
                state.cached = None;
                let _ = reply.send(());
            }
            HostMsg::Cancel { campaign } => {
                if state.live.remove(&campaign).is_some() {
                    state.cached = None;
                }
            }
            HostMsg::IdleCheck => {
                state.prune_expired();
                if state.idle(crate::unix_now()) {
                    state.slot.detach(&myself);
                    state.ctx.counters.deactivations.incr();
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<HostMsg>,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        state.slot.detach(&myself);
        Ok(())
    }
}
