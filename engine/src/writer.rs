//! `HostWriter`: the one task that writes check-in side effects to the store, in batches.
//!
//! - Spawned by [`Hosts::start`](crate::hosts::Hosts::start); lives until the process ends.
//!   [`Engine::shutdown`](crate::Engine::shutdown) (through `Hosts::flush`) has it write
//!   everything before the process exits.
//! - Receives vitals from host actors over an unbounded channel (one message per detail round,
//!   about one per host per hour) and keeps only the newest per host.
//! - Every `flush_interval` it also scans the registry for last-seen times worth writing (at most
//!   one per host per `seen_write_granularity`) and sends everything in one `flush_hosts` call.
//! - If the store fails, nothing is dropped: the vitals stay pending and the last-seen times stay
//!   unmarked, and the next tick tries again. However long the outage, what waits is bounded by
//!   the number of hosts: one pending update per host (newest vitals merged, newest answer per
//!   label and per policy), and last-seen times live in the registry's slots, not in a queue.
//! - `flush_all` (shutdown) writes every pending change, however recent.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

use crate::config::EngineConfig;
use crate::counters::HostCounters;
use crate::ids::HostId;
use crate::slot::HostSlot;
use crate::software::SharedInventory;
use crate::store::{HostStore, HostUpdate, StoreError};
use crate::vitals::Vitals;

enum WriterMsg {
    Vitals {
        host: HostId,
        vitals: Box<Vitals>,
        detail_updated_at: i64,
    },
    Labels {
        host: HostId,
        labels: Vec<(u64, bool)>,
        label_updated_at: i64,
    },
    Policies {
        host: HostId,
        policies: Vec<(u64, Option<bool>)>,
        policy_updated_at: i64,
    },
    Software {
        host: HostId,
        inventory: SharedInventory,
        software_updated_at: i64,
    },
    FlushAll(oneshot::Sender<Result<(), StoreError>>),
}

/// Where host actors send vitals; never blocks.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::UnboundedSender<WriterMsg>,
    /// `writer_queue` counts what is sent and not yet taken.
    counters: Arc<HostCounters>,
}

impl WriterHandle {
    fn send(&self, message: WriterMsg) -> bool {
        self.counters.writer_queue.add(1);
        let sent = self.tx.send(message).is_ok();
        if !sent {
            self.counters.writer_queue.add(-1);
        }
        sent
    }

    pub(crate) fn labels(&self, host: HostId, labels: Vec<(u64, bool)>, label_updated_at: i64) {
        self.send(WriterMsg::Labels {
            host,
            labels,
            label_updated_at,
        });
    }

    /// A host's policy answers (empty: it had no policy to run, only the time is written).
    pub(crate) fn policies(
        &self,
        host: HostId,
        policies: Vec<(u64, Option<bool>)>,
        policy_updated_at: i64,
    ) {
        self.send(WriterMsg::Policies {
            host,
            policies,
            policy_updated_at,
        });
    }

    /// A host's software set, which changed since the last one sent.
    pub(crate) fn software(&self, host: HostId, inventory: SharedInventory, at: i64) {
        self.send(WriterMsg::Software {
            host,
            inventory,
            software_updated_at: at,
        });
    }

    pub(crate) fn vitals(&self, host: HostId, vitals: Vitals, detail_updated_at: i64) {
        // The writer only stops with the process; a failed send means we are shutting down.
        self.send(WriterMsg::Vitals {
            host,
            vitals: Box::new(vitals),
            detail_updated_at,
        });
    }
}

pub(crate) struct HostWriter {
    handle: WriterHandle,
}

struct WriterTask {
    store: Arc<dyn HostStore>,
    slots: Arc<DashMap<HostId, Arc<HostSlot>>>,
    counters: Arc<HostCounters>,
    granularity: i64,
    /// Vitals not yet in the store, newest per host.
    pending: HashMap<HostId, HostUpdate>,
}

