//! Labels: builtin (members by platform), manual (members chosen by people) and dynamic
//! (members recorded from the hosts' answers to the label's query).

use flotilla_engine::ids::HostId;
use flotilla_engine::store::StoreError;
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use super::hosts::{LABEL_MEMBER, push_scope};
use super::{JSON_IDS, host_ids, id_array, store_error, write_error};
use crate::admin::{
    AdminError, HostScope, Label, LabelChanges, LabelId, LabelMembership, LabelQuery, LabelType,
    NewLabel,
};

macro_rules! label_columns {
    () => {
        "l.id, l.name, l.description, l.query, l.platform, l.label_type, \
         l.label_membership_type, l.created_at, l.updated_at"
    };
}

/// `SELECT <label columns>, <host count within scope> AS host_count FROM labels l`.
fn select_labels(scope: &HostScope) -> QueryBuilder<MySql> {
    let mut query = QueryBuilder::<MySql>::new(concat!(
        "SELECT ",
        label_columns!(),
        ", (SELECT COUNT(*) FROM hosts h WHERE "
    ));
    query.push(LABEL_MEMBER);
    push_scope(&mut query, scope);
    query.push(") AS host_count FROM labels l");
    query
}

async fn load(
    conn: &mut MySqlConnection,
    id: LabelId,
    scope: &HostScope,
) -> Result<Option<Label>, sqlx::Error> {
    let mut query = select_labels(scope);
    query.push(" WHERE l.id = ").push_bind(id.0);
    let row = query.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(crate::rows::label).transpose()
}

async fn set_members(
    conn: &mut MySqlConnection,
    id: LabelId,
    hosts: &[HostId],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM label_membership WHERE label_id = ?")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO label_membership (label_id, host_id, updated_at) \
         SELECT ?, h.id, ? FROM hosts h WHERE h.id IN (SELECT id FROM {JSON_IDS})"
    )))
    .bind(id.0)
    .bind(now)
    .bind(id_array(hosts.iter().map(|h| h.0)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn create(pool: &MySqlPool, label: &NewLabel, now: i64) -> Result<Label, AdminError> {
    let failed = |e| write_error(e, "a label with this name");
    let mut tx = pool.begin().await.map_err(failed)?;
    let inserted = sqlx::query(
        "INSERT INTO labels (name, description, query, platform, label_type, \
         label_membership_type, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'regular', ?, ?, ?)",
    )
    .bind(&label.name)
    .bind(&label.description)
    .bind(&label.query)
    .bind(&label.platform)
    .bind(label.membership.as_str())
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let id = LabelId(inserted.last_insert_id());
    if label.membership == LabelMembership::Manual {
        set_members(&mut tx, id, &label.hosts, now)
            .await
            .map_err(failed)?;
    }
    let created = load(&mut tx, id, &HostScope::All)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("label {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(created)
}

pub async fn list(pool: &MySqlPool, scope: &HostScope) -> Result<Vec<Label>, StoreError> {
    let mut query = select_labels(scope);
    query.push(" ORDER BY l.id");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::label)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn get(
    pool: &MySqlPool,
    id: LabelId,
    scope: &HostScope,
) -> Result<Option<Label>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    load(&mut conn, id, scope).await.map_err(store_error)
}

pub async fn by_name(pool: &MySqlPool, name: &str) -> Result<Option<Label>, StoreError> {
    let mut query = select_labels(&HostScope::All);
    query.push(" WHERE l.name = ").push_bind(name);
    let row = query
        .build()
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    row.as_ref()
        .map(crate::rows::label)
        .transpose()
        .map_err(store_error)
}

pub async fn ids_by_names(pool: &MySqlPool, names: &[String]) -> Result<Vec<LabelId>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // A handful of names: one placeholder each, compared with the column's own collation.
    let mut query = QueryBuilder::<MySql>::new("SELECT id FROM labels WHERE name IN (");
    let mut list = query.separated(", ");
    for name in names {
        list.push_bind(name.as_str());
    }
    query.push(") ORDER BY id");
    let ids: Vec<u64> = query
        .build_query_scalar()
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    Ok(ids.into_iter().map(LabelId).collect())
}

pub async fn manual_hosts(pool: &MySqlPool, id: LabelId) -> Result<Vec<HostId>, StoreError> {
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT m.host_id FROM label_membership m JOIN labels l ON l.id = m.label_id \
         WHERE m.label_id = ? AND l.label_membership_type = 'manual' ORDER BY m.host_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(host_ids(ids))
}

pub async fn update(
    pool: &MySqlPool,
    id: LabelId,
    changes: &LabelChanges,
    now: i64,
) -> Result<Label, AdminError> {
    let failed = |e| write_error(e, "a label with this name");
    let mut tx = pool.begin().await.map_err(failed)?;
    let label = load(&mut tx, id, &HostScope::All)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("label {id}")))?;
    if label.label_type == LabelType::Builtin {
        return Err(AdminError::Invalid(format!(
            "built-in label `{}` can't be modified",
            label.name
        )));
    }
    if changes.hosts.is_some() && label.membership != LabelMembership::Manual {
        return Err(AdminError::Invalid(
            "only a manual label's hosts can be set".into(),
        ));
    }
    sqlx::query(
        "UPDATE labels SET name = COALESCE(?, name), description = COALESCE(?, description), \
         updated_at = ? WHERE id = ?",
    )
    .bind(changes.name.as_deref())
    .bind(changes.description.as_deref())
    .bind(now)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    if let Some(hosts) = &changes.hosts {
        set_members(&mut tx, id, hosts, now).await.map_err(failed)?;
    }
    let updated = load(&mut tx, id, &HostScope::All)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("label {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(updated)
}

