//! Users, their team roles and their sessions.

use std::collections::HashMap;

use flotilla_engine::store::StoreError;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{store_error, write_error};
use crate::admin::{AdminError, NewUser, Roles, User, UserChanges, UserId, UserTeam};

macro_rules! user_columns {
    () => {
        "id, name, email, global_role, api_only, enabled, force_password_reset, created_at, \
         updated_at"
    };
}

async fn load(conn: &mut SqliteConnection, id: UserId) -> Result<Option<User>, sqlx::Error> {
    let Some(row) = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = ?"
    ))
    .bind(id.0 as i64)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let mut user = crate::rows::user(&row)?;
    let teams = sqlx::query(
        "SELECT ut.team_id, t.name AS team_name, ut.role FROM user_teams ut \
         JOIN teams t ON t.id = ut.team_id WHERE ut.user_id = ? ORDER BY t.name",
    )
    .bind(id.0 as i64)
    .fetch_all(&mut *conn)
    .await?;
    user.teams = teams
        .iter()
        .map(crate::rows::user_team)
        .collect::<Result<_, _>>()?;
    Ok(Some(user))
}

async fn set_roles(
    conn: &mut SqliteConnection,
    id: UserId,
    roles: &Roles,
) -> Result<(), sqlx::Error> {
    let global = match roles {
        Roles::Global(role) => Some(role.as_str()),
        Roles::Teams(_) => None,
    };
    sqlx::query("UPDATE users SET global_role = ? WHERE id = ?")
        .bind(global)
        .bind(id.0 as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM user_teams WHERE user_id = ?")
        .bind(id.0 as i64)
        .execute(&mut *conn)
        .await?;
    if let Roles::Teams(teams) = roles {
        for (team, role) in teams {
            sqlx::query("INSERT INTO user_teams (user_id, team_id, role) VALUES (?, ?, ?)")
                .bind(id.0 as i64)
                .bind(team.0 as i64)
                .bind(role)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

pub async fn count(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Ok(n as u64)
}

pub async fn global_admin_count(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE global_role = 'admin'")
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Ok(n as u64)
}

/// Inserts a user; with `only_if_first`, only when there is no user at all (in the same
/// statement, so two concurrent setups cannot both succeed).
pub async fn create(
    pool: &SqlitePool,
    user: &NewUser,
    now: i64,
    only_if_first: bool,
) -> Result<Option<User>, AdminError> {
    let email_taken = |e| write_error(e, "a user with this email");
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(email_taken)?;
    let sql = if only_if_first {
        "INSERT INTO users (name, email, password_hash, api_only, created_at, updated_at) \
         SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING id"
    } else {
        "INSERT INTO users (name, email, password_hash, api_only, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
    };
    let row = sqlx::query(sql)
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.api_only)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(email_taken)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id = UserId(row.try_get::<i64, _>("id").map_err(email_taken)? as u64);
    set_roles(&mut tx, id, &user.roles)
        .await
        .map_err(|e| write_error(e, "a team role"))?;
    let created = load(&mut tx, id).await.map_err(email_taken)?;
    tx.commit().await.map_err(email_taken)?;
    Ok(created)
}

pub async fn get(pool: &SqlitePool, id: UserId) -> Result<Option<User>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    load(&mut conn, id).await.map_err(store_error)
}

pub async fn by_email(
    pool: &SqlitePool,
    email: &str,
) -> Result<Option<(User, String)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = ?")
        .bind(email)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id = UserId(row.try_get::<i64, _>("id").map_err(store_error)? as u64);
    let hash: String = row.try_get("password_hash").map_err(store_error)?;
    let user = load(&mut conn, id).await.map_err(store_error)?;
    Ok(user.map(|u| (u, hash)))
}

pub async fn password_hash(pool: &SqlitePool, id: UserId) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = ?")
        .bind(id.0 as i64)
        .fetch_optional(pool)
        .await
        .map_err(store_error)
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<User>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users ORDER BY name, id"
    ))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut users: Vec<User> = rows
        .iter()
        .map(crate::rows::user)
        .collect::<Result<_, _>>()
        .map_err(store_error)?;
    let roles = sqlx::query(
        "SELECT ut.user_id, ut.team_id, t.name AS team_name, ut.role FROM user_teams ut \
         JOIN teams t ON t.id = ut.team_id ORDER BY t.name",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut by_user: HashMap<u64, Vec<UserTeam>> = HashMap::new();
    for row in &roles {
        let user = row.try_get::<i64, _>("user_id").map_err(store_error)? as u64;
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

pub async fn update(
    pool: &SqlitePool,
    id: UserId,
    changes: &UserChanges,
    now: i64,
) -> Result<User, AdminError> {
    let failed = |e| write_error(e, "a user with this email");
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(failed)?;
    let updated = sqlx::query(
        "UPDATE users SET name = COALESCE(?, name), email = COALESCE(?, email), \
         password_hash = COALESCE(?, password_hash), updated_at = ? WHERE id = ?",
    )
    .bind(changes.name.as_deref())
    .bind(changes.email.as_deref())
    .bind(changes.password_hash.as_deref())
    .bind(now)
    .bind(id.0 as i64)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    if updated.rows_affected() == 0 {
        return Err(AdminError::NotFound(format!("user {id}")));
    }
    if let Some(roles) = &changes.roles {
        set_roles(&mut tx, id, roles)
            .await
            .map_err(|e| write_error(e, "a team role"))?;
    }
    let user = load(&mut tx, id)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("user {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(user)
}

pub async fn delete(pool: &SqlitePool, id: UserId) -> Result<Option<User>, StoreError> {
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(store_error)?;
    let Some(user) = load(&mut tx, id).await.map_err(store_error)? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id.0 as i64)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some(user))
}

pub async fn create_session(
    pool: &SqlitePool,
    user: UserId,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, created_at, accessed_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_hash)
    .bind(user.0 as i64)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub async fn session(
    pool: &SqlitePool,
    token_hash: &str,
) -> Result<Option<(User, i64)>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let row = sqlx::query("SELECT user_id, accessed_at FROM sessions WHERE token_hash = ?")
        .bind(token_hash)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let user = UserId(row.try_get::<i64, _>("user_id").map_err(store_error)? as u64);
    let accessed: i64 = row.try_get("accessed_at").map_err(store_error)?;
    let user = load(&mut conn, user).await.map_err(store_error)?;
    Ok(user.map(|u| (u, accessed)))
}

pub async fn touch_session(
    pool: &SqlitePool,
    token_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET accessed_at = MAX(accessed_at, ?) WHERE token_hash = ?")
        .bind(now)
        .bind(token_hash)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}

pub async fn delete_session(pool: &SqlitePool, token_hash: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
        .bind(token_hash)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}
