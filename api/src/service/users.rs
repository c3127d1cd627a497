//! Users: who may see, create, change and delete whom. Only global admins create, change the
//! roles of, or delete other users; a user may change their own name, email and password
//! (giving the current password); the last global admin can be neither demoted nor deleted.
//! A new password ends the user's other sessions (all of them when an admin sets it).
//!
//! An API-only user is made for scripts and dashboards: created without a password (a random
//! one nobody knows is set), they get a session token at once, which never expires and ends
//! only when their sessions are revoked or they are deleted. Their roles limit them like
//! anyone else's.

use std::sync::Arc;

use flotilla_engine::TeamId;
use flotilla_storage::admin::{NewUser, Roles, User, UserChanges, UserId, UserStore};
use serde_json::json;

use super::password;
use super::sessions::{check_email, check_name, start_session};
use super::{Effects, Role, Viewer};
use crate::fleet::error::FleetError;

/// A user to create, as the request gave it.
pub struct NewUserRequest {
    pub name: String,
    pub email: String,
    /// Required, except for API-only users (who then get a random one).
    pub password: Option<String>,
    pub global_role: Option<String>,
    /// (team id, role name) pairs.
    pub teams: Option<Vec<(u64, String)>>,
    pub api_only: bool,
}

/// A user just created, and for an API-only user the token of their first session.
pub struct CreatedUser {
    pub user: User,
    pub token: Option<String>,
}

/// Changes to a user, as the request gave them.
pub struct UserEdit {
    pub name: Option<String>,
    pub email: Option<String>,
    /// The current password: required when users change their own email or password.
    pub password: Option<String>,
    pub new_password: Option<String>,
    pub global_role: Option<String>,
    pub teams: Option<Vec<(u64, String)>>,
}

