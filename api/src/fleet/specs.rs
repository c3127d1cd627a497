//! Specs: what `fleetctl apply` sends and `fleetctl get` reads — `kind: query`, `label`,
//! `team`, `enroll_secret` and `config` documents — on Fleet's paths and in Fleet's shapes:
//! `POST/GET /spec/queries` (and `/spec/queries/{name}`), `POST/GET /spec/labels` (and
//! `/spec/labels/{name}`), `POST/GET /spec/teams`, `POST /spec/policies`; `/spec/enroll_secret` lives in
//! [`super::teams`] and `PATCH /config` in [`super::config`].
//!
//! Applying is [`crate::service::specs`]'s: an upsert by name, every spec checked before
//! anything is written; `?dry_run=true` stops after the checks.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::LabelMembership;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use crate::service::Viewer;
use crate::service::policies::PolicySpecInput;
use crate::service::settings::ApplyParams;
use crate::service::specs::{LabelSpec, QuerySpec, TeamSpec};
use crate::state::{AppState, SharedState};

#[derive(Deserialize)]
pub struct SpecsBody<T> {
    #[serde(default = "Vec::new")]
    specs: Vec<T>,
}

// ---------------------------------------------------------------------------------------------
// Queries

/// `POST /spec/queries` `{"specs":[…]}` (`?dry_run`): creates or replaces queries by team and
/// name.
pub async fn apply_queries(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<QuerySpec>>,
) -> Result<Response, FleetError> {
    state
        .services
        .specs
        .apply_queries(&viewer, &body.specs, &params)
        .await?;
    Ok(ok(&json!({})))
}

#[derive(Deserialize, Default)]
pub struct TeamIdParam {
    team_id: Option<u64>,
}

async fn team_name_of(state: &AppState, team: Option<TeamId>) -> Result<String, FleetError> {
    Ok(match team {
        Some(team) => state
            .reads
            .teams
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
        .reads
        .queries
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
        .reads
        .queries
        .query_by_name(team, &name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("query {name} not found")))?;
    let spec = QuerySpec::of(&query, team_name_of(&state, team).await?);
    Ok(ok(&json!({ "specs": spec })))
}

// ---------------------------------------------------------------------------------------------
// Labels

/// `POST /spec/labels` `{"specs":[…]}` (`?dry_run`): creates labels, or changes the description
/// and members of existing ones. A label's query, platform and kind cannot change, and
/// builtin labels cannot be changed at all.
pub async fn apply_labels(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<LabelSpec>>,
) -> Result<Response, FleetError> {
    state
        .services
        .specs
        .apply_labels(&viewer, &body.specs, &params)
        .await?;
    Ok(ok(&json!({})))
}

async fn label_spec(
    state: &AppState,
    label: &flotilla_storage::admin::Label,
) -> Result<LabelSpec, FleetError> {
    let hosts = if label.membership == LabelMembership::Manual {
        let ids = state.reads.labels.manual_label_hosts(label.id).await?;
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
    for label in state.reads.labels.labels(&viewer.host_scope()).await? {
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
        .reads
        .labels
        .label_by_name(&name)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("label {name} not found")))?;
    Ok(ok(&json!({ "specs": label_spec(&state, &label).await? })))
}

// ---------------------------------------------------------------------------------------------
// Teams

/// `POST /spec/policies` `{"specs":[…]}` (`?dry_run`): creates or replaces policies by team
/// name (empty: global) and policy name. Every spec is checked before anything is stored.
pub async fn apply_policies(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecsBody<PolicySpecInput>>,
) -> Result<Response, FleetError> {
    state
        .services
        .policies
        .apply_specs(&viewer, body.specs, params.dry_run)
        .await?;
    Ok(ok(&json!({})))
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
    let ids = state
        .services
        .specs
        .apply_teams(&viewer, body.specs, &params)
        .await?;
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
        .reads.teams
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
