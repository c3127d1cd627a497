//! Users: `GET /users`, `POST /users/admin`, `GET/PATCH/DELETE /users/{id}`. Only global
//! admins create, change or delete other users; a user may change their own name, email and
//! password (giving the current password).

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{Roles, User, UserChanges, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::{ListParams, rfc3339};
use crate::service::password;
use crate::service::sessions::{check_email, check_name};
use crate::service::{Role, Viewer};
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

fn check_role(field: &str, role: &str) -> Result<String, FleetError> {
    Role::parse(role)
        .map(|r| r.as_str().to_owned())
        .ok_or_else(|| {
            FleetError::validation(
                field,
                format!("`{role}` is not a role: use admin, maintainer, observer or observer_plus"),
            )
        })
}

#[derive(Deserialize)]
struct TeamRoleBody {
    id: u64,
    role: String,
}

/// `global_role` xor `teams`, validated.
fn roles(
    global_role: Option<String>,
    teams: Option<Vec<TeamRoleBody>>,
) -> Result<Roles, FleetError> {
    match (global_role, teams) {
        (Some(_), Some(teams)) if !teams.is_empty() => Err(FleetError::validation(
            "global_role",
            "a user has either a global role or team roles, not both",
        )),
        (Some(role), _) => Ok(Roles::Global(check_role("global_role", &role)?)),
        (None, Some(teams)) if !teams.is_empty() => Ok(Roles::Teams(
            teams
                .into_iter()
                .map(|t| Ok((TeamId(t.id), check_role("teams", &t.role)?)))
                .collect::<Result<_, FleetError>>()?,
        )),
        (None, _) => Err(FleetError::validation(
            "global_role",
            "either global_role or teams is required",
        )),
    }
}

/// Whether `viewer` may see `user`: global users see everyone, others the members of their
/// teams and themselves.
fn visible(viewer: &Viewer, user: &User) -> bool {
    viewer.user.global_role.is_some()
        || viewer.user.id == user.id
        || user.teams.iter().any(|t| viewer.can_read(Some(t.team)))
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
        .admin
        .users()
        .await?
        .iter()
        .filter(|u| visible(&viewer, u))
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
    #[serde(default)]
    password: String,
    global_role: Option<String>,
    teams: Option<Vec<TeamRoleBody>>,
    #[serde(default)]
    api_only: bool,
}

/// `POST /users/admin`: a global admin creates a user.
pub async fn create(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<CreateUserBody>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let name = check_name(&body.name)?;
    let email = check_email(&body.email)?;
    password::check_rules("password", &body.password)?;
    let roles = roles(body.global_role, body.teams)?;
    let new = flotilla_storage::admin::NewUser {
        name,
        email,
        password_hash: password::hash(body.password).await?,
        roles,
        api_only: body.api_only,
    };
    let now = flotilla_engine::unix_now();
    let user = state.admin.create_user(&new, now).await?;
    state
        .services
        .effects
        .record_activity(
            Some(viewer.user.id),
            "created_user",
            json!({ "user_id": user.id.0, "user_name": user.name, "user_email": user.email }),
            now,
        )
        .await;
    Ok(ok(&json!({ "user": UserJson::from(&user) })))
}

async fn visible_user(state: &SharedState, viewer: &Viewer, id: u64) -> Result<User, FleetError> {
    let user = state
        .admin
        .user(UserId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("user {id} not found")))?;
    Viewer::require(visible(viewer, &user))?;
    Ok(user)
}

/// `GET /users/{id}`.
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let user = visible_user(&state, &viewer, id).await?;
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
    let user = visible_user(&state, &viewer, id).await?;
    let is_self = viewer.user.id == user.id;
    let admin = viewer.is_global_admin();
    Viewer::require(admin || is_self)?;
    let changing_roles = body.global_role.is_some() || body.teams.is_some();
    Viewer::require(admin || !changing_roles)?;

    let mut changes = UserChanges {
        name: body.name.as_deref().map(check_name).transpose()?,
        email: body.email.as_deref().map(check_email).transpose()?,
        ..UserChanges::default()
    };
    if let Some(new_password) = &body.new_password {
        password::check_rules("new_password", new_password)?;
    }
    let email_changes = changes.email.as_ref().is_some_and(|e| *e != user.email);
    // Someone changing their own credentials proves they know the current password.
    if is_self && (email_changes || body.new_password.is_some()) {
        let current = body.password.clone().unwrap_or_default();
        let hash = state.admin.password_hash(user.id).await?;
        if !password::verify(current, hash).await {
            return Err(FleetError::validation("password", "incorrect password"));
        }
    }
    if let Some(new_password) = body.new_password {
        changes.password_hash = Some(password::hash(new_password).await?);
    }
    if changing_roles {
        let new_roles = roles(body.global_role, body.teams)?;
        let loses_admin = user.global_role.as_deref() == Some("admin")
            && new_roles != Roles::Global("admin".into());
        if loses_admin && state.admin.global_admin_count().await? <= 1 {
            return Err(FleetError::validation(
                "global_role",
                "the last global admin cannot be demoted",
            ));
        }
        changes.roles = Some(new_roles);
    }
    let now = flotilla_engine::unix_now();
    let updated = state.admin.update_user(user.id, &changes, now).await?;
    Ok(ok(&json!({ "user": UserJson::from(&updated) })))
}

/// `DELETE /users/{id}`.
pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.is_global_admin())?;
    let user = state
        .admin
        .user(UserId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("user {id} not found")))?;
    if user.global_role.as_deref() == Some("admin") && state.admin.global_admin_count().await? <= 1
    {
        return Err(FleetError::validation(
            "id",
            "the last global admin cannot be deleted",
        ));
    }
    let now = flotilla_engine::unix_now();
    if state.admin.delete_user(user.id).await?.is_none() {
        return Err(FleetError::NotFound(format!("user {id} not found")));
    }
    state
        .services
        .effects
        .record_activity(
            Some(viewer.user.id),
            "deleted_user",
            json!({ "user_id": user.id.0, "user_name": user.name, "user_email": user.email }),
            now,
        )
        .await;
    Ok(ok(&json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_roles_are_checked() {
        assert_eq!(check_email(" a@b.c ").unwrap(), "a@b.c");
        for bad in ["", "ab.c", "@b.c", "a@", "a b@c.d"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            roles(Some("observer".into()), None),
            Ok(Roles::Global(_))
        ));
        assert!(roles(Some("root".into()), None).is_err());
        assert!(roles(None, None).is_err());
        let both = roles(
            Some("admin".into()),
            Some(vec![TeamRoleBody {
                id: 1,
                role: "observer".into(),
            }]),
        );
        assert!(both.is_err());
        let teams = roles(
            None,
            Some(vec![TeamRoleBody {
                id: 1,
                role: "maintainer".into(),
            }]),
        )
        .unwrap();
        assert_eq!(teams, Roles::Teams(vec![(TeamId(1), "maintainer".into())]));
    }
}