impl HostWriter {
    pub(crate) fn start(
        store: Arc<dyn HostStore>,
        slots: Arc<DashMap<HostId, Arc<HostSlot>>>,
        config: &EngineConfig,
        counters: Arc<HostCounters>,
    ) -> HostWriter {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = WriterHandle {
            tx,
            counters: counters.clone(),
        };
        let mut task = WriterTask {
            store,
            slots,
            counters,
            granularity: config.seen_write_granularity.as_secs() as i64,
            pending: HashMap::new(),
        };
        let period = config.flush_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    message = rx.recv() => {
                    if message.is_some() {
                        task.counters.writer_queue.add(-1);
                    }
                    match message {
                        Some(WriterMsg::Vitals { host, vitals, detail_updated_at }) => {
                            task.remember(host, *vitals, detail_updated_at);
                        }
                        Some(WriterMsg::Labels { host, labels, label_updated_at }) => {
                            task.remember_labels(host, labels, label_updated_at);
                        }
                        Some(WriterMsg::Policies { host, policies, policy_updated_at }) => {
                            task.remember_policies(host, policies, policy_updated_at);
                        }
                        Some(WriterMsg::Software { host, inventory, software_updated_at }) => {
                            // Only the newest set matters: it replaces the host's whole set.
                            let update = task.pending.entry(host).or_default();
                            update.software = Some(inventory);
                            update.software_updated_at = Some(software_updated_at);
                        }
                        Some(WriterMsg::FlushAll(reply)) => {
                            let _ = reply.send(task.flush(true).await);
                        }
                        None => break,
                    }
                    task.counters.writer_pending_hosts.set(task.pending.len() as i64);
                    },
                    _ = tick.tick() => {
                        if let Err(error) = task.flush(false).await {
                            tracing::warn!(%error, pending = task.pending.len(), "host flush failed; will retry");
                        }
                        task.counters.writer_pending_hosts.set(task.pending.len() as i64);
                    }
                }
            }
        });
        HostWriter { handle }
    }

    pub(crate) fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    pub(crate) async fn flush_all(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        if !self.handle.send(WriterMsg::FlushAll(reply)) {
            return Err(StoreError::Unavailable("host writer stopped".into()));
        }
        done.await
            .map_err(|_| StoreError::Unavailable("host writer stopped".into()))?
    }
}

impl WriterTask {
    fn remember(&mut self, host: HostId, vitals: Vitals, detail_updated_at: i64) {
        let update = self.pending.entry(host).or_default();
        match &mut update.vitals {
            Some(existing) => existing.merge(vitals),
            None => update.vitals = Some(vitals),
        }
        update.detail_updated_at = Some(detail_updated_at);
    }

    /// Keeps the newest answer per label: however long the store stays away, a host's pending
    /// labels never outgrow the set of labels.
    fn remember_labels(&mut self, host: HostId, labels: Vec<(u64, bool)>, label_updated_at: i64) {
        let update = self.pending.entry(host).or_default();
        let pending = update.labels.get_or_insert_with(Vec::new);
        for (label, member) in labels {
            match pending.iter_mut().find(|(known, _)| *known == label) {
                Some(entry) => entry.1 = member,
                None => pending.push((label, member)),
            }
        }
        update.label_updated_at = Some(label_updated_at);
    }

    /// Keeps the newest answer per policy, as for labels: a host's pending answers never
    /// outgrow the set of policies.
    fn remember_policies(
        &mut self,
        host: HostId,
        policies: Vec<(u64, Option<bool>)>,
        policy_updated_at: i64,
    ) {
        let update = self.pending.entry(host).or_default();
        let pending = update.policies.get_or_insert_with(Vec::new);
        for (policy, response) in policies {
            match pending.iter_mut().find(|(known, _)| *known == policy) {
                Some(entry) => entry.1 = response,
                None => pending.push((policy, response)),
            }
        }
        update.policy_updated_at = Some(policy_updated_at);
    }

    async fn flush(&mut self, force: bool) -> Result<(), StoreError> {
        let mut batch: Vec<(HostId, HostUpdate)> = self.pending.drain().collect();
        let mut index: HashMap<HostId, usize> = batch
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (*h, i))
            .collect();
        let mut seen_marks = Vec::new();
        for slot in self.slots.iter() {
            if let Some(seen) = slot.unpersisted_seen(self.granularity, force) {
                seen_marks.push((slot.clone(), seen));
                match index.get(&slot.id) {
                    Some(&i) => batch[i].1.seen_time = Some(seen),
                    None => {
                        index.insert(slot.id, batch.len());
                        batch.push((
                            slot.id,
                            HostUpdate {
                                seen_time: Some(seen),
                                ..HostUpdate::default()
                            },
                        ));
                    }
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let flushed = self.store.flush_hosts(&batch).await;
        self.counters.flush_duration.observe(started.elapsed());
        match flushed {
            Ok(()) => {
                for (slot, seen) in seen_marks {
                    slot.mark_persisted(seen);
                }
                self.counters.flushes.incr();
                self.counters.rows_flushed.add(batch.len() as u64);
                Ok(())
            }
            Err(error) => {
                self.counters.flush_failures.incr();
                // Put the vitals back, under anything newer that arrived meanwhile (none can:
                // this task is the only reader of the channel and it is busy here).
                for (host, update) in batch {
                    if update.vitals.is_some()
                        || update.labels.is_some()
                        || update.policies.is_some()
                        || update.software.is_some()
                    {
                        self.pending.entry(host).or_insert(HostUpdate {
                            seen_time: None,
                            ..update
                        });
                    }
                }
                Err(error)
            }
        }
    }
}
