//! `Effects`: what must follow a change once the store has it, so that the rest of the server
//! (and every other node) sees it: the engine's registry, the agent configs hosts pull, the
//! dynamic-label and policy queries, the relay's announcement, the activity log (and the
//! audit log destination, when one is configured).

use std::sync::Arc;

use flotilla_engine::Hosts;
use flotilla_engine::relay::Topic;
use flotilla_storage::admin::{
    ActivityStore, ConfigStore, LabelStore, PolicyStore, QueryStore, UserId, UserStore,
};
use serde_json::json;

use crate::agent_config::AgentConfigs;
use crate::fleet::error::FleetError;
use crate::logs::sink::{LogKind, LogSink};

/// Shared by every service; cheap to clone (handles only).
#[derive(Clone)]
pub struct Effects {
    /// The engine's registry: a host's team, enroll secrets, label queries, announcements.
    pub(crate) hosts: Hosts,
    pub(crate) agent_configs: Arc<AgentConfigs>,
    /// Agent options, read again on every reload of the agent configs.
    config: Arc<dyn ConfigStore>,
    /// Scheduled queries, read again on every reload of the agent configs.
    queries: Arc<dyn QueryStore>,
    /// Dynamic-label queries, read again when labels change.
    labels: Arc<dyn LabelStore>,
    /// Policies, read again when they change.
    policies: Arc<dyn PolicyStore>,
    activities: Arc<dyn ActivityStore>,
    /// Who an activity's actor is, for the audit log's line.
    users: Arc<dyn UserStore>,
    /// Where the audit log goes, if anywhere (`LogSink::audits`).
    logs: LogSink,
}

/// The admin stores [`Effects`] reads and writes.
pub struct EffectStores {
    pub config: Arc<dyn ConfigStore>,
    pub queries: Arc<dyn QueryStore>,
    pub labels: Arc<dyn LabelStore>,
    pub policies: Arc<dyn PolicyStore>,
    pub activities: Arc<dyn ActivityStore>,
    pub users: Arc<dyn UserStore>,
}

impl Effects {
    pub fn new(
        hosts: Hosts,
        agent_configs: Arc<AgentConfigs>,
        stores: EffectStores,
        logs: LogSink,
    ) -> Effects {
        Effects {
            hosts,
            agent_configs,
            config: stores.config,
            queries: stores.queries,
            labels: stores.labels,
            policies: stores.policies,
            activities: stores.activities,
            users: stores.users,
            logs,
        }
    }

    /// Makes the next config pull of every host see the stored agent options and queries,
    /// and the engine the stored features (the software inventory on or off), here
    /// and (told through the relay) on every other node.
    pub async fn reload_agent_configs(&self) -> Result<(), FleetError> {
        self.reload_agent_configs_here().await?;
        self.hosts.announce_changed(Topic::AgentOptions);
        Ok(())
    }

    /// Reloads the agent configs of this node only: another node announced a change.
    pub async fn reload_agent_configs_here(&self) -> Result<(), FleetError> {
        self.agent_configs
            .reload(self.config.as_ref(), self.queries.as_ref())
            .await?;
        let settings = self.config.app_settings().await?.unwrap_or_default();
        self.hosts
            .set_software_inventory(software_inventory_enabled(&settings));
        Ok(())
    }

    /// Makes the engine pick up a change to enroll secrets (it tells the other nodes).
    pub async fn reload_enroll_secrets(&self) -> Result<(), FleetError> {
        self.hosts.enroll_secrets_changed().await?;
        Ok(())
    }

    /// Hands the dynamic-label queries to the engine, which sends them to hosts as
    /// `fleet_label_query_<id>`. At start (`initial`) hosts keep their own label schedule and
    /// nothing is announced; after a change every host runs the new set at its next check-in,
    /// and the other nodes are told to do the same.
    pub async fn publish_label_queries(&self, initial: bool) -> Result<(), FleetError> {
        self.reload_label_queries(initial).await?;
        if !initial {
            self.hosts.announce_changed(Topic::Labels);
        }
        Ok(())
    }

    /// Hands the dynamic-label queries as stored to the engine, announcing nothing.
    pub async fn reload_label_queries(&self, initial: bool) -> Result<(), FleetError> {
        let queries = self
            .labels
            .dynamic_label_queries()
            .await?
            .into_iter()
            .map(|q| flotilla_engine::labels::LabelQuery::new(q.id.0, &q.query, &q.platform))
            .collect();
        if initial {
            self.hosts.load_label_queries(queries);
        } else {
            self.hosts.set_label_queries(queries);
        }
        Ok(())
    }

    /// Hands the policies to the engine, which sends each host those that apply to it as
    /// `fleet_policy_query_<id>`. At start (`initial`) hosts keep their own policy schedule
    /// and nothing is announced; after a change every host runs its policies at its next
    /// check-in, and the other nodes are told to do the same.
    pub async fn publish_policy_queries(&self, initial: bool) -> Result<(), FleetError> {
        self.reload_policy_queries(initial).await?;
        if !initial {
            self.hosts.announce_changed(Topic::Policies);
        }
        Ok(())
    }

    /// Hands the policies as stored to the engine, announcing nothing.
    pub async fn reload_policy_queries(&self, initial: bool) -> Result<(), FleetError> {
        let queries = self
            .policies
            .all_policies()
            .await?
            .into_iter()
            .map(|p| {
                flotilla_engine::policies::PolicyQuery::new(
                    p.id.0,
                    &p.fields.query,
                    &p.fields.platform,
                    p.team,
                )
            })
            .collect();
        if initial {
            self.hosts.load_policy_queries(queries);
        } else {
            self.hosts.set_policy_queries(queries);
        }
        Ok(())
    }

    /// Adds to the activity log. Best effort: the change it describes has already happened,
    /// so a failure here is logged rather than reported as if the change had failed.
    pub async fn record_activity(
        &self,
        actor: Option<UserId>,
        kind: &str,
        details: serde_json::Value,
        now: i64,
    ) {
        if self.logs.audits() {
            self.audit(actor, kind, &details, now).await;
        }
        if let Err(error) = self
            .activities
            .record_activity(actor, kind, details, now)
            .await
        {
            tracing::warn!(%error, kind, "could not record an activity");
        }
    }

    /// The activity as one line of the audit log, in the activity's JSON form (Fleet's
    /// fields), through the audit destination's spool.
    async fn audit(
        &self,
        actor: Option<UserId>,
        kind: &str,
        details: &serde_json::Value,
        now: i64,
    ) {
        let user = match actor {
            Some(id) => self.users.user(id).await.ok().flatten(),
            None => None,
        };
        let line = json!({
            "created_at": crate::fleet::rfc3339(now),
            "actor_id": actor.map(|a| a.0),
            "actor_full_name": user.as_ref().map(|u| u.name.as_str()),
            "actor_email": user.as_ref().map(|u| u.email.as_str()),
            "type": kind,
            "details": details,
            "fleet_initiated": actor.is_none(),
        });
        let mut buffer = line.to_string().into_bytes();
        buffer.push(b'\n');
        if let Err(error) = self.logs.write(LogKind::Audit, buffer).await {
            tracing::warn!(%error, kind, "could not write an activity to the audit log");
        }
    }
}

/// `features.enable_software_inventory`, on unless the settings turn it off (Fleet's default
/// for new installs).
pub fn software_inventory_enabled(settings: &serde_json::Value) -> bool {
    settings
        .pointer("/features/enable_software_inventory")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(true)
}
