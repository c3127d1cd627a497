//! Teams and enroll secrets (global ones have no team).

use std::collections::HashMap;

use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;
use sqlx::{MySqlConnection, MySqlPool};

use super::{host_ids, store_error, write_error};
use crate::admin::{AdminError, Team, TeamChanges, TeamSecret};

const SELECT_TEAMS: &str = "SELECT t.id, t.name, t.description, t.created_at, t.updated_at, \
     (SELECT COUNT(*) FROM user_teams ut WHERE ut.team_id = t.id) AS user_count, \
     (SELECT COUNT(*) FROM hosts h WHERE h.team_id = t.id) AS host_count FROM teams t";

async fn secrets(
    conn: &mut MySqlConnection,
    team: Option<TeamId>,
) -> Result<Vec<TeamSecret>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id <=> ? \
         ORDER BY created_at, secret",
    )
    .bind(team.map(|t| t.0))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(crate::rows::team_secret).collect()
}

async fn load(conn: &mut MySqlConnection, id: TeamId) -> Result<Option<Team>, sqlx::Error> {
    let sql = format!("{SELECT_TEAMS} WHERE t.id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut team = crate::rows::team(&row)?;
    team.secrets = secrets(conn, Some(id)).await?;
    Ok(Some(team))
}

pub async fn create(
    pool: &MySqlPool,
    name: &str,
    description: &str,
    secret: &str,
    now: i64,
) -> Result<Team, AdminError> {
    let failed = |e| write_error(e, "a team with this name");
    let mut tx = pool.begin().await.map_err(failed)?;
    let inserted = sqlx::query(
        "INSERT INTO teams (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
    )
    .bind(name)
    .bind(description)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let id = inserted.last_insert_id();
    sqlx::query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)")
        .bind(secret)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, "this enroll secret"))?;
    let team = load(&mut tx, TeamId(id))
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("team {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(team)
}

pub async fn list(pool: &MySqlPool) -> Result<Vec<Team>, StoreError> {
    let sql = format!("{SELECT_TEAMS} ORDER BY t.name");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    let mut teams: Vec<Team> = rows
        .iter()
        .map(crate::rows::team)
        .collect::<Result<_, _>>()
        .map_err(store_error)?;
    let rows = sqlx::query(
        "SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id IS NOT NULL \
         ORDER BY created_at, secret",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut by_team: HashMap<TeamId, Vec<TeamSecret>> = HashMap::new();
    for row in &rows {
        let secret = crate::rows::team_secret(row).map_err(store_error)?;
        if let Some(team) = secret.team {
            by_team.entry(team).or_default().push(secret);
        }
    }
    for team in &mut teams {
        team.secrets = by_team.remove(&team.id).unwrap_or_default();
    }
    Ok(teams)
}

pub async fn get(pool: &MySqlPool, id: TeamId) -> Result<Option<Team>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    load(&mut conn, id).await.map_err(store_error)
}

pub async fn update(
    pool: &MySqlPool,
    id: TeamId,
    changes: &TeamChanges,
    now: i64,
) -> Result<Team, AdminError> {
    let failed = |e| write_error(e, "a team with this name");
    let mut tx = pool.begin().await.map_err(failed)?;
    let updated = sqlx::query(
        "UPDATE teams SET name = COALESCE(?, name), description = COALESCE(?, description), \
         updated_at = ? WHERE id = ?",
    )
    .bind(changes.name.as_deref())
    .bind(changes.description.as_deref())
    .bind(now)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    if updated.rows_affected() == 0 {
        return Err(AdminError::NotFound(format!("team {id}")));
    }
    let team = load(&mut tx, id)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("team {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(team)
}

pub async fn delete(
    pool: &MySqlPool,
    id: TeamId,
) -> Result<Option<(Team, Vec<HostId>)>, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let Some(team) = load(&mut tx, id).await.map_err(store_error)? else {
        return Ok(None);
    };
    // No RETURNING on MySQL: lock the team's hosts, then move them.
    let moved: Vec<u64> =
        sqlx::query_scalar("SELECT id FROM hosts WHERE team_id = ? ORDER BY id FOR UPDATE")
            .bind(id.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?;
    sqlx::query("UPDATE hosts SET team_id = NULL WHERE team_id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    // queries.team_id has no foreign key here (see the migration): delete them by hand.
    sqlx::query("DELETE FROM queries WHERE team_id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    sqlx::query("DELETE FROM enroll_secrets WHERE team_id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    // user_teams go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM teams WHERE id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some((team, host_ids(moved))))
}

pub async fn secrets_of(
    pool: &MySqlPool,
    team: Option<TeamId>,
) -> Result<Vec<TeamSecret>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    secrets(&mut conn, team).await.map_err(store_error)
}

pub async fn replace_secrets(
    pool: &MySqlPool,
    team: Option<TeamId>,
    new_secrets: &[String],
    now: i64,
) -> Result<Vec<TeamSecret>, AdminError> {
    let failed = |e| write_error(e, "this enroll secret");
    let mut tx = pool.begin().await.map_err(failed)?;
    if let Some(team) = team {
        let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM teams WHERE id = ?")
            .bind(team.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        if exists.is_none() {
            return Err(AdminError::NotFound(format!("team {team}")));
        }
    }
    // Secrets kept across the replacement keep their creation time.
    let previous: HashMap<String, i64> = secrets(&mut tx, team)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|s| (s.secret, s.created_at))
        .collect();
    sqlx::query("DELETE FROM enroll_secrets WHERE team_id <=> ?")
        .bind(team.map(|t| t.0))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    for secret in new_secrets {
        sqlx::query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)")
            .bind(secret)
            .bind(team.map(|t| t.0))
            .bind(previous.get(secret).copied().unwrap_or(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| match write_error(e, "this enroll secret") {
                AdminError::Conflict(_) => {
                    AdminError::Conflict("an enroll secret is already in use".into())
                }
                other => other,
            })?;
    }
    let stored = secrets(&mut tx, team).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(stored)
}
