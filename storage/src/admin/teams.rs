//! [`TeamStore`] for [`SqlStore`]: teams and enroll secrets (global ones have no team).

use std::collections::HashMap;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{AdminError, Team, TeamChanges, TeamSecret, TeamStore};
use crate::common::store_error;
use crate::rows::ModelRow;
use crate::sql::{Exec, Tx, query, sql};

macro_rules! select_teams {
    () => {
        "SELECT t.id, t.name, t.description, t.created_at, t.updated_at, \
         (SELECT COUNT(*) FROM user_teams ut WHERE ut.team_id = t.id) AS user_count, \
         (SELECT COUNT(*) FROM hosts h WHERE h.team_id = t.id) AS host_count FROM teams t"
    };
}

async fn secrets(on: Exec<'_>, team: Option<TeamId>) -> Result<Vec<TeamSecret>, sqlx::Error> {
    let d = on.dialect();
    let rows = query(sql!(
        d,
        "SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id ",
        IS,
        " ? \
         ORDER BY created_at, secret"
    ))
    .bind(team)
    .fetch_all(on)
    .await?;
    rows.iter().map(crate::rows::team_secret).collect()
}

async fn load(mut on: Exec<'_>, id: TeamId) -> Result<Option<Team>, sqlx::Error> {
    let row = query(concat!(select_teams!(), " WHERE t.id = ?"))
        .bind(id)
        .fetch_optional(on.on())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut team = crate::rows::team(&row)?;
    team.secrets = secrets(on, Some(id)).await?;
    Ok(Some(team))
}

/// Whether team `team` exists, inside a write transaction (locked on MySQL until it ends).
pub(crate) async fn team_exists(tx: &mut Tx, team: TeamId) -> Result<bool, sqlx::Error> {
    let d = tx.dialect();
    let row = query(sql!(d, "SELECT id FROM teams WHERE id = ?", FOR_UPDATE))
        .bind(team)
        .fetch_optional(tx)
        .await?;
    Ok(row.is_some())
}

#[async_trait]
impl TeamStore for SqlStore {
    async fn create_team(
        &self,
        name: &str,
        description: &str,
        secret: &str,
        now: i64,
    ) -> Result<Team, AdminError> {
        let failed = |e| write_error(e, "a team with this name");
        let mut tx = self.db.begin().await.map_err(failed)?;
        let inserted = query(
            "INSERT INTO teams (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        let id = TeamId(inserted.last_insert_id);
        query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)")
            .bind(secret)
            .bind(id)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(|e| write_error(e, "this enroll secret"))?;
        let team = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("team {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(team)
    }

    async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        let rows = query(concat!(select_teams!(), " ORDER BY t.name"))
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?;
        let mut teams: Vec<Team> = rows
            .iter()
            .map(crate::rows::team)
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        let rows = query(
            "SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id IS NOT NULL \
             ORDER BY created_at, secret",
        )
        .fetch_all(&self.db)
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

    async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError> {
        load((&self.db).into(), id).await.map_err(store_error)
    }

    async fn update_team(
        &self,
        id: TeamId,
        changes: &TeamChanges,
        now: i64,
    ) -> Result<Team, AdminError> {
        let failed = |e| write_error(e, "a team with this name");
        let mut tx = self.db.begin().await.map_err(failed)?;
        let updated = query(
            "UPDATE teams SET name = COALESCE(?, name), description = COALESCE(?, description), \
             updated_at = ? WHERE id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.description.as_deref())
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        if updated.rows_affected == 0 {
            return Err(AdminError::NotFound(format!("team {id}")));
        }
        let team = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("team {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(team)
    }

    async fn delete_team(&self, id: TeamId) -> Result<Option<(Team, Vec<HostId>)>, StoreError> {
        let d = self.db.dialect();
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let Some(team) = load((&mut tx).into(), id).await.map_err(store_error)? else {
            return Ok(None);
        };
        // Lock the team's hosts (they are the ones that move), then move them.
        let moved = query(sql!(
            d,
            "SELECT id FROM hosts WHERE team_id = ? ORDER BY id",
            FOR_UPDATE
        ))
        .bind(id)
        .fetch_all(&mut tx)
        .await
        .map_err(store_error)?;
        let moved: Vec<HostId> = moved
            .iter()
            .map(|row| row.id("id").map(HostId))
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        // The team's hosts move to no team; its saved queries, policies (with their answers)
        // and secrets go with it, and its users' roles on it (user_teams, ON DELETE CASCADE).
        for statement in [
            "UPDATE hosts SET team_id = NULL WHERE team_id = ?",
            "DELETE FROM queries WHERE team_id = ?",
            "DELETE FROM policy_membership WHERE policy_id IN \
             (SELECT id FROM policies WHERE team_id = ?)",
            "DELETE FROM policies WHERE team_id = ?",
            "DELETE FROM enroll_secrets WHERE team_id = ?",
            "DELETE FROM teams WHERE id = ?",
        ] {
            query(statement)
                .bind(id)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(Some((team, moved)))
    }

    async fn enroll_secrets_of(&self, team: Option<TeamId>) -> Result<Vec<TeamSecret>, StoreError> {
        secrets((&self.db).into(), team).await.map_err(store_error)
    }

    async fn replace_enroll_secrets(
        &self,
        team: Option<TeamId>,
        new_secrets: &[String],
        now: i64,
    ) -> Result<Vec<TeamSecret>, AdminError> {
        let failed = |e| write_error(e, "this enroll secret");
        let d = self.db.dialect();
        let mut tx = self.db.begin().await.map_err(failed)?;
        if let Some(team) = team
            && !team_exists(&mut tx, team).await.map_err(failed)?
        {
            return Err(AdminError::NotFound(format!("team {team}")));
        }
        // Secrets kept across the replacement keep their creation time.
        let previous: HashMap<String, i64> = secrets((&mut tx).into(), team)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|s| (s.secret, s.created_at))
            .collect();
        query(sql!(
            d,
            "DELETE FROM enroll_secrets WHERE team_id ",
            IS,
            " ?"
        ))
        .bind(team)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        for secret in new_secrets {
            query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)")
                .bind(secret)
                .bind(team)
                .bind(previous.get(secret).copied().unwrap_or(now))
                .execute(&mut tx)
                .await
                .map_err(|e| match write_error(e, "this enroll secret") {
                    AdminError::Conflict(_) => {
                        AdminError::Conflict("an enroll secret is already in use".into())
                    }
                    other => other,
                })?;
        }
        let stored = secrets((&mut tx).into(), team).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(stored)
    }
}
