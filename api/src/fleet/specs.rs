//! Specs: what `fleetctl apply` sends and `fleetctl get` reads — `kind: query`, `label`,
//! `team`, `enroll_secret` and `config` documents — on Fleet's paths and in Fleet's shapes:
//! `POST/GET /spec/queries` (and `/spec/queries/{name}`), `POST/GET /spec/labels` (and
//! `/spec/labels/{name}`), `POST/GET /spec/teams`; `/spec/enroll_secret` lives in
//! [`super::teams`] and `PATCH /config` in [`super::config`].
//!
//! Applying is an upsert by name. Every spec of a request is checked before anything is
//! written, so a bad one leaves everything as it was; `?dry_run=true` stops after the checks.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{
    LabelChanges, LabelMembership, LabelType, NewLabel, QueryFields, SavedQuery, Team,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::Viewer;
use super::config::{ApplyParams, check_agent_options};
use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::teams::SecretBody;
use crate::state::{AppState, SharedState};

#[derive(Deserialize)]
pub struct SpecsBody<T> {
    #[serde(default = "Vec::new")]
    specs: Vec<T>,
}

async fn team_by_name(state: &AppState, name: &str) -> Result<Option<Team>, FleetError> {
    Ok(state
        .admin
        .teams()
        .await?
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(name)))
}

/// The team a spec names (`""`: global); 422 if there is none of that name.
async fn spec_team(state: &AppState, name: &str) -> Result<Option<Team>, FleetError> {
    if name.trim().is_empty() {
        return Ok(None);
    }
    team_by_name(state, name.trim())
        .await?
        .map(Some)
        .ok_or_else(|| FleetError::validation("team", format!("team \"{name}\" does not exist")))
}

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
    fn of(query: &SavedQuery, team: String) -> QuerySpec {
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

/// `POST /spec/queries` `{"specs":[…]}` (`?dry_run`): creates or replaces queries by team and
/// name.
pub async fn apply_queries(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<QuerySpec>>,
) -> Result<Response, FleetError> {
    let mut checked = Vec::with_capacity(body.specs.len());
    for spec in &body.specs {
        let team = spec_team(&state, &spec.team).await?.map(|t| t.id);
        Viewer::require(viewer.can_write(team))?;
        let fields = spec.fields();
        super::queries::check(&fields)?;
        checked.push((team, fields));
    }
    if params.dry_run {
        return Ok(ok(&json!({})));
    }
    let now = flotilla_engine::unix_now();
    let mut stale_reports = Vec::new();
    for (team, fields) in checked {
        match state.admin.query_by_name(team, &fields.name).await? {
            Some(existing) => {
                let stale = existing.fields.query != fields.query
                    || fields.discard_data
                    || fields.logging != "snapshot";
                let updated = state.admin.update_query(existing.id, &fields, now).await?;
                if stale {
                    stale_reports.push(updated.id);
                }
            }
            None => {
                state
                    .admin
                    .create_query(team, &fields, Some(viewer.user.id), now)
                    .await?;
            }
        }
    }
    for query in stale_reports {
        state.reports.forget(query);
        state.admin.delete_report(query).await?;
    }
    super::config::reload_agent_configs(&state).await?;
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "applied_spec_saved_query",
        json!({ "specs": body.specs }),
        now,
    )
    .await;
    Ok(ok(&json!({})))
}

#[derive(Deserialize, Default)]
pub struct TeamIdParam {
    team_id: Option<u64>,
}

async fn team_name_of(state: &AppState, team: Option<TeamId>) -> Result<String, FleetError> {
    Ok(match team {
        Some(team) => state
            .admin
            .team(team)
            .await?
            .map(|t| t.name)
            .unwrap_or_default(),
        None => String::new(),
    })
}

