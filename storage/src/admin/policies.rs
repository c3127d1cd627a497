//! [`PolicyStore`] for [`SqlStore`]: global (`team_id` NULL) and team policies, and each host's
//! latest answer to them (`policy_membership`, written by the batched host flush through
//! [`write_results`]). Pass/fail counts are counted from `policy_membership` when read, so they
//! are current as soon as a flush has written the answers.

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{
    AdminError, HostPolicy, Policy, PolicyFields, PolicyId, PolicySpec, PolicyStore, UserId,
};
use crate::common::{id_array, store_error};
use crate::rows::ModelRow;
use crate::sql::{Exec, Row, Tx, query, sql};

/// Every policy column, its author and its counts (`passes` 1 pass, 0 fail, NULL unknown).
macro_rules! select_policies {
    () => {
        "SELECT p.id, p.team_id, p.name, p.query, p.description, p.resolution, p.platform, \
         p.critical, p.author_id, COALESCE(u.name, '') AS author_name, \
         COALESCE(u.email, '') AS author_email, p.created_at, p.updated_at, \
         (SELECT COUNT(*) FROM policy_membership m WHERE m.policy_id = p.id AND m.passes = 1) \
             AS passing_host_count, \
         (SELECT COUNT(*) FROM policy_membership m WHERE m.policy_id = p.id AND m.passes = 0) \
             AS failing_host_count, \
         (SELECT MAX(m.updated_at) FROM policy_membership m WHERE m.policy_id = p.id) \
             AS counts_updated_at \
         FROM policies p LEFT JOIN users u ON u.id = p.author_id"
    };
}

const NAME_TAKEN: &str = "a policy with this name in this team";

