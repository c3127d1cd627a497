//! Policies: `/global/policies` and `/teams/{id}/policies` (list, create, get, modify, delete
//! many, count), and the policy objects `GET /hosts/{id}` shows. Who may read and write them,
//! and what a change does, is [`crate::service::policies`]'s.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{HostPolicy, Policy, PolicyFields, PolicyId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, ok};
use super::rfc3339;
use crate::service::Viewer;
use crate::state::SharedState;

/// Fleet's policy object.
#[derive(Serialize)]
pub struct PolicyJson {
    id: u64,
    name: String,
    query: String,
    description: String,
    critical: bool,
    resolution: String,
    platform: String,
    team_id: Option<u64>,
    author_id: Option<u64>,
    author_name: String,
    author_email: String,
    created_at: String,
    updated_at: String,
    passing_host_count: u64,
    failing_host_count: u64,
    /// When the newest counted answer arrived; `null` before any.
    host_count_updated_at: Option<String>,
}

impl From<&Policy> for PolicyJson {
    fn from(p: &Policy) -> Self {
        PolicyJson {
            id: p.id.0,
            name: p.fields.name.clone(),
            query: p.fields.query.clone(),
            description: p.fields.description.clone(),
            critical: p.fields.critical,
            resolution: p.fields.resolution.clone(),
            platform: p.fields.platform.clone(),
            team_id: p.team.map(|t| t.0),
            author_id: p.author.map(|a| a.0),
            author_name: p.author_name.clone(),
            author_email: p.author_email.clone(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
            passing_host_count: p.passing_host_count,
            failing_host_count: p.failing_host_count,
            host_count_updated_at: p.counts_updated_at.map(rfc3339),
        }
    }
}

/// A policy as one host's detail shows it, with that host's answer.
#[derive(Serialize)]
pub struct HostPolicyJson {
    id: u64,
    name: String,
    query: String,
    description: String,
    critical: bool,
    resolution: String,
    platform: String,
    team_id: Option<u64>,
    /// `pass`, `fail`, or empty when the host has not answered (or its query failed).
    response: &'static str,
}

impl From<&HostPolicy> for HostPolicyJson {
    fn from(p: &HostPolicy) -> Self {
        HostPolicyJson {
            id: p.id.0,
            name: p.fields.name.clone(),
            query: p.fields.query.clone(),
            description: p.fields.description.clone(),
            critical: p.fields.critical,
            resolution: p.fields.resolution.clone(),
            platform: p.fields.platform.clone(),
            team_id: p.team.map(|t| t.0),
            response: match p.response {
                Some(true) => "pass",
                Some(false) => "fail",
                None => "",
            },
        }
    }
}

fn policy_body(policy: &Policy) -> Response {
    ok(&json!({ "policy": PolicyJson::from(policy) }))
}

fn list_body(policies: &[Policy]) -> Response {
    let policies: Vec<PolicyJson> = policies.iter().map(PolicyJson::from).collect();
    ok(&json!({ "policies": policies }))
}

/// The team of a team route; 0 is not a team.
fn team_of(id: u64) -> Result<Option<TeamId>, FleetError> {
    if id == 0 {
        return Err(FleetError::NotFound("team 0 not found".into()));
    }
    Ok(Some(TeamId(id)))
}

/// A new policy. Every field is optional in the body; the service says what is missing.
#[derive(Deserialize)]
pub struct CreatePolicyBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    critical: bool,
    /// Fleet's clients send the team of a team route in the body too; the path decides.
    #[serde(default)]
    #[allow(dead_code)]
    team_id: Option<u64>,
}

impl CreatePolicyBody {
    fn fields(self) -> PolicyFields {
        PolicyFields {
            name: self.name.trim().to_owned(),
            query: self.query,
            description: self.description,
            resolution: self.resolution,
            platform: self.platform,
            critical: self.critical,
        }
    }
}

/// A change to a policy: any subset of the fields.
#[derive(Deserialize)]
pub struct ModifyPolicyBody {
    name: Option<String>,
    query: Option<String>,
    description: Option<String>,
    resolution: Option<String>,
    platform: Option<String>,
    critical: Option<bool>,
}