/// `GET /spec/queries` (`team_id`): the global queries, or a team's, as specs.
pub async fn get_queries(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<TeamIdParam>,
) -> Result<Response, FleetError> {
    let team = params.team_id.filter(|&t| t != 0).map(TeamId);
    Viewer::require(match team {
        None => viewer.has_any_role(),
        Some(_) => viewer.can_read(team),
    })?;
    let team_name = team_name_of(&state, team).await?;
    let specs: Vec<QuerySpec> = state
        .admin
        .queries(team, None)
        .await?
        .iter()
        .map(|q| QuerySpec::of(q, team_name.clone()))
        .collect();
    Ok(ok(&json!({ "specs": specs })))
}

/// `GET /spec/queries/{name}` (`team_id`).
pub async fn get_query(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(name): FleetPath<String>,
    FleetQuery(params): FleetQuery<TeamIdParam>,
) -> Result<Response, FleetError> {
    let team = params.team_id.filter(|&t| t != 0).map(TeamId);
    Viewer::require(match team {
        None => viewer.has_any_role(),
        Some(_) => viewer.can_read(team),
    })?;
    let query = state
        .admin
        .query_by_name(team, &name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("query {name} not found")))?;
    let spec = QuerySpec::of(&query, team_name_of(&state, team).await?);
    Ok(ok(&json!({ "specs": spec })))
}

// ---------------------------------------------------------------------------------------------
// Labels

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct LabelSpec {
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    platform: String,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    label_type: Option<&'static str>,
    /// `dynamic` (default) or `manual`.
    #[serde(default)]
    label_membership_type: String,
    /// Hostnames (or other identifiers) of a manual label's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hosts: Option<Vec<String>>,
}

