//! The tasks that keep a node in step with the others when they share a relay:
//!
//! - [`Outbox`] sends this node's live-query answers to their campaigns' logs, in batches,
//!   and keeps them through a relay outage until they are sent.
//! - [`follow`] mirrors campaigns other nodes announce, finishes the ones they finished, and
//!   every few seconds (and after a reconnect) reconciles with the relay's own state, so an
//!   announcement missed while disconnected is made up for.
//! - [`follow_hosts`] applies host changes other nodes announce and announces which hosts
//!   checked in here, so every node knows which hosts are online.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::campaigns::{CampaignCounters, Campaigns};
use crate::hosts::Hosts;
use crate::live::HostResult;
use crate::relay::{Relay, RelayEvent};

/// Answers sent per relay round trip at most.
const OUTBOX_BATCH: usize = 256;
/// An answer the relay could not take for this long is given up (and counted as dropped):
/// every campaign has ended by then.
const OUTBOX_KEEP: Duration = Duration::from_secs(15 * 60);
/// How often a node reconciles its campaigns with the relay.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How often a node announces the hosts that checked in with it.
const PRESENCE_EVERY: Duration = Duration::from_secs(5);
/// Hosts per presence announcement, so messages stay small.
const PRESENCE_CHUNK: usize = 512;

/// The queue of answers on their way to the relay.
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<(Instant, HostResult)>,
}

impl Outbox {
    pub(crate) fn start(relay: Arc<dyn Relay>, counters: Arc<CampaignCounters>) -> Outbox {
        let (queue, mut receiver) = mpsc::unbounded_channel::<(Instant, HostResult)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(OUTBOX_BATCH);
            while receiver.recv_many(&mut batch, OUTBOX_BATCH).await > 0 {
                let mut delay = Duration::from_millis(100);
                loop {
                    let results: Vec<HostResult> =
                        batch.iter().map(|(_, result)| result.clone()).collect();
                    match relay.send_results(&results).await {
                        Ok(()) => {
                            counters.results_relayed.add(results.len() as u64);
                            break;
                        }
                        Err(error) => {
                            let before = batch.len();
                            batch.retain(|(at, _)| at.elapsed() < OUTBOX_KEEP);
                            let expired = before - batch.len();
                            if expired > 0 {
                                counters.results_dropped.add(expired as u64);
                                tracing::error!(answers = expired, %error, "gave up relaying live-query answers after the relay stayed unreachable");
                            }
                            if batch.is_empty() {
                                break;
                            }
                            tracing::warn!(answers = batch.len(), %error, "relay unreachable; keeping live-query answers to send when it returns");
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_secs(5));
                        }
                    }
                }
                batch.clear();
            }
        });
        Outbox { queue }
    }

    pub(crate) fn send(&self, result: HostResult) {
        // The receiver lives as long as the process.
        let _ = self.queue.send((Instant::now(), result));
    }
}

/// Follows the other nodes' campaign announcements and reconciles with the relay.
pub(crate) fn follow(campaigns: Campaigns, relay: Arc<dyn Relay>) {
    let mut events = relay.events();
    tokio::spawn(async move {
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(RelayEvent::CampaignStarted(id)) => {
                        let campaigns = campaigns.clone();
                        tokio::spawn(async move {
                            if let Err(error) = campaigns.join(id).await {
                                tracing::warn!(campaign = %id, %error, "could not mirror a live query; retrying at the next reconcile");
                            }
                        });
                    }
                    Ok(RelayEvent::CampaignFinished { id, reason }) => {
                        campaigns.finished_elsewhere(id, &reason);
                    }
                    Ok(RelayEvent::Reconnected) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        reconcile_now(&campaigns, relay.as_ref()).await;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = reconcile.tick() => reconcile_now(&campaigns, relay.as_ref()).await,
            }
        }
    });
}

/// Joins what the relay says is running and is not here; finishes what the relay says has
/// finished; announces again what runs here but the relay lost (a Redis restart without
/// persistence), so the other nodes and later answers find it.
async fn reconcile_now(campaigns: &Campaigns, relay: &dyn Relay) {
    let active = match relay.active_campaigns().await {
        Ok(active) => active,
        Err(error) => {
            tracing::debug!(%error, "cannot reconcile live queries with the relay now");
            return;
        }
    };
    let running = campaigns.running();
    for id in active.iter().filter(|id| !running.contains(id)) {
        if let Err(error) = campaigns.join(*id).await {
            tracing::warn!(campaign = %id, %error, "could not mirror a live query");
        }
    }
    for id in running {
        match relay.finished(id).await {
            Ok(Some(reason)) => campaigns.finished_elsewhere(id, &reason),
            Ok(None) if !active.contains(&id) => {
                if let Some(spec) = campaigns.spec_of(id)
                    && spec.deadline_unix_ms > crate::relay::unix_now_ms()
                    && !campaigns.is_finished_here(id).await
                {
                    match relay.announce_campaign(&spec).await {
                        Ok(()) => {
                            tracing::info!(campaign = %id, "announced a running live query again after the relay lost it")
                        }
                        Err(error) => {
                            tracing::debug!(campaign = %id, %error, "could not announce a live query again")
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(%error, "cannot reconcile live queries with the relay now");
                return;
            }
        }
    }
}

/// Applies the other nodes' host announcements and announces this node's check-ins.
pub(crate) fn follow_hosts(hosts: Hosts, relay: Arc<dyn Relay>) {
    let mut events = relay.events();
    let listener = hosts.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(RelayEvent::HostChanged(id)) => {
                    if let Err(error) = listener.reload_host(id).await {
                        tracing::warn!(host = %id, %error, "could not reload a host another node changed");
                    }
                }
                Ok(RelayEvent::HostsSeen(seen)) => listener.seen_elsewhere(&seen),
                Ok(RelayEvent::Changed(crate::relay::Topic::EnrollSecrets))
                | Ok(RelayEvent::Reconnected) => {
                    if let Err(error) = listener.reload_enroll_secrets().await {
                        tracing::warn!(%error, "could not reload the enroll secrets");
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRESENCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let seen = hosts.seen_here_since_announced();
            for chunk in seen.chunks(PRESENCE_CHUNK) {
                if let Err(error) = relay.publish(&RelayEvent::HostsSeen(chunk.to_vec())).await {
                    tracing::debug!(%error, "could not announce check-ins; the next round carries them");
                    hosts.unannounce(chunk);
                }
            }
        }
    });
}