pub async fn delete(pool: &MySqlPool, id: LabelId) -> Result<Option<Label>, AdminError> {
    let failed = |e| AdminError::Store(store_error(e));
    let mut tx = pool.begin().await.map_err(failed)?;
    let Some(label) = load(&mut tx, id, &HostScope::All).await.map_err(failed)? else {
        return Ok(None);
    };
    if label.label_type == LabelType::Builtin {
        return Err(AdminError::Invalid(format!(
            "built-in label `{}` can't be deleted",
            label.name
        )));
    }
    sqlx::query("DELETE FROM labels WHERE id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Some(label))
}

pub async fn of_host(pool: &MySqlPool, host: HostId) -> Result<Vec<Label>, StoreError> {
    let mut query = select_labels(&HostScope::All);
    query
        .push(" WHERE EXISTS (SELECT 1 FROM hosts h WHERE h.id = ")
        .push_bind(host.0)
        .push(" AND ")
        .push(LABEL_MEMBER)
        .push(") ORDER BY l.id");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::label)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn dynamic_queries(pool: &MySqlPool) -> Result<Vec<LabelQuery>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, query, platform FROM labels WHERE label_type <> 'builtin' \
         AND label_membership_type = 'dynamic' AND query <> '' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(crate::rows::label_query)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

/// Writes a host's dynamic-label answers inside the caller's transaction (the batched host
/// flush). Only dynamic labels that still exist, and a host that still exists, are touched: a
/// late answer for a deleted label or host is dropped, and no answer ever edits a manual label.
/// Memberships gained go in one multi-row upsert, memberships lost in one delete.
pub(crate) async fn write_results(
    tx: &mut sqlx::MySqlConnection,
    host: HostId,
    results: &[(u64, bool)],
    now: i64,
) -> Result<(), sqlx::Error> {
    // The last answer for a label wins, as when they are applied one by one.
    let latest: std::collections::BTreeMap<u64, bool> = results.iter().copied().collect();
    let (members, not_members): (Vec<u64>, Vec<u64>) = {
        let (yes, no): (Vec<_>, Vec<_>) = latest.iter().partition(|(_, member)| **member);
        (
            yes.into_iter().map(|(l, _): (&u64, &bool)| *l).collect(),
            no.into_iter().map(|(l, _): (&u64, &bool)| *l).collect(),
        )
    };
    if !members.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO label_membership (label_id, host_id, updated_at) \
             SELECT l.id, h.id, ? FROM labels l, hosts h WHERE l.id IN (SELECT id FROM {JSON_IDS}) \
             AND h.id = ? AND l.label_type <> 'builtin' AND l.label_membership_type = 'dynamic' \
             ON DUPLICATE KEY UPDATE updated_at = VALUES(updated_at)"
        )))
        .bind(now)
        .bind(id_array(members))
        .bind(host.0)
        .execute(&mut *tx)
        .await?;
    }
    if !not_members.is_empty() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM label_membership WHERE host_id = ? \
             AND label_id IN (SELECT id FROM {JSON_IDS}) \
             AND label_id IN (SELECT id FROM labels WHERE label_membership_type = 'dynamic')"
        )))
        .bind(host.0)
        .bind(id_array(not_members))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
