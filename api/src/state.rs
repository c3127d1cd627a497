//! `AppState`: what every handler shares, built once by the server.

use std::sync::Arc;

use flotilla_engine::store::HostStore;
use flotilla_engine::{Campaigns, Hosts};
use flotilla_storage::admin::{
    ActivityStore, AdminStore, ConfigStore, HostDirectory, LabelStore, PolicyStore, QueryStore,
    SoftwareStore, TeamStore, UserStore,
};

use crate::agent_config::configs::AgentConfigs;
use crate::agent_config::reports::Reports;
use crate::logs::sink::LogSink;
use crate::osquery::carves::Carves;
use crate::service::Services;

/// Request-body limits per osquery endpoint, in bytes (after gzip inflation).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// enroll, config, distributed/read, carve/begin: small bodies.
    pub default: usize,
    pub distributed_write: usize,
    pub log: usize,
    pub carve_block: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            default: 1 << 20,
            distributed_write: 64 << 20,
            log: 64 << 20,
            carve_block: 16 << 20,
        }
    }
}

pub struct AppState {
    pub hosts: Hosts,
    pub campaigns: Campaigns,
    pub store: Arc<dyn HostStore>,
    /// What the admin API's handlers read, one store area each.
    pub reads: Reads,
    /// The admin operations (every change, with its effects and the role checks).
    pub services: Services,
    pub agent_configs: Arc<AgentConfigs>,
    pub logs: LogSink,
    /// Query reports: the latest snapshot rows per host of each scheduled query.
    pub reports: Arc<Reports>,
    pub carves: Arc<Carves>,
    pub limits: BodyLimits,
    /// How long the synchronous live-query endpoints wait for answers.
    pub live_query_sync_timeout: std::time::Duration,
    /// How long one results-websocket message may take to leave before the session is ended.
    pub websocket_send_timeout: std::time::Duration,
    /// `/metrics`: what every request records into and what a scrape reads.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `/healthz` checks and `/readyz` state.
    pub health: Arc<crate::health::Health>,
    /// Fleet Desktop's routes: the bad-token ban and the settings they show.
    pub device: crate::service::device::DeviceState,
    /// The software jobs (counts, vulnerability match) and the vulnerability feed.
    pub software: Arc<crate::service::software::SoftwareJobs>,
    /// The agents' TUF repository, when `--tuf-repo` serves one.
    pub updates: Option<Arc<crate::updates::UpdateServer>>,
    /// Opt-in usage statistics: what they would send, and the sender.
    pub usage: Arc<crate::usage::UsageStatistics>,
}

pub type SharedState = Arc<AppState>;

/// The admin API's reads, one store area each, so a handler that reads names the one area it
/// reads; every change goes through [`Services`].
#[derive(Clone)]
pub struct Reads {
    pub users: Arc<dyn UserStore>,
    pub hosts: Arc<dyn HostDirectory>,
    pub labels: Arc<dyn LabelStore>,
    pub teams: Arc<dyn TeamStore>,
    pub queries: Arc<dyn QueryStore>,
    pub policies: Arc<dyn PolicyStore>,
    pub config: Arc<dyn ConfigStore>,
    pub activities: Arc<dyn ActivityStore>,
    pub software: Arc<dyn SoftwareStore>,
}

impl Reads {
    /// Every area of one store.
    pub fn over(store: Arc<dyn AdminStore>) -> Reads {
        Reads {
            users: store.clone(),
            hosts: store.clone(),
            labels: store.clone(),
            teams: store.clone(),
            queries: store.clone(),
            policies: store.clone(),
            config: store.clone(),
            activities: store.clone(),
            software: store,
        }
    }
}
