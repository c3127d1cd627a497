//! `Engine`: one node's engine as one value — the host registry, the campaigns, the relay
//! between nodes, and the tasks that relay answers and follow the other nodes.
//!
//! - Built by [`Engine::start`] (the server, at start). With a [`LocalRelay`] it starts no
//!   task of its own; with a shared relay it spawns the answers'
//!   [`Outbox`](crate::outbox::Outbox) and the loops of [`mirror`](crate::mirror), each
//!   subscribed to the relay's events before `start` returns, so nothing announced after it is
//!   missed.
//! - [`Engine::shutdown`] stops those tasks in order (followers first, so no campaign is joined
//!   or host reloaded after the outbox has gone; then presence; then the outbox, whose queued
//!   answers are not sent), then writes every batched host write to the store.
//! - A task that panics ends alone; `shutdown` logs it.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::campaigns::{CampaignConfig, Campaigns};
use crate::config::EngineConfig;
use crate::hosts::Hosts;
use crate::outbox::Outbox;
use crate::relay::{LocalRelay, Relay};
use crate::router::CampaignRouter;
use crate::store::{CampaignStore, HostStore, StoreError};

/// Where the engine keeps its state.
pub struct EngineStores {
    pub hosts: Arc<dyn HostStore>,
    pub campaigns: Arc<dyn CampaignStore>,
}

pub struct Engine {
    hosts: Hosts,
    campaigns: Campaigns,
    /// The relay tasks, in the order [`Engine::shutdown`] stops them; empty on a single node.
    relay_tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Engine {
    /// Loads every enrolled host, builds the campaigns and, when `relay` is shared, starts the
    /// tasks that keep this node in step with the others.
    pub async fn start(
        stores: EngineStores,
        config: EngineConfig,
        campaign_config: CampaignConfig,
        relay: Arc<dyn Relay>,
    ) -> Result<Engine, StoreError> {
        let router = CampaignRouter::new();
        let hosts = Hosts::start_with_relay(
            stores.hosts,
            config,
            Arc::new(router.clone()),
            relay.clone(),
        )
        .await?;
        let campaigns = Campaigns::new(
            router.clone(),
            hosts.clone(),
            stores.campaigns,
            campaign_config,
        );
        let relay_tasks = if relay.is_local() {
            Vec::new()
        } else {
            start_relay_tasks(&hosts, &campaigns, &router, relay)
        };
        Ok(Engine {
            hosts,
            campaigns,
            relay_tasks,
        })
    }

    /// A single node's engine: nothing is relayed.
    pub async fn start_local(
        stores: EngineStores,
        config: EngineConfig,
        campaign_config: CampaignConfig,
    ) -> Result<Engine, StoreError> {
        let relay: Arc<dyn Relay> = Arc::new(LocalRelay::default());
        Engine::start(stores, config, campaign_config, relay).await
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    pub fn campaigns(&self) -> &Campaigns {
        &self.campaigns
    }

    /// Stops the relay tasks in order, then writes every batched host write, however recent.
    /// Call it once requests have stopped coming in.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        for (name, task) in self.relay_tasks {
            task.abort();
            match task.await {
                Err(error) if error.is_panic() => {
                    tracing::error!(task = name, "a relay task had panicked");
                }
                _ => tracing::debug!(task = name, "relay task stopped"),
            }
        }
        self.hosts.flush().await
    }
}

/// Spawns the tasks of a node that shares `relay`, in the order they are to stop.
fn start_relay_tasks(
    hosts: &Hosts,
    campaigns: &Campaigns,
    router: &CampaignRouter,
    relay: Arc<dyn Relay>,
) -> Vec<(&'static str, JoinHandle<()>)> {
    let (outbox, queue) = Outbox::new();
    router.send_through(outbox);
    vec![
        (
            "follow hosts",
            tokio::spawn(crate::mirror::follow_hosts(hosts.clone(), relay.events())),
        ),
        (
            "follow campaigns",
            tokio::spawn(crate::mirror::follow_campaigns(
                campaigns.clone(),
                relay.clone(),
                relay.events(),
            )),
        ),
        (
            "announce presence",
            tokio::spawn(crate::mirror::announce_presence(
                hosts.clone(),
                relay.clone(),
            )),
        ),
        (
            "outbox",
            tokio::spawn(crate::outbox::relay_answers(
                queue,
                relay,
                campaigns.shared_counters(),
            )),
        ),
    ]
}