impl ModifyPolicyBody {
    fn apply(self, fields: &mut PolicyFields) {
        if let Some(name) = self.name {
            fields.name = name.trim().to_owned();
        }
        if let Some(query) = self.query {
            fields.query = query;
        }
        if let Some(description) = self.description {
            fields.description = description;
        }
        if let Some(resolution) = self.resolution {
            fields.resolution = resolution;
        }
        if let Some(platform) = self.platform {
            fields.platform = platform;
        }
        if let Some(critical) = self.critical {
            fields.critical = critical;
        }
    }
}

#[derive(Deserialize)]
pub struct DeleteManyBody {
    ids: Vec<u64>,
}

async fn list(
    state: &SharedState,
    viewer: &Viewer,
    team: Option<TeamId>,
) -> Result<Response, FleetError> {
    let policies = state.services.policies.list(viewer, team).await?;
    Ok(list_body(&policies))
}

async fn count(
    state: &SharedState,
    viewer: &Viewer,
    team: Option<TeamId>,
) -> Result<Response, FleetError> {
    let count = state.services.policies.count(viewer, team).await?;
    Ok(ok(&json!({ "count": count })))
}

async fn delete_many(
    state: &SharedState,
    viewer: &Viewer,
    team: Option<TeamId>,
    body: DeleteManyBody,
) -> Result<Response, FleetError> {
    let ids: Vec<PolicyId> = body.ids.into_iter().map(PolicyId).collect();
    let deleted = state
        .services
        .policies
        .delete_many(viewer, team, &ids)
        .await?;
    Ok(ok(&json!({ "deleted": deleted })))
}

/// `GET /global/policies`.
pub async fn list_global(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    list(&state, &viewer, None).await
}

/// `GET /teams/{id}/policies`.
pub async fn list_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(team): FleetPath<u64>,
) -> Result<Response, FleetError> {
    list(&state, &viewer, team_of(team)?).await
}

/// `GET /policies/count` and `/global/policies/count`.
pub async fn count_global(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    count(&state, &viewer, None).await
}

/// `GET /teams/{id}/policies/count`.
pub async fn count_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(team): FleetPath<u64>,
) -> Result<Response, FleetError> {
    count(&state, &viewer, team_of(team)?).await
}

/// `POST /global/policies`.
pub async fn create_global(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreatePolicyBody>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .create(&viewer, None, body.fields())
        .await?;
    Ok(policy_body(&policy))
}

/// `POST /teams/{id}/policies`.
pub async fn create_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(team): FleetPath<u64>,
    FleetJson(body): FleetJson<CreatePolicyBody>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .create(&viewer, team_of(team)?, body.fields())
        .await?;
    Ok(policy_body(&policy))
}

/// `GET /global/policies/{policy_id}`.
pub async fn get_global(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .readable(&viewer, None, PolicyId(id))
        .await?;
    Ok(policy_body(&policy))
}

/// `GET /teams/{id}/policies/{policy_id}`.
pub async fn get_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath((team, id)): FleetPath<(u64, u64)>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .readable(&viewer, team_of(team)?, PolicyId(id))
        .await?;
    Ok(policy_body(&policy))
}

/// `PATCH /global/policies/{policy_id}`.
pub async fn modify_global(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetJson(body): FleetJson<ModifyPolicyBody>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .update(&viewer, None, PolicyId(id), |fields| body.apply(fields))
        .await?;
    Ok(policy_body(&policy))
}

/// `PATCH /teams/{id}/policies/{policy_id}`.
pub async fn modify_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath((team, id)): FleetPath<(u64, u64)>,
    FleetJson(body): FleetJson<ModifyPolicyBody>,
) -> Result<Response, FleetError> {
    let policy = state
        .services
        .policies
        .update(&viewer, team_of(team)?, PolicyId(id), |fields| {
            body.apply(fields)
        })
        .await?;
    Ok(policy_body(&policy))
}

/// `POST /global/policies/delete` `{"ids":[…]}` → `{"deleted": n}`.
pub async fn delete_global(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<DeleteManyBody>,
) -> Result<Response, FleetError> {
    delete_many(&state, &viewer, None, body).await
}

/// `POST /teams/{id}/policies/delete` `{"ids":[…]}` → `{"deleted": n}`.
pub async fn delete_team(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(team): FleetPath<u64>,
    FleetJson(body): FleetJson<DeleteManyBody>,
) -> Result<Response, FleetError> {
    delete_many(&state, &viewer, team_of(team)?, body).await
}
