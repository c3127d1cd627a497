//! Teams and enroll secrets. Global admins manage teams; admins and maintainers of a team (or
//! global ones) manage its enroll secrets. After any change to secrets the engine reloads them,
//! so a host enrolling with a team's secret joins that team at once.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{Team, TeamChanges, TeamSecret};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Viewer;
use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::rfc3339;
use crate::state::{AppState, SharedState};

/// Fleet's cap on the enroll secrets of one team (or of the global set).
const MAX_SECRETS: usize = 50;

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
    let team = readable_team(state, viewer, id.0).await?;
    Ok(team_body(state, viewer, &team))
}

/// A new enroll secret: 24 random bytes, URL-safe base64.
pub(crate) fn generate_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Makes the engine pick up a change to enroll secrets.
pub(crate) async fn reload_secrets(state: &AppState) -> Result<(), FleetError> {
    state.hosts.enroll_secrets_changed().await?;
    Ok(())
}

/// `GET /teams`: every team for users with a global role, else the user's teams.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    let teams: Vec<TeamJson> = state
        .admin
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
    Viewer::require(viewer.is_global_admin())?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    let now = flotilla_engine::unix_now();
    let team = state
        .admin
        .create_team(name, body.description.trim(), &generate_secret(), now)
        .await?;
    reload_secrets(&state).await?;
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "created_team",
        json!({ "team_id": team.id.0, "team_name": team.name }),
        now,
    )
    .await;
    Ok(team_body(&state, &viewer, &team))
}

pub(crate) async fn readable_team(
    state: &AppState,
    viewer: &Viewer,
    id: u64,
) -> Result<Team, FleetError> {
    Viewer::require(viewer.can_read(Some(TeamId(id))))?;
    state
        .admin
        .team(TeamId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("team {id} not found")))
}

/// `GET /teams/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let team = readable_team(&state, &viewer, id).await?;
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
    FleetQuery(params): FleetQuery<super::config::ApplyParams>,
    FleetJson(body): FleetJson<ModifyTeamBody>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    if let Some(options) = &body.agent_options {
        super::config::apply_team_agent_options(&state, &viewer, TeamId(id), options, &params)
            .await?;
    }
    if params.dry_run {
        let team = readable_team(&state, &viewer, id).await?;
        return Ok(team_body(&state, &viewer, &team));
    }
    let name = body.name.map(|n| n.trim().to_owned());
    if name.as_deref() == Some("") {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    let changes = TeamChanges {
        name,
        description: body.description,
    };
    let team = state
        .admin
        .update_team(TeamId(id), &changes, flotilla_engine::unix_now())
        .await?;
    Ok(team_body(&state, &viewer, &team))
}

/// `DELETE /teams/{id}`: its hosts move to no team, its enroll secrets stop working.
pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let (team, moved) = state
        .admin
        .delete_team(TeamId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("team {id} not found")))?;
    for host in moved {
        state.hosts.set_team(host, None);
    }
    reload_secrets(&state).await?;
    super::config::reload_agent_configs(&state).await?;
    super::record_activity(
        &state,
        Some(viewer.user.id),
        "deleted_team",
        json!({ "team_id": team.id.0, "team_name": team.name }),
        flotilla_engine::unix_now(),
    )
    .await;
    Ok(ok(&json!({})))
}

#[derive(Deserialize)]
pub struct SecretBody {
    #[serde(default)]
    pub(crate) secret: String,
}

#[derive(Deserialize)]
pub struct SecretsBody {
    #[serde(default)]
    pub(crate) secrets: Vec<SecretBody>,
}

/// Trimmed, non-empty, without duplicates, at most [`MAX_SECRETS`].
pub(crate) fn checked_secrets(secrets: Vec<SecretBody>) -> Result<Vec<String>, FleetError> {
    if secrets.len() > MAX_SECRETS {
        return Err(FleetError::validation(
            "secrets",
            format!("at most {MAX_SECRETS} enroll secrets are allowed"),
        ));
    }
    let mut seen = HashSet::new();
    let mut checked = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let secret = secret.secret.trim().to_owned();
        if secret.is_empty() {
            return Err(FleetError::validation("secret", "cannot be empty"));
        }
        if seen.insert(secret.clone()) {
            checked.push(secret);
        }
    }
    Ok(checked)
}

async fn replace(
    state: &AppState,
    viewer: &Viewer,
    team: Option<TeamId>,
    secrets: Vec<SecretBody>,
) -> Result<Vec<TeamSecret>, FleetError> {
    Viewer::require(viewer.can_write(team))?;
    let secrets = checked_secrets(secrets)?;
    let now = flotilla_engine::unix_now();
    let stored = state
        .admin
        .replace_enroll_secrets(team, &secrets, now)
        .await?;
    reload_secrets(state).await?;
    let team_name = match team {
        Some(team) => state.admin.team(team).await?.map(|t| t.name),
        None => None,
    };
    super::record_activity(
        state,
        Some(viewer.user.id),
        "edited_enroll_secrets",
        json!({ "team_id": team.map(|t| t.0), "team_name": team_name }),
        now,
    )
    .await;
    Ok(stored)
}

/// `GET /teams/{id}/secrets`.
pub async fn secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(Some(TeamId(id))))?;
    let team = readable_team(&state, &viewer, id).await?;
    let secrets: Vec<SecretJson> = team.secrets.iter().map(SecretJson::from).collect();
    Ok(ok(&json!({ "secrets": secrets })))
}

/// `PATCH /teams/{id}/secrets` `{"secrets":[{"secret"}]}`: replaces the team's secrets.
pub async fn replace_secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetJson(body): FleetJson<SecretsBody>,
) -> Result<Response, FleetError> {
    let stored = replace(&state, &viewer, Some(TeamId(id)), body.secrets).await?;
    let secrets: Vec<SecretJson> = stored.iter().map(SecretJson::from).collect();
    Ok(ok(&json!({ "secrets": secrets })))
}

/// `GET /spec/enroll_secret`: the global enroll secrets.
pub async fn global_secrets(
    State(state): State<SharedState>,
    viewer: Viewer,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_write(None))?;
    let secrets: Vec<SecretJson> = state
        .admin
        .enroll_secrets_of(None)
        .await?
        .iter()
        .map(SecretJson::from)
        .collect();
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
    FleetQuery(params): FleetQuery<super::config::ApplyParams>,
    FleetJson(body): FleetJson<SpecBody>,
) -> Result<Response, FleetError> {
    let spec = body
        .spec
        .ok_or_else(|| FleetError::validation("spec", "`spec.secrets` is required"))?;
    if params.dry_run {
        Viewer::require(viewer.can_write(None))?;
        checked_secrets(spec.secrets)?;
        return Ok(ok(&json!({})));
    }
    replace(&state, &viewer, None, spec.secrets).await?;
    Ok(ok(&json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(secrets: &[&str]) -> Vec<SecretBody> {
        secrets
            .iter()
            .map(|s| SecretBody {
                secret: (*s).into(),
            })
            .collect()
    }

    #[test]
    fn secrets_are_trimmed_deduplicated_and_capped() {
        assert_eq!(
            checked_secrets(bodies(&[" a ", "b", "a"])).unwrap(),
            ["a", "b"]
        );
        assert!(checked_secrets(bodies(&["a", "  "])).is_err());
        let many: Vec<String> = (0..51).map(|n| n.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(checked_secrets(bodies(&many)).is_err());
        assert_eq!(generate_secret().len(), 32);
    }
}
