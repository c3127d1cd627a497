//! The tasks that keep a node in step with the others when they share a relay. Each is a loop
//! that [`Engine::start`](crate::engine::Engine::start) spawns and
//! [`Engine::shutdown`](crate::engine::Engine::shutdown) stops; none of them holds anything
//! that must be written at the end. (The answers' [`Outbox`](crate::outbox::Outbox) is the
//! fourth such task.)
//!
//! - [`follow_campaigns`] mirrors campaigns other nodes announce, finishes the ones they finished, and
//!   every few seconds (and after a reconnect) reconciles with the relay's own state, so an
//!   announcement missed while disconnected is made up for.
//! - [`follow_hosts`] applies host changes other nodes announce (and after a reconnect compares
//!   the hosts with the store), and [`announce_presence`] announces which hosts checked in
//!   here and which answered their scheduled queries here, so every node knows which hosts
//!   are online and when each last answered.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::campaigns::Campaigns;
use crate::hosts::Hosts;
use crate::relay::{Relay, RelayEvent};

/// How often a node reconciles its campaigns with the relay.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How often a node announces the hosts that checked in with it.
const PRESENCE_EVERY: Duration = Duration::from_secs(5);
/// Hosts per presence announcement, so messages stay small.
const PRESENCE_CHUNK: usize = 512;

/// Follows the other nodes' campaign announcements (`events`, subscribed before the engine
/// serves) and reconciles with the relay.
pub(crate) async fn follow_campaigns(
    campaigns: Campaigns,
    relay: Arc<dyn Relay>,
    mut events: broadcast::Receiver<RelayEvent>,
) {
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
                Ok(RelayEvent::Reconnected) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    reconcile_now(&campaigns, relay.as_ref()).await;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = reconcile.tick() => reconcile_now(&campaigns, relay.as_ref()).await,
        }
    }
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

/// Applies the other nodes' host announcements (`events`, subscribed before the engine serves).
pub(crate) async fn follow_hosts(hosts: Hosts, mut events: broadcast::Receiver<RelayEvent>) {
    loop {
        match events.recv().await {
            Ok(RelayEvent::HostChanged(id)) => {
                if let Err(error) = hosts.reload_host(id).await {
                    tracing::warn!(host = %id, %error, "could not reload a host another node changed");
                }
            }
            Ok(RelayEvent::HostsSeen(seen)) => hosts.seen_elsewhere(&seen),
            Ok(RelayEvent::HostsAnswered(answered)) => hosts.answered_elsewhere(&answered),
            Ok(RelayEvent::Changed(crate::relay::Topic::EnrollSecrets)) => {
                if let Err(error) = hosts.reload_enroll_secrets().await {
                    tracing::warn!(%error, "could not reload the enroll secrets");
                }
            }
            Ok(RelayEvent::Reconnected) | Err(broadcast::error::RecvError::Lagged(_)) => {
                // Announcements may have been missed: what they would have said is in the store.
                if let Err(error) = hosts.reload_enroll_secrets().await {
                    tracing::warn!(%error, "could not reload the enroll secrets");
                }
                match hosts.resync_with_store().await {
                    Ok((0, 0)) => {}
                    Ok((changed, forgotten)) => {
                        tracing::info!(
                            changed,
                            forgotten,
                            "hosts brought in line with the store after missed announcements"
                        )
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not compare the hosts with the store after a reconnect")
                    }
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Announces, every few seconds, the hosts that checked in here since the last announcement.
pub(crate) async fn announce_presence(hosts: Hosts, relay: Arc<dyn Relay>) {
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
        let answered = hosts.answered_here_since_announced();
        for chunk in answered.chunks(PRESENCE_CHUNK) {
            if let Err(error) = relay
                .publish(&RelayEvent::HostsAnswered(chunk.to_vec()))
                .await
            {
                tracing::debug!(%error, "could not announce answers; the next round carries them");
                hosts.unannounce_answers(chunk);
            }
        }
    }
}