#[derive(Clone)]
pub struct UserService {
    users: Arc<dyn UserStore>,
    effects: Effects,
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

/// `global_role` xor `teams`, validated.
fn roles(
    global_role: Option<String>,
    teams: Option<Vec<(u64, String)>>,
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
                .map(|(team, role)| Ok((TeamId(team), check_role("teams", &role)?)))
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

fn not_found(id: UserId) -> FleetError {
    FleetError::NotFound(format!("user {} not found", id.0))
}

impl UserService {
    pub fn new(users: Arc<dyn UserStore>, effects: Effects) -> UserService {
        UserService { users, effects }
    }

    /// Every user the viewer may see, ordered by name.
    pub async fn list(&self, viewer: &Viewer) -> Result<Vec<User>, FleetError> {
        let mut users = self.users.users().await?;
        users.retain(|user| visible(viewer, user));
        Ok(users)
    }

    /// One user the viewer may see (403 if they may not, 404 if there is none).
    pub async fn get(&self, viewer: &Viewer, id: UserId) -> Result<User, FleetError> {
        let user = self.users.user(id).await?.ok_or_else(|| not_found(id))?;
        Viewer::require(visible(viewer, &user))?;
        Ok(user)
    }

    /// A global admin creates a user; recorded as `created_user`. An API-only user may come
    /// without a password and gets a session whose token is returned (Fleet's answer to
    /// `POST /users/admin`); other users get none.
    pub async fn create(
        &self,
        viewer: &Viewer,
        request: NewUserRequest,
    ) -> Result<CreatedUser, FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let name = check_name(&request.name)?;
        let email = check_email(&request.email)?;
        let password = match request.password {
            Some(given) => {
                password::check_rules("password", &given)?;
                given
            }
            None if request.api_only => password::generate(),
            None => {
                return Err(FleetError::validation(
                    "password",
                    "a password is required (except for API-only users)",
                ));
            }
        };
        let new = NewUser {
            name,
            email,
            password_hash: password::hash(password).await?,
            roles: roles(request.global_role, request.teams)?,
            api_only: request.api_only,
        };
        let now = flotilla_engine::unix_now();
        let user = self.users.create_user(&new, now).await?;
        self.record(viewer, "created_user", &user, now).await;
        let token = if user.api_only {
            Some(start_session(self.users.as_ref(), &user, now).await?)
        } else {
            None
        };
        Ok(CreatedUser { user, token })
    }

    /// Ends every session of a user, API-only tokens included (Fleet's
    /// `DELETE /users/{id}/sessions`): global admins for anyone, users for themselves.
    pub async fn delete_sessions(&self, viewer: &Viewer, id: UserId) -> Result<(), FleetError> {
        Viewer::require(viewer.is_global_admin() || viewer.user.id == id)?;
        let user = self.users.user(id).await?.ok_or_else(|| not_found(id))?;
        let ended = self.users.delete_user_sessions(user.id, None).await?;
        tracing::info!(
            user = user.id.0,
            sessions = ended,
            "user's sessions revoked"
        );
        Ok(())
    }

    /// Changes a user: the viewer's own name, email and password, or anything of anyone for a
    /// global admin.
    pub async fn modify(
        &self,
        viewer: &Viewer,
        id: UserId,
        edit: UserEdit,
    ) -> Result<User, FleetError> {
        let user = self.get(viewer, id).await?;
        let is_self = viewer.user.id == user.id;
        let admin = viewer.is_global_admin();
        Viewer::require(admin || is_self)?;
        let changing_roles = edit.global_role.is_some() || edit.teams.is_some();
        Viewer::require(admin || !changing_roles)?;

        let mut changes = UserChanges {
            name: edit.name.as_deref().map(check_name).transpose()?,
            email: edit.email.as_deref().map(check_email).transpose()?,
            ..UserChanges::default()
        };
        if let Some(new_password) = &edit.new_password {
            password::check_rules("new_password", new_password)?;
        }
        let email_changes = changes.email.as_ref().is_some_and(|e| *e != user.email);
        // Someone changing their own credentials proves they know the current password.
        if is_self && (email_changes || edit.new_password.is_some()) {
            let current = edit.password.unwrap_or_default();
            let hash = self.users.password_hash(user.id).await?;
            if !password::verify(current, hash).await {
                return Err(FleetError::validation("password", "incorrect password"));
            }
        }
        let password_changes = edit.new_password.is_some();
        if let Some(new_password) = edit.new_password {
            changes.password_hash = Some(password::hash(new_password).await?);
        }
        if changing_roles {
            let new_roles = roles(edit.global_role, edit.teams)?;
            let loses_admin = user.global_role.as_deref() == Some("admin")
                && new_roles != Roles::Global("admin".into());
            if loses_admin && self.users.global_admin_count().await? <= 1 {
                return Err(FleetError::validation(
                    "global_role",
                    "the last global admin cannot be demoted",
                ));
            }
            changes.roles = Some(new_roles);
        }
        let now = flotilla_engine::unix_now();
        let changed = self.users.update_user(user.id, &changes, now).await?;
        if password_changes {
            self.end_sessions_after_new_password(viewer, user.id)
                .await?;
        }
        Ok(changed)
    }

    /// `POST /change_password`: the viewer's own password, given the old one (which the new
    /// one must differ from).
    pub async fn change_password(
        &self,
        viewer: &Viewer,
        old_password: String,
        new_password: String,
    ) -> Result<(), FleetError> {
        password::check_rules("new_password", &new_password)?;
        if old_password == new_password {
            return Err(FleetError::validation(
                "new_password",
                "the new password must differ from the old one",
            ));
        }
        let hash = self.users.password_hash(viewer.user.id).await?;
        if !password::verify(old_password, hash).await {
            return Err(FleetError::validation(
                "old_password",
                "old password does not match",
            ));
        }
        let changes = UserChanges {
            password_hash: Some(password::hash(new_password).await?),
            ..UserChanges::default()
        };
        let now = flotilla_engine::unix_now();
        self.users
            .update_user(viewer.user.id, &changes, now)
            .await?;
        self.end_sessions_after_new_password(viewer, viewer.user.id)
            .await
    }

    /// Whoever knew the old password is logged out everywhere: every session of `user` ends,
    /// except the viewer's own when they changed their own password.
    async fn end_sessions_after_new_password(
        &self,
        viewer: &Viewer,
        user: UserId,
    ) -> Result<(), FleetError> {
        let keep = viewer.session.as_deref().filter(|_| viewer.user.id == user);
        let ended = self.users.delete_user_sessions(user, keep).await?;
        tracing::info!(
            user = user.0,
            sessions = ended,
            "password changed; the user's other sessions ended"
        );
        Ok(())
    }

    /// A global admin deletes a user (and their sessions); recorded as `deleted_user`.
    pub async fn delete(&self, viewer: &Viewer, id: UserId) -> Result<(), FleetError> {
        Viewer::require(viewer.is_global_admin())?;
        let user = self.users.user(id).await?.ok_or_else(|| not_found(id))?;
        if user.global_role.as_deref() == Some("admin")
            && self.users.global_admin_count().await? <= 1
        {
            return Err(FleetError::validation(
                "id",
                "the last global admin cannot be deleted",
            ));
        }
        let now = flotilla_engine::unix_now();
        if self.users.delete_user(user.id).await?.is_none() {
            return Err(not_found(id));
        }
        self.record(viewer, "deleted_user", &user, now).await;
        Ok(())
    }

    async fn record(&self, viewer: &Viewer, kind: &str, user: &User, now: i64) {
        let details =
            json!({ "user_id": user.id.0, "user_name": user.name, "user_email": user.email });
        self.effects
            .record_activity(Some(viewer.user.id), kind, details, now)
            .await;
    }
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
        let both = roles(Some("admin".into()), Some(vec![(1, "observer".into())]));
        assert!(both.is_err());
        let teams = roles(None, Some(vec![(1, "maintainer".into())])).unwrap();
        assert_eq!(teams, Roles::Teams(vec![(TeamId(1), "maintainer".into())]));
    }
}
