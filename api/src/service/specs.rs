//! Specs: what `fleetctl apply` sends — `kind: query`, `label` and `team` documents — applied
//! as upserts by name. Every spec of a request is checked before anything is written, so a bad
//! one leaves everything as it was; a dry run stops after the checks. (`kind: enroll_secret`
//! and `kind: config` go to [`super::teams`] and [`super::settings`].)

use std::collections::BTreeMap;
use std::sync::Arc;

use flotilla_storage::admin::{
    ConfigStore, LabelChanges, LabelId, LabelMembership, LabelStore, LabelType, NewLabel,
    QueryFields, QueryStore, SavedQuery, Team, TeamStore,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::labels::{LabelService, check_platform};
use super::settings::{ApplyParams, check_agent_options};
use super::teams::{SecretBody, checked_secrets, generate_secret};
use super::{Effects, Viewer};
use crate::agent_config::reports::Reports;
use crate::fleet::error::FleetError;

// ---------------------------------------------------------------------------------------------
// Queries

/// A saved query as a spec. Omitted fields take their defaults when applied.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct QuerySpec {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    query: String,
    /// The team's name; empty for a global query.
    #[serde(default)]
    team: String,
    #[serde(default)]
    interval: u32,
    #[serde(default)]
    observer_can_run: bool,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    min_osquery_version: String,
    #[serde(default)]
    automations_enabled: bool,
    #[serde(default)]
    logging: String,
    #[serde(default)]
    discard_data: bool,
}

impl QuerySpec {
    pub fn of(query: &SavedQuery, team: String) -> QuerySpec {
        let f = &query.fields;
        QuerySpec {
            name: f.name.clone(),
            description: f.description.clone(),
            query: f.query.clone(),
            team,
            interval: f.interval,
            observer_can_run: f.observer_can_run,
            platform: f.platform.clone(),
            min_osquery_version: f.min_osquery_version.clone(),
            automations_enabled: f.automations_enabled,
            logging: f.logging.clone(),
            discard_data: f.discard_data,
        }
    }