fn policies(rows: &[Row]) -> Result<Vec<Policy>, StoreError> {
    rows.iter()
        .map(crate::rows::policy)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

async fn load(on: Exec<'_>, id: PolicyId) -> Result<Option<Policy>, sqlx::Error> {
    let row = query(concat!(select_policies!(), " WHERE p.id = ?"))
        .bind(id)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(crate::rows::policy).transpose()
}

async fn by_name(
    tx: &mut Tx,
    team: Option<TeamId>,
    name: &str,
) -> Result<Option<Policy>, sqlx::Error> {
    let d = tx.dialect();
    let row = query(sql!(
        d,
        select_policies!(),
        " WHERE p.team_id ",
        IS,
        " ? AND p.name = ?",
        FOR_UPDATE
    ))
    .bind(team)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(crate::rows::policy).transpose()
}

/// Refuses a policy of a team that does not exist (what a foreign key would check; MySQL's
/// table has none, its migration says why).
async fn check_team(tx: &mut Tx, team: Option<TeamId>) -> Result<(), AdminError> {
    if let Some(team) = team
        && !super::teams::team_exists(tx, team)
            .await
            .map_err(|e| write_error(e, NAME_TAKEN))?
    {
        return Err(AdminError::Invalid(format!("team {team} does not exist")));
    }
    Ok(())
}

async fn insert(
    tx: &mut Tx,
    team: Option<TeamId>,
    fields: &PolicyFields,
    author: Option<UserId>,
    now: i64,
) -> Result<PolicyId, sqlx::Error> {
    let inserted = query(
        "INSERT INTO policies (team_id, name, query, description, resolution, platform, \
         critical, author_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(team)
    .bind(&fields.name)
    .bind(&fields.query)
    .bind(&fields.description)
    .bind(&fields.resolution)
    .bind(&fields.platform)
    .bind(fields.critical)
    .bind(author)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(PolicyId(inserted.last_insert_id))
}

/// Writes `fields` over policy `id`; forgets the hosts' answers if the query or the platform
/// changed. Returns false if there is no such policy.
async fn replace(
    tx: &mut Tx,
    before: &PolicyFields,
    id: PolicyId,
    fields: &PolicyFields,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let updated = query(
        "UPDATE policies SET name = ?, query = ?, description = ?, resolution = ?, \
         platform = ?, critical = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&fields.name)
    .bind(&fields.query)
    .bind(&fields.description)
    .bind(&fields.resolution)
    .bind(&fields.platform)
    .bind(fields.critical)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected == 0 {
        // MySQL counts only changed rows; the policy may be there with the same fields.
        let exists = query("SELECT id FROM policies WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
    }
    if before.query != fields.query || before.platform != fields.platform {
        query("DELETE FROM policy_membership WHERE policy_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(true)
}

/// Writes a host's policy answers inside the caller's transaction (the batched host flush):
/// one upsert per kind of answer (pass, fail, unknown). Only policies that exist and are
/// global or of the host's current team are written, so an answer that crossed a team move
/// or a deletion leaves nothing behind.
pub(crate) async fn write_results(
    tx: &mut Tx,
    host: HostId,
    results: &[(u64, Option<bool>)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    // The last answer for a policy wins, as when they are applied one by one.
    let latest: std::collections::BTreeMap<u64, Option<bool>> = results.iter().copied().collect();
    for response in [Some(true), Some(false), None] {
        let ids: Vec<u64> = latest
            .iter()
            .filter(|(_, r)| **r == response)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        query(sql!(
            d,
            "INSERT INTO policy_membership (policy_id, host_id, passes, updated_at) \
             SELECT p.id, h.id, ?, ? FROM policies p, hosts h WHERE p.id IN ",
            ID_SET,
            " AND h.id = ? AND (p.team_id IS NULL OR p.team_id = h.team_id) ",
            UPSERT("policy_id, host_id"),
            " passes = ",
            EXCLUDED(passes),
            ", updated_at = ",
            EXCLUDED(updated_at)
        ))
        .bind(response.map(i64::from))
        .bind(now)
        .bind(id_array(ids))
        .bind(host)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Forgets the answers of `hosts` to team policies other than `team`'s: they moved to it.
pub(crate) async fn forget_other_teams(
    tx: &mut Tx,
    team: Option<TeamId>,
    hosts: &str,
) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    query(sql!(
        d,
        "DELETE FROM policy_membership WHERE host_id IN ",
        ID_SET,
        " AND policy_id IN (SELECT id FROM policies WHERE team_id IS NOT NULL \
         AND NOT (team_id ",
        IS,
        " ?))"
    ))
    .bind(hosts)
    .bind(team)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl PolicyStore for SqlStore {
    async fn create_policy(
        &self,
        team: Option<TeamId>,
        fields: &PolicyFields,
        author: Option<UserId>,
        now: i64,
    ) -> Result<Policy, AdminError> {
        let failed = |e| write_error(e, NAME_TAKEN);
        let mut tx = self.db.begin().await.map_err(failed)?;
        check_team(&mut tx, team).await?;
        let id = insert(&mut tx, team, fields, author, now)
            .await
            .map_err(failed)?;
        let created = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("policy {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(created)
    }

    async fn policies(&self, team: Option<TeamId>) -> Result<Vec<Policy>, StoreError> {
        let d = self.db.dialect();
        let rows = query(sql!(
            d,
            select_policies!(),
            " WHERE p.team_id ",
            IS,
            " ? ORDER BY p.name, p.id"
        ))
        .bind(team)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        policies(&rows)
    }

    async fn policy_count(&self, team: Option<TeamId>) -> Result<u64, StoreError> {
        let d = self.db.dialect();
        let row = query(sql!(
            d,
            "SELECT COUNT(*) AS n FROM policies WHERE team_id ",
            IS,
            " ?"
        ))
        .bind(team)
        .fetch_one(&self.db)
        .await
        .map_err(store_error)?;
        Ok(row.int("n").map_err(store_error)?.max(0) as u64)
    }

    async fn all_policies(&self) -> Result<Vec<Policy>, StoreError> {
        let rows = query(concat!(select_policies!(), " ORDER BY p.id"))
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?;
        policies(&rows)
    }

    async fn policy(&self, id: PolicyId) -> Result<Option<Policy>, StoreError> {
        load((&self.db).into(), id).await.map_err(store_error)
    }

    async fn update_policy(
        &self,
        id: PolicyId,
        fields: &PolicyFields,
        now: i64,
    ) -> Result<Policy, AdminError> {
        let failed = |e| write_error(e, NAME_TAKEN);
        let d = self.db.dialect();
        let mut tx = self.db.begin().await.map_err(failed)?;
        let row = query(sql!(d, select_policies!(), " WHERE p.id = ?", FOR_UPDATE))
            .bind(id)
            .fetch_optional(&mut tx)
            .await
            .map_err(failed)?;
        let before = row
            .as_ref()
            .map(crate::rows::policy)
            .transpose()
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("policy {id}")))?;
        if !replace(&mut tx, &before.fields, id, fields, now)
            .await
            .map_err(failed)?
        {
            return Err(AdminError::NotFound(format!("policy {id}")));
        }
        let changed = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("policy {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(changed)
    }

    async fn delete_policies(&self, ids: &[PolicyId]) -> Result<Vec<Policy>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.db.dialect();
        let ids = id_array(ids.iter().map(|p| p.0));
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let rows = query(sql!(
            d,
            select_policies!(),
            " WHERE p.id IN ",
            ID_SET,
            " ORDER BY p.id"
        ))
        .bind(&ids)
        .fetch_all(&mut tx)
        .await
        .map_err(store_error)?;
        let removed = policies(&rows)?;
        // The answers go first: MySQL's cascade would do it too, but one statement says so.
        for statement in [
            sql!(
                d,
                "DELETE FROM policy_membership WHERE policy_id IN ",
                ID_SET
            ),
            sql!(d, "DELETE FROM policies WHERE id IN ", ID_SET),
        ] {
            query(statement)
                .bind(&ids)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(removed)
    }

    async fn apply_policy_specs(
        &self,
        specs: &[PolicySpec],
        author: Option<UserId>,
        now: i64,
    ) -> Result<Vec<Policy>, AdminError> {
        let failed = |e| write_error(e, NAME_TAKEN);
        let mut tx = self.db.begin().await.map_err(failed)?;
        let mut ids = Vec::with_capacity(specs.len());
        for spec in specs {
            check_team(&mut tx, spec.team).await?;
            let existing = by_name(&mut tx, spec.team, &spec.fields.name)
                .await
                .map_err(failed)?;
            let id = match existing {
                Some(existing) => {
                    replace(&mut tx, &existing.fields, existing.id, &spec.fields, now)
                        .await
                        .map_err(failed)?;
                    existing.id
                }
                None => insert(&mut tx, spec.team, &spec.fields, author, now)
                    .await
                    .map_err(failed)?,
            };
            ids.push(id);
        }
        let mut applied = Vec::with_capacity(ids.len());
        for id in ids {
            applied.push(
                load((&mut tx).into(), id)
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| AdminError::NotFound(format!("policy {id}")))?,
            );
        }
        tx.commit().await.map_err(failed)?;
        Ok(applied)
    }

    async fn host_policies(&self, host: HostId) -> Result<Vec<HostPolicy>, StoreError> {
        let Some(row) = query("SELECT team_id, platform FROM hosts WHERE id = ?")
            .bind(host)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?
        else {
            return Ok(Vec::new());
        };
        let team = row.opt_id("team_id").map_err(store_error)?.map(TeamId);
        let platform = row.text("platform").map_err(store_error)?;
        let d = self.db.dialect();
        let rows = query(sql!(
            d,
            "SELECT p.id, p.team_id, p.name, p.query, p.description, p.resolution, \
             p.platform, p.critical, m.passes FROM policies p \
             LEFT JOIN policy_membership m ON m.policy_id = p.id AND m.host_id = ? \
             WHERE p.team_id IS NULL OR p.team_id ",
            IS,
            " ? ORDER BY p.name, p.id"
        ))
        .bind(host)
        .bind(team)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let mut applying = Vec::with_capacity(rows.len());
        for row in &rows {
            let policy = crate::rows::host_policy(row).map_err(store_error)?;
            if flotilla_engine::policies::platform_matches(&policy.fields.platform, &platform) {
                applying.push(policy);
            }
        }
        Ok(applying)
    }

    async fn failing_policy_count(&self, host: HostId) -> Result<u64, StoreError> {
        let policies = self.host_policies(host).await?;
        Ok(policies
            .iter()
            .filter(|p| p.response == Some(false))
            .count() as u64)
    }
}
