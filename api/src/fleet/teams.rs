//! Teams and enroll secrets: `/teams`, `/teams/{id}/secrets`, `/spec/enroll_secret`. What a
//! change does, and who may make it, is [`crate::service::teams`]'s.

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{Team, TeamSecret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::service::Viewer;
use crate::service::settings::ApplyParams;
use crate::service::teams::{SecretBody, TeamEdit};
use crate::state::{AppState, SharedState};

#[derive(Serialize)]
pub struct SecretJson {
    secret: String,
    created_at: String,
    team_id: Option<u64>,
}

impl From<&TeamSecret> for SecretJson {
    fn from(secret: &TeamSecret) -> Self {
        SecretJson {
            secret: secret.secret.clone(),
            created_at: rfc3339(secret.created_at),
            team_id: secret.team.map(|t| t.0),
        }
    }
}

#[derive(Serialize)]
struct TeamJson {
    id: u64,
    created_at: String,
    name: String,
    description: String,
    agent_options: Option<serde_json::Value>,
    user_count: u64,
    host_count: u64,
    secrets: Vec<SecretJson>,
    webhook_settings: serde_json::Value,
    integrations: serde_json::Value,
    features: serde_json::Value,
    mdm: serde_json::Value,
}

fn team_json(state: &AppState, team: &Team, with_secrets: bool) -> TeamJson {
    TeamJson {
        id: team.id.0,
        created_at: rfc3339(team.created_at),
        name: team.name.clone(),
        description: team.description.clone(),
        agent_options: state
            .agent_configs
            .inputs()
            .team_options
            .get(&team.id)
            .cloned(),
        user_count: team.user_count,
        host_count: team.host_count,
        secrets: if with_secrets {
            team.secrets.iter().map(SecretJson::from).collect()
        } else {
            Vec::new()
        },
        webhook_settings: json!({}),
        integrations: json!({}),
        features: json!({}),
        mdm: json!({}),
    }
}

/// A team's object as `viewer` may see it: secrets only for those who manage them.
fn team_body(state: &AppState, viewer: &Viewer, team: &Team) -> Response {
    ok(&json!({ "team": team_json(state, team, viewer.can_write(Some(team.id))) }))
}

/// `{"team": …}` for the team with this id, read afresh.
pub async fn team_response(
    state: &AppState,
    viewer: &Viewer,
    id: TeamId,
) -> Result<Response, FleetError> {
    let team = state.services.teams.readable(viewer, id).await?;
    Ok(team_body(state, viewer, &team))
}

/// `GET /teams`: every team for users with a global role, else the user's teams.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    let teams: Vec<TeamJson> = state
        .reads
        .teams
        .teams()
        .await?
        .iter()
        .filter(|t| viewer.can_read(Some(t.id)))
        .map(|t| team_json(&state, t, viewer.can_write(Some(t.id))))
        .collect();
    Ok(ok(&json!({ "teams": teams })))
}

#[derive(Deserialize)]
pub struct CreateTeamBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /teams`: a new team, with a generated enroll secret.
pub async fn create(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreateTeamBody>,
) -> Result<Response, FleetError> {
    let team = state
        .services
        .teams
        .create(&viewer, &body.name, &body.description)
        .await?;
    Ok(team_body(&state, &viewer, &team))
}

/// `GET /teams/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let team = state.services.teams.readable(&viewer, TeamId(id)).await?;
    Ok(team_body(&state, &viewer, &team))
}

#[derive(Deserialize)]
pub struct ModifyTeamBody {
    name: Option<String>,
    description: Option<String>,
    /// The team's whole agent options document (`null` removes them: global ones apply).
    #[serde(default, deserialize_with = "present")]
    agent_options: Option<serde_json::Value>,
}

/// Tells a field that is present with `null` from one that is absent.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// `PATCH /teams/{id}` (`?force`, `?dry_run` for agent options): name, description and
/// agent options.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<ModifyTeamBody>,
) -> Result<Response, FleetError> {
    let edit = TeamEdit {
        name: body.name,
        description: body.description,
        agent_options: body.agent_options,
    };
    let team = state
        .services
        .teams
        .update(&viewer, TeamId(id), edit, &params)
        .await?;
    Ok(team_body(&state, &viewer, &team))
}

/// `DELETE /teams/{id}`: its hosts move to no team, its enroll secrets stop working.
pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state.services.teams.delete(&viewer, TeamId(id)).await?;
    Ok(ok(&json!({})))
}

#[derive(Deserialize)]
pub struct SecretsBody {
    #[serde(default)]
    pub(crate) secrets: Vec<SecretBody>,
}

/// `GET /teams/{id}/secrets`.
pub async fn secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let stored = state
        .services
        .teams
        .secrets(&viewer, Some(TeamId(id)))
        .await?;
    let secrets: Vec<SecretJson> = stored.iter().map(SecretJson::from).collect();
    Ok(ok(&json!({ "secrets": secrets })))
}

/// `PATCH /teams/{id}/secrets` `{"secrets":[{"secret"}]}`: replaces the team's secrets.
pub async fn replace_secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetJson(body): FleetJson<SecretsBody>,
) -> Result<Response, FleetError> {
    let stored = state
        .services
        .teams
        .replace_secrets(
            &viewer,
            Some(TeamId(id)),
            SecretBody::texts(body.secrets),
            false,
        )
        .await?;
    let secrets: Vec<SecretJson> = stored.iter().map(SecretJson::from).collect();
    Ok(ok(&json!({ "secrets": secrets })))
}

/// `GET /spec/enroll_secret`: the global enroll secrets.
pub async fn global_secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    let stored = state.services.teams.secrets(&viewer, None).await?;
    let secrets: Vec<SecretJson> = stored.iter().map(SecretJson::from).collect();
    Ok(ok(&json!({ "spec": { "secrets": secrets } })))
}

#[derive(Deserialize)]
pub struct SpecBody {
    spec: Option<SecretsBody>,
}

/// `POST /spec/enroll_secret` `{"spec":{"secrets":[{"secret"}]}}` (`?dry_run`): replaces the
/// global secrets.
pub async fn replace_global_secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ApplyParams>,
    FleetJson(body): FleetJson<SpecBody>,
) -> Result<Response, FleetError> {
    let spec = body
        .spec
        .ok_or_else(|| FleetError::validation("spec", "`spec.secrets` is required"))?;
    state
        .services
        .teams
        .replace_secrets(
            &viewer,
            None,
            SecretBody::texts(spec.secrets),
            params.dry_run,
        )
        .await?;
    Ok(ok(&json!({})))
}