    fn fields(&self) -> QueryFields {
        QueryFields {
            name: self.name.trim().to_owned(),
            description: self.description.clone(),
            query: self.query.clone(),
            interval: self.interval,
            platform: self.platform.clone(),
            min_osquery_version: self.min_osquery_version.clone(),
            automations_enabled: self.automations_enabled,
            logging: if self.logging.is_empty() {
                "snapshot".into()
            } else {
                self.logging.clone()
            },
            observer_can_run: self.observer_can_run,
            discard_data: self.discard_data,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Labels

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct LabelSpec {
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub label_type: Option<&'static str>,
    /// `dynamic` (default) or `manual`.
    #[serde(default)]
    pub label_membership_type: String,
    /// Hostnames (or other identifiers) of a manual label's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// Teams

#[derive(Deserialize)]
pub struct TeamSpec {
    #[serde(default)]
    name: String,
    /// Present: replaces the team's agent options (`null`: the global ones apply).
    #[serde(default, deserialize_with = "present")]
    agent_options: Option<Value>,
    /// Present: replaces the team's enroll secrets.
    #[serde(default)]
    secrets: Option<Vec<SecretBody>>,
    /// Accepted and not kept (Fleet Premium settings this server does not act on).
    #[serde(flatten)]
    _other: BTreeMap<String, Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// What applying one label spec does.
enum LabelPlan {
    Create(NewLabel),
    Update(LabelId, LabelChanges),
}

#[derive(Clone)]
pub struct SpecService {
    teams: Arc<dyn TeamStore>,
    queries: Arc<dyn QueryStore>,
    labels: Arc<dyn LabelStore>,
    /// A team spec's agent options.
    config: Arc<dyn ConfigStore>,
    /// A manual label's members are named by identifier.
    label_service: LabelService,
    reports: Arc<Reports>,
    effects: Effects,
    /// A team spec's `update_channels` must name channels the update repository has.
    channels: crate::updates::UpdateChannels,
}

impl SpecService {
    pub fn new(
        teams: Arc<dyn TeamStore>,
        queries: Arc<dyn QueryStore>,
        labels: Arc<dyn LabelStore>,
        config: Arc<dyn ConfigStore>,
        label_service: LabelService,
        reports: Arc<Reports>,
        effects: Effects,
    ) -> SpecService {
        SpecService {
            teams,
            queries,
            labels,
            config,
            label_service,
            reports,
            effects,
            channels: Default::default(),
        }
    }

    /// Team specs' `update_channels` are checked against the served update repository.
    pub fn with_update_channels(mut self, channels: crate::updates::UpdateChannels) -> Self {
        self.channels = channels;
        self
    }

    pub async fn team_by_name(&self, name: &str) -> Result<Option<Team>, FleetError> {
        Ok(self
            .teams
            .teams()
            .await?
            .into_iter()
            .find(|t| t.name.eq_ignore_ascii_case(name)))
    }

    /// The team a spec names (`""`: global); 422 if there is none of that name.
    async fn spec_team(&self, name: &str) -> Result<Option<Team>, FleetError> {
        if name.trim().is_empty() {
            return Ok(None);
        }
        self.team_by_name(name.trim())
            .await?
            .map(Some)
            .ok_or_else(|| {
                FleetError::validation("team", format!("team \"{name}\" does not exist"))
            })
    }

    /// `POST /spec/queries` `{"specs":[…]}` (`?dry_run`): creates or replaces queries by team and
    /// name.
    pub async fn apply_queries(
        &self,
        viewer: &Viewer,
        specs: &[QuerySpec],
        params: &ApplyParams,
    ) -> Result<(), FleetError> {
        let mut checked = Vec::with_capacity(specs.len());
        for spec in specs {
            let team = self.spec_team(&spec.team).await?.map(|t| t.id);
            Viewer::require(viewer.can_write(team))?;
            let fields = spec.fields();
            super::queries::check(&fields)?;
            checked.push((team, fields));
        }
        if params.dry_run {
            return Ok(());
        }
        let now = flotilla_engine::unix_now();
        let mut stale_reports = Vec::new();
        for (team, fields) in checked {
            match self.queries.query_by_name(team, &fields.name).await? {
                Some(existing) => {
                    let stale = existing.fields.query != fields.query
                        || fields.discard_data
                        || fields.logging != "snapshot";
                    let updated = self.queries.update_query(existing.id, &fields, now).await?;
                    if stale {
                        stale_reports.push(updated.id);
                    }
                }
                None => {
                    self.queries
                        .create_query(team, &fields, Some(viewer.user.id), now)
                        .await?;
                }
            }
        }
        for query in stale_reports {
            self.reports.forget(query);
            self.queries.delete_report(query).await?;
        }
        self.effects.reload_agent_configs().await?;
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "applied_spec_saved_query",
                json!({ "specs": specs }),
                now,
            )
            .await;
        Ok(())
    }

    /// `POST /spec/labels` `{"specs":[…]}` (`?dry_run`): creates labels, or changes the description
    /// and members of existing ones. A label's query, platform and kind cannot change, and
    /// builtin labels cannot be changed at all.
    pub async fn apply_labels(
        &self,
        viewer: &Viewer,
        specs: &[LabelSpec],
        params: &ApplyParams,
    ) -> Result<(), FleetError> {
        Viewer::require(viewer.can_write(None))?;
        let mut plans = Vec::with_capacity(specs.len());
        for spec in specs {
            plans.push(self.plan_label(spec).await?);
        }
        if params.dry_run {
            return Ok(());
        }
        let now = flotilla_engine::unix_now();
        let mut dynamic_created = false;
        for plan in plans {
            match plan {
                LabelPlan::Create(new) => {
                    dynamic_created |= new.membership == LabelMembership::Dynamic;
                    self.labels.create_label(&new, now).await?;
                }
                LabelPlan::Update(id, changes) => {
                    self.labels.update_label(id, &changes, now).await?;
                }
            }
        }
        if dynamic_created {
            self.effects.publish_label_queries(false).await?;
        }
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "applied_spec_label",
                json!({ "specs": specs }),
                now,
            )
            .await;
        Ok(())
    }

    /// What applying one label spec will do, after every check.
    async fn plan_label(&self, spec: &LabelSpec) -> Result<LabelPlan, FleetError> {
        let name = spec.name.trim();
        if name.is_empty() {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        let membership = match spec.label_membership_type.as_str() {
            "" | "dynamic" => LabelMembership::Dynamic,
            "manual" => LabelMembership::Manual,
            other => {
                return Err(FleetError::validation(
                    "label_membership_type",
                    format!("`{other}` is not a label membership type; use dynamic or manual"),
                ));
            }
        };
        check_platform(&spec.platform)?;
        if membership == LabelMembership::Dynamic && spec.query.trim().is_empty() {
            return Err(FleetError::validation(
                "query",
                format!("dynamic label \"{name}\" needs a query"),
            ));
        }
        let hosts = match (membership, &spec.hosts) {
            (LabelMembership::Manual, Some(hosts)) => {
                Some(self.label_service.resolve_hosts(hosts).await?)
            }
            (LabelMembership::Manual, None) => Some(Vec::new()),
            (LabelMembership::Dynamic, _) => None,
        };
        match self.labels.label_by_name(name).await? {
            Some(existing) => {
                if existing.label_type == LabelType::Builtin {
                    return Err(FleetError::validation(
                        "name",
                        format!("cannot modify or add built-in label \"{name}\""),
                    ));
                }
                let query = if membership == LabelMembership::Manual {
                    ""
                } else {
                    spec.query.as_str()
                };
                if existing.membership != membership
                    || existing.query.trim() != query.trim()
                    || existing.platform != spec.platform
                {
                    return Err(FleetError::validation(
                        "query",
                        format!(
                            "label \"{name}\" exists with another query, platform or membership \
                             type; these cannot change (delete the label and apply it again)"
                        ),
                    ));
                }
                Ok(LabelPlan::Update(
                    existing.id,
                    LabelChanges {
                        name: None,
                        description: Some(spec.description.clone()),
                        hosts,
                    },
                ))
            }
            None => Ok(LabelPlan::Create(NewLabel {
                name: name.to_owned(),
                description: spec.description.clone(),
                query: if membership == LabelMembership::Manual {
                    String::new()
                } else {
                    spec.query.clone()
                },
                platform: spec.platform.clone(),
                membership,
                hosts: hosts.unwrap_or_default(),
            })),
        }
    }

    /// `POST /spec/teams` `{"specs":[…]}` (`?force`, `?dry_run`): creates teams that do not exist
    /// (with a generated enroll secret unless secrets are given), replaces agent options and
    /// secrets where given. Answers `{"team_ids_by_name": {…}}`.
    pub async fn apply_teams(
        &self,
        viewer: &Viewer,
        specs: Vec<TeamSpec>,
        params: &ApplyParams,
    ) -> Result<BTreeMap<String, Option<u64>>, FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let mut checked = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name.trim().to_owned();
            if name.is_empty() {
                return Err(FleetError::validation("name", "cannot be empty"));
            }
            if let Some(options) = spec.agent_options.as_ref().filter(|o| !o.is_null()) {
                check_agent_options(options, params.force, &self.channels)?;
            }
            let secrets = spec
                .secrets
                .map(|secrets| checked_secrets(SecretBody::texts(secrets)))
                .transpose()?;
            checked.push((name, spec.agent_options, secrets));
        }
        let mut ids = BTreeMap::new();
        if params.dry_run {
            for (name, _, _) in &checked {
                let id = self.team_by_name(name).await?.map(|t| t.id.0);
                ids.insert(name.clone(), id);
            }
            return Ok(ids);
        }
        let now = flotilla_engine::unix_now();
        let mut options_changed = false;
        for (name, agent_options, secrets) in checked {
            let team = match self.team_by_name(&name).await? {
                Some(team) => team,
                None => {
                    let first = secrets
                        .as_ref()
                        .and_then(|s| s.first().cloned())
                        .unwrap_or_else(generate_secret);
                    let team = self.teams.create_team(&name, "", &first, now).await?;
                    self.effects
                        .record_activity(
                            Some(viewer.user.id),
                            "created_team",
                            json!({ "team_id": team.id.0, "team_name": team.name }),
                            now,
                        )
                        .await;
                    team
                }
            };
            if let Some(options) = agent_options {
                self.config
                    .set_agent_options(Some(team.id), &options, now)
                    .await?;
                options_changed = true;
            }
            if let Some(secrets) = secrets {
                self.teams
                    .replace_enroll_secrets(Some(team.id), &secrets, now)
                    .await?;
            }
            ids.insert(name, Some(team.id.0));
        }
        self.effects.reload_enroll_secrets().await?;
        if options_changed {
            self.effects.reload_agent_configs().await?;
        }
        self.effects
            .record_activity(
                Some(viewer.user.id),
                "applied_spec_team",
                json!({ "teams": ids.keys().collect::<Vec<_>>() }),
                now,
            )
            .await;
        Ok(ids)
    }
}