/// `POST /spec/labels` `{"specs":[…]}` (`?dry_run`): creates labels, or changes the description
/// and members of existing ones. A label's query, platform and kind cannot change, and
/// builtin labels cannot be changed at all.
pub async fn apply_labels(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<LabelSpec>>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    enum Plan {
        Create(NewLabel),
        Update(flotilla_storage::admin::LabelId, LabelChanges),
    }
    let mut plans = Vec::with_capacity(body.specs.len());
    for spec in &body.specs {
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
        if !super::labels::PLATFORMS.contains(&spec.platform.as_str()) {
            return Err(FleetError::validation(
                "platform",
                format!("use one of: {}", super::labels::PLATFORMS[1..].join(", ")),
            ));
        }
        if membership == LabelMembership::Dynamic && spec.query.trim().is_empty() {
            return Err(FleetError::validation(
                "query",
                format!("dynamic label \"{name}\" needs a query"),
            ));
        }
        let hosts = match (membership, &spec.hosts) {
            (LabelMembership::Manual, Some(hosts)) => {
                Some(super::labels::resolve_hosts(&state, hosts).await?)
            }
            (LabelMembership::Manual, None) => Some(Vec::new()),
            (LabelMembership::Dynamic, _) => None,
        };
        match state.admin.label_by_name(name).await? {
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
                plans.push(Plan::Update(
                    existing.id,
                    LabelChanges {
                        name: None,
                        description: Some(spec.description.clone()),
                        hosts,
                    },
                ));
            }
            None => plans.push(Plan::Create(NewLabel {
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
    if params.dry_run {
        return Ok(ok(&json!({})));
    }
    let now = flotilla_engine::unix_now();
    let mut dynamic_created = false;
    for plan in plans {
        match plan {
            Plan::Create(new) => {
                dynamic_created |= new.membership == LabelMembership::Dynamic;
                state.admin.create_label(&new, now).await?;
            }
            Plan::Update(id, changes) => {
                state.admin.update_label(id, &changes, now).await?;
            }
        }
    }
    if dynamic_created {
        super::labels::publish_label_queries(&state, false).await?;
    }
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "applied_spec_label",
        json!({ "specs": body.specs }),
        now,
    )
    .await;
    Ok(ok(&json!({})))
}

async fn label_spec(
    state: &AppState,
    label: &flotilla_storage::admin::Label,
) -> Result<LabelSpec, FleetError> {
    let hosts = if label.membership == LabelMembership::Manual {
        let ids = state.admin.manual_label_hosts(label.id).await?;
        Some(
            ids.into_iter()
                .filter_map(|id| state.hosts.record(id))
                .map(|(record, _)| record.hostname.to_string())
                .collect(),
        )
    } else {
        None
    };
    Ok(LabelSpec {
        id: Some(label.id.0),
        name: label.name.clone(),
        description: label.description.clone(),
        query: label.query.clone(),
        platform: label.platform.clone(),
        label_type: Some(label.label_type.as_str()),
        label_membership_type: label.membership.as_str().to_owned(),
        hosts,
    })
}

/// `GET /spec/labels`: every label as a spec.
pub async fn get_labels(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let mut specs = Vec::new();
    for label in state.admin.labels(&viewer.host_scope()).await? {
        specs.push(label_spec(&state, &label).await?);
    }
    Ok(ok(&json!({ "specs": specs })))
}

/// `GET /spec/labels/{name}`.
pub async fn get_label(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(name): FleetPath<String>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let label = state
        .admin
        .label_by_name(&name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("label {name} not found")))?;
    Ok(ok(&json!({ "specs": label_spec(&state, &label).await? })))
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

/// `POST /spec/teams` `{"specs":[…]}` (`?force`, `?dry_run`): creates teams that do not exist
/// (with a generated enroll secret unless secrets are given), replaces agent options and
/// secrets where given. Answers `{"team_ids_by_name": {…}}`.
pub async fn apply_teams(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<TeamSpec>>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let mut checked = Vec::with_capacity(body.specs.len());
    for spec in body.specs {
        let name = spec.name.trim().to_owned();
        if name.is_empty() {
            return Err(FleetError::validation("name", "cannot be empty"));
        }
        if let Some(options) = spec.agent_options.as_ref().filter(|o| !o.is_null()) {
            check_agent_options(options, params.force)?;
        }
        let secrets = spec
            .secrets
            .map(super::teams::checked_secrets)
            .transpose()?;
        checked.push((name, spec.agent_options, secrets));
    }
    let mut ids = BTreeMap::new();
    if params.dry_run {
        for (name, _, _) in &checked {
            let id = team_by_name(&state, name).await?.map(|t| t.id.0);
            ids.insert(name.clone(), id);
        }
        return Ok(ok(&json!({ "team_ids_by_name": ids })));
    }
    let now = flotilla_engine::unix_now();
    let mut options_changed = false;
    for (name, agent_options, secrets) in checked {
        let team = match team_by_name(&state, &name).await? {
            Some(team) => team,
            None => {
                let first = secrets
                    .as_ref()
                    .and_then(|s| s.first().cloned())
                    .unwrap_or_else(super::teams::generate_secret);
                let team = state.admin.create_team(&name, "", &first, now).await?;
                super::record_activity(
                    &state,
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
            state
                .admin
                .set_agent_options(Some(team.id), &options, now)
                .await?;
            options_changed = true;
        }
        if let Some(secrets) = secrets {
            state
                .admin
                .replace_enroll_secrets(Some(team.id), &secrets, now)
                .await?;
        }
        ids.insert(name, Some(team.id.0));
    }
    super::teams::reload_secrets(&state).await?;
    if options_changed {
        super::config::reload_agent_configs(&state).await?;
    }
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "applied_spec_team",
        json!({ "teams": ids.keys().collect::<Vec<_>>() }),
        now,
    )
    .await;
    Ok(ok(&json!({ "team_ids_by_name": ids })))
}

/// `GET /spec/teams`: the teams the viewer may manage, as specs (name, agent options,
/// enroll secrets).
pub async fn get_teams(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    let inputs = state.agent_configs.inputs();
    let specs: Vec<Value> = state
        .admin
        .teams()
        .await?
        .iter()
        .filter(|t| viewer.can_write(Some(t.id)))
        .map(|t| {
            json!({
                "name": t.name,
                "agent_options": inputs.team_options.get(&t.id),
                "secrets": t.secrets.iter().map(|s| json!({"secret": s.secret})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(ok(&json!({ "specs": specs })))
}
