//! [`UserStore`] for [`SqlStore`]: users, their team roles and their sessions.

use std::collections::HashMap;

use async_trait::async_trait;
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{AdminError, NewUser, Roles, User, UserChanges, UserId, UserStore, UserTeam};
use crate::common::store_error;
use crate::rows::ModelRow;
use crate::sql::{Exec, query, sql};

macro_rules! user_columns {
    () => {
        "id, name, email, global_role, api_only, enabled, force_password_reset, created_at, \
         updated_at"
    };
}

async fn load(mut on: Exec<'_>, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let Some(row) = query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(on.on())
    .await?
    else {
        return Ok(None);
    };
    let mut user = crate::rows::user(&row)?;
    let teams = query(
        "SELECT ut.team_id, t.name AS team_name, ut.role FROM user_teams ut \
         JOIN teams t ON t.id = ut.team_id WHERE ut.user_id = ? ORDER BY t.name",
    )
    .bind(id)
    .fetch_all(on)
    .await?;
    user.teams = teams
        .iter()
        .map(crate::rows::user_team)
        .collect::<Result<_, _>>()?;
    Ok(Some(user))
}

async fn set_roles(mut on: Exec<'_>, id: UserId, roles: &Roles) -> Result<(), sqlx::Error> {
    let global = match roles {
        Roles::Global(role) => Some(role.as_str()),
        Roles::Teams(_) => None,
    };
    query("UPDATE users SET global_role = ? WHERE id = ?")
        .bind(global)
        .bind(id)
        .execute(on.on())
        .await?;
    query("DELETE FROM user_teams WHERE user_id = ?")
        .bind(id)
        .execute(on.on())
        .await?;
    if let Roles::Teams(teams) = roles {
        for (team, role) in teams {
            query("INSERT INTO user_teams (user_id, team_id, role) VALUES (?, ?, ?)")
                .bind(id)
                .bind(*team)
                .bind(role)
                .execute(on.on())
                .await?;
        }
    }
    Ok(())
}

impl SqlStore {
    async fn count_of(&self, sql: &'static str) -> Result<u64, StoreError> {
        let row = query(sql).fetch_one(&self.db).await.map_err(store_error)?;
        Ok(row.int("n").map_err(store_error)? as u64)
    }

    /// Inserts a user; with `only_if_first`, only when there is no user at all (in the same
    /// statement, so two concurrent setups cannot both succeed).
    async fn insert_user(
        &self,
        user: &NewUser,
        now: i64,
        only_if_first: bool,
    ) -> Result<Option<User>, AdminError> {
        let email_taken = |e| write_error(e, "a user with this email");
        let d = self.db.dialect();
        let sql = if only_if_first {
            sql!(
                d,
                "INSERT INTO users (name, email, password_hash, api_only, created_at, updated_at) \
                 SELECT ?, ?, ?, ?, ?, ?",
                FROM_DUAL,
                " WHERE NOT EXISTS (SELECT 1 FROM users)"
            )
        } else {
            "INSERT INTO users (name, email, password_hash, api_only, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)"
        };
        let mut tx = self.db.begin().await.map_err(email_taken)?;
        let inserted = query(sql)
            .bind(&user.name)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.api_only)
            .bind(now)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(email_taken)?;
        if inserted.rows_affected == 0 {
            return Ok(None);
        }
        let id = UserId(inserted.last_insert_id);
        set_roles((&mut tx).into(), id, &user.roles)
            .await
            .map_err(|e| write_error(e, "a team role"))?;
        let created = load((&mut tx).into(), id).await.map_err(email_taken)?;
        tx.commit().await.map_err(email_taken)?;
        Ok(created)
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn user_count(&self) -> Result<u64, StoreError> {
        self.count_of("SELECT COUNT(*) AS n FROM users").await
    }

    async fn global_admin_count(&self) -> Result<u64, StoreError> {
        self.count_of("SELECT COUNT(*) AS n FROM users WHERE global_role = 'admin'")
            .await
    }

    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, AdminError> {
        self.insert_user(user, now, false)
            .await?
            .ok_or_else(|| AdminError::Store(StoreError::Data("user not created".into())))
    }

    async fn create_first_user(
        &self,
        user: &NewUser,
        now: i64,
    ) -> Result<Option<User>, AdminError> {
        self.insert_user(user, now, true).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        load((&self.db).into(), id).await.map_err(store_error)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = query("SELECT id, password_hash FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id = UserId(row.id("id").map_err(store_error)?);
        let hash = row.text("password_hash").map_err(store_error)?;
        let user = load((&self.db).into(), id).await.map_err(store_error)?;
        Ok(user.map(|u| (u, hash)))
    }

    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        let row = query("SELECT password_hash FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        row.map(|row| row.text("password_hash"))
            .transpose()
            .map_err(store_error)
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name, id"
        ))
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let mut users: Vec<User> = rows
            .iter()
            .map(crate::rows::user)
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        let roles = query(
            "SELECT ut.user_id, ut.team_id, t.name AS team_name, ut.role FROM user_teams ut \
             JOIN teams t ON t.id = ut.team_id ORDER BY t.name",
        )
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let mut by_user: HashMap<u64, Vec<UserTeam>> = HashMap::new();
        for row in &roles {
            let user = row.id("user_id").map_err(store_error)?;
            by_user
                .entry(user)
                .or_default()
                .push(crate::rows::user_team(row).map_err(store_error)?);
        }
        for user in &mut users {
            user.teams = by_user.remove(&user.id.0).unwrap_or_default();
        }
        Ok(users)
    }

    async fn update_user(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: i64,
    ) -> Result<User, AdminError> {
        let failed = |e| write_error(e, "a user with this email");
        let mut tx = self.db.begin().await.map_err(failed)?;
        let updated = query(
            "UPDATE users SET name = COALESCE(?, name), email = COALESCE(?, email), \
             password_hash = COALESCE(?, password_hash), updated_at = ? WHERE id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.email.as_deref())
        .bind(changes.password_hash.as_deref())
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        if updated.rows_affected == 0 {
            return Err(AdminError::NotFound(format!("user {id}")));
        }
        if let Some(roles) = &changes.roles {
            set_roles((&mut tx).into(), id, roles)
                .await
                .map_err(|e| write_error(e, "a team role"))?;
        }
        let user = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("user {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(user)
    }

    async fn delete_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let Some(user) = load((&mut tx).into(), id).await.map_err(store_error)? else {
            return Ok(None);
        };
        query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(user))
    }

    async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO sessions (token_hash, user_id, created_at, accessed_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(now)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> Result<Option<(User, i64)>, StoreError> {
        let row = query("SELECT user_id, accessed_at FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = UserId(row.id("user_id").map_err(store_error)?);
        let accessed = row.int("accessed_at").map_err(store_error)?;
        let user = load((&self.db).into(), user).await.map_err(store_error)?;
        Ok(user.map(|u| (u, accessed)))
    }

    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        let d = self.db.dialect();
        query(sql!(
            d,
            "UPDATE sessions SET accessed_at = ",
            GREATEST,
            "(accessed_at, ?) WHERE token_hash = ?"
        ))
        .bind(now)
        .bind(token_hash)
        .execute(&self.db)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let done = query("DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?")
            .bind(user)
            .bind(keep.unwrap_or_default())
            .execute(&self.db)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected)
    }
}
