//! Users: `GET /users`, `POST /users/admin`, `GET/PATCH/DELETE /users/{id}`,
//! `DELETE /users/{id}/sessions`, over
//! [`UserService`](crate::service::users::UserService), which decides who may do what.

use axum::extract::State;
use axum::response::Response;
use flotilla_storage::admin::{User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::{ListParams, rfc3339};
use crate::service::Viewer;
use crate::service::users::{NewUserRequest, UserEdit};
use crate::state::SharedState;

/// A user on the wire (Fleet's user object).
#[derive(Serialize)]
pub struct UserJson {
    created_at: String,
    updated_at: String,
    id: u64,
    name: String,
    email: String,
    enabled: bool,
    force_password_reset: bool,
    gravatar_url: &'static str,
    sso_enabled: bool,
    global_role: Option<String>,
    api_only: bool,
    teams: Vec<UserTeamJson>,
}

#[derive(Serialize)]
struct UserTeamJson {
    id: u64,
    name: String,
    role: String,
}

impl From<&User> for UserJson {
    fn from(user: &User) -> Self {
        UserJson {
            created_at: rfc3339(user.created_at),
            updated_at: rfc3339(user.updated_at),
            id: user.id.0,
            name: user.name.clone(),
            email: user.email.clone(),
            enabled: user.enabled,
            force_password_reset: user.force_password_reset,
            gravatar_url: "",
            sso_enabled: false,
            global_role: user.global_role.clone(),
            api_only: user.api_only,
            teams: user
                .teams
                .iter()
                .map(|t| UserTeamJson {
                    id: t.team.0,
                    name: t.team_name.clone(),
                    role: t.role.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct TeamRoleBody {
    id: u64,
    role: String,
}

/// The team roles of a request body, as the service takes them.
fn team_roles(teams: Option<Vec<TeamRoleBody>>) -> Option<Vec<(u64, String)>> {
    teams.map(|teams| teams.into_iter().map(|t| (t.id, t.role)).collect())
}

/// `GET /users` (`query`, `team_id`, `page`, `per_page`).
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ListParams>,
) -> Result<Response, FleetError> {
    let page = params.page(100)?;
    let search = params.query.as_deref().unwrap_or("").to_lowercase();
    let users: Vec<UserJson> = state
        .services
        .users
        .list(&viewer)
        .await?
        .iter()
        .filter(|u| {
            search.is_empty()
                || u.name.to_lowercase().contains(&search)
                || u.email.to_lowercase().contains(&search)
        })
        .filter(|u| {
            params
                .team_id
                .is_none_or(|team| u.teams.iter().any(|t| t.team.0 == team))
        })
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .map(UserJson::from)
        .collect();
    Ok(ok(&json!({ "users": users })))
}

#[derive(Deserialize)]
pub struct CreateUserBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    /// Optional for API-only users.
    password: Option<String>,
    global_role: Option<String>,
    teams: Option<Vec<TeamRoleBody>>,
    #[serde(default)]
    api_only: bool,
}

/// `POST /users/admin`: a global admin creates a user: `{"user"}`, and for an API-only user
/// also `"token"`, a session token that never expires (as Fleet answers).
pub async fn create(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreateUserBody>,
) -> Result<Response, FleetError> {
    let request = NewUserRequest {
        name: body.name,
        email: body.email,
        password: body.password,
        global_role: body.global_role,
        teams: team_roles(body.teams),
        api_only: body.api_only,
    };
    let created = state.services.users.create(&viewer, request).await?;
    let mut body = json!({ "user": UserJson::from(&created.user) });
    if let Some(token) = created.token {
        body["token"] = json!(token);
    }
    Ok(ok(&body))
}

/// `GET /users/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let user = state.services.users.get(&viewer, UserId(id)).await?;
    Ok(ok(&json!({ "user": UserJson::from(&user) })))
}

#[derive(Deserialize)]
pub struct ModifyUserBody {
    name: Option<String>,
    email: Option<String>,
    /// The current password: required when users change their own email or password.
    password: Option<String>,
    new_password: Option<String>,
    global_role: Option<String>,
    teams: Option<Vec<TeamRoleBody>>,
}

/// `PATCH /users/{id}`.
pub async fn modify(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetJson(body): FleetJson<ModifyUserBody>,
) -> Result<Response, FleetError> {
    let edit = UserEdit {
        name: body.name,
        email: body.email,
        password: body.password,
        new_password: body.new_password,
        global_role: body.global_role,
        teams: team_roles(body.teams),
    };
    let updated = state
        .services
        .users
        .modify(&viewer, UserId(id), edit)
        .await?;
    Ok(ok(&json!({ "user": UserJson::from(&updated) })))
}

#[derive(Deserialize)]
pub struct ChangePasswordBody {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /change_password`: the viewer's own password; their other sessions end.
pub async fn change_password(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<ChangePasswordBody>,
) -> Result<Response, FleetError> {
    state
        .services
        .users
        .change_password(&viewer, body.old_password, body.new_password)
        .await?;
    Ok(ok(&json!({})))
}

/// `DELETE /users/{id}`.
pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state.services.users.delete(&viewer, UserId(id)).await?;
    Ok(ok(&json!({})))
}

/// `DELETE /users/{id}/sessions`: ends every session of the user, which revokes an API-only
/// user's token.
pub async fn delete_sessions(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state
        .services
        .users
        .delete_sessions(&viewer, UserId(id))
        .await?;
    Ok(ok(&json!({})))
}
