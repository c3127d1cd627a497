//! The admin operations, apart from HTTP: one file per area, each a service holding the store
//! area(s) it needs and the engine's handles ([`Effects`]).
//!
//! A service takes the [`Viewer`] and checks its roles itself, so the REST API, the results
//! websocket and any later caller (a web console) get the same permissions and the same
//! sequence of effects. An operation with several effects is written once, here: the store
//! first, then the engine's registry (`Hosts::remove`, `set_team`, enroll secrets), then the
//! agent configs hosts pull and the relay's announcement, then the activity log.
//!
//! - [`viewer`] — `Role` and `Viewer`: who asks, and what their roles allow.
//! - [`effects`] — `Effects`: what follows a stored change.
//! - [`teams`] — teams and enroll secrets; [`settings`] — the settings document and agent
//!   options; [`hosts`] — deleting and transferring hosts; [`labels`], [`queries`],
//!   [`policies`];
//!   [`specs`] — applying `fleetctl` specs; [`sessions`] — setup and login; [`live`] —
//!   starting a live query; [`users`] — who may see, create, change and delete whom;
//!   [`password`] (Fleet's rules, argon2id) and [`ratelimit`]
//!   (`LoginLimiter`) are what sessions and users lean on.

pub mod device;
pub mod effects;
pub mod hosts;
pub mod labels;
pub mod live;
pub mod password;
pub mod policies;
pub mod queries;
pub mod ratelimit;
pub mod sessions;
pub mod settings;
pub mod software;
pub mod specs;
pub mod teams;
pub mod users;
pub mod viewer;

use std::sync::Arc;

use flotilla_engine::{Campaigns, Hosts};
use flotilla_storage::admin::AdminStore;

use crate::agent_config::AgentConfigs;
use crate::agent_config::reports::Reports;
use crate::service::ratelimit::LoginLimiter;

pub use effects::Effects;
pub use viewer::{Role, Viewer};

/// Every service, built once by the server; each holds only the store areas it uses.
pub struct Services {
    pub effects: Effects,
    pub teams: teams::TeamService,
    pub settings: settings::SettingsService,
    pub hosts: hosts::HostService,
    pub labels: labels::LabelService,
    pub queries: queries::QueryService,
    pub policies: policies::PolicyService,
    pub specs: specs::SpecService,
    pub sessions: sessions::SessionService,
    pub live: live::LiveQueryService,
    pub users: users::UserService,
}

/// What the services share besides the store and the engine.
pub struct ServiceParts {
    pub agent_configs: Arc<AgentConfigs>,
    pub reports: Arc<Reports>,
    pub login_limiter: LoginLimiter,
    pub channels: crate::updates::UpdateChannels,
    /// The log destinations; activities go to its audit log when one is configured.
    pub logs: crate::logs::sink::LogSink,
}

impl Services {
    /// Each service is given the areas of `admin` it needs (upcast from the one store).
    pub fn new(
        admin: Arc<dyn AdminStore>,
        hosts: Hosts,
        campaigns: Campaigns,
        parts: ServiceParts,
    ) -> Services {
        let ServiceParts {
            agent_configs,
            reports,
            login_limiter,
            channels,
            logs,
        } = parts;
        let effects = Effects::new(
            hosts.clone(),
            agent_configs,
            effects::EffectStores {
                config: admin.clone(),
                queries: admin.clone(),
                labels: admin.clone(),
                policies: admin.clone(),
                activities: admin.clone(),
                users: admin.clone(),
            },
            logs,
        );
        let policies = policies::PolicyService::new(admin.clone(), admin.clone(), effects.clone());
        let settings = settings::SettingsService::new(
            admin.clone(),
            admin.clone(),
            effects.clone(),
            channels.clone(),
        );
        let labels = labels::LabelService::new(admin.clone(), admin.clone(), effects.clone());
        let queries = queries::QueryService::new(
            admin.clone(),
            admin.clone(),
            reports.clone(),
            effects.clone(),
        );
        Services {
            teams: teams::TeamService::new(admin.clone(), settings.clone(), effects.clone()),
            hosts: hosts::HostService::new(admin.clone(), admin.clone(), effects.clone()),
            specs: specs::SpecService::new(
                admin.clone(),
                admin.clone(),
                admin.clone(),
                admin.clone(),
                labels.clone(),
                reports,
                effects.clone(),
            )
            .with_update_channels(channels),
            sessions: sessions::SessionService::new(admin.clone(), login_limiter, effects.clone()),
            users: users::UserService::new(admin.clone(), effects.clone()),
            live: live::LiveQueryService::new(
                admin.clone(),
                admin.clone(),
                admin.clone(),
                hosts,
                campaigns,
                effects.clone(),
            ),
            settings,
            labels,
            queries,
            policies,
            effects,
        }
    }
}

/// The name of `team` as the activity log records it (`None` for global objects or a team
/// that is gone).
pub(crate) async fn team_name(
    teams: &dyn flotilla_storage::admin::TeamStore,
    team: Option<flotilla_engine::TeamId>,
) -> Result<Option<String>, crate::fleet::error::FleetError> {
    Ok(match team {
        Some(team) => teams.team(team).await?.map(|t| t.name),
        None => None,
    })
}
