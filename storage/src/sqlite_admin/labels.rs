//! Labels: builtin (members by platform), manual (members chosen by people) and dynamic
//! (members recorded from the hosts' answers to the label's query).

use flotilla_engine::ids::HostId;
use flotilla_engine::store::StoreError;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::hosts::{LABEL_MEMBER, push_scope};
use super::{id_array, store_error, write_error};
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
fn select_labels(scope: &HostScope) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::<Sqlite>::new(concat!(
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
    conn: &mut SqliteConnection,
    id: LabelId,
    scope: &HostScope,
) -> Result<Option<Label>, sqlx::Error> {
    let mut query = select_labels(scope);
    query.push(" WHERE l.id = ").push_bind(id.0 as i64);
    let row = query.build().fetch_optional(&mut *conn).await?;
    row.as_ref().map(crate::rows::label).transpose()
}

async fn set_members(
    conn: &mut SqliteConnection,
    id: LabelId,
    hosts: &[HostId],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM label_membership WHERE label_id = ?")
        .bind(id.0 as i64)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO label_membership (label_id, host_id, updated_at) \
         SELECT ?, h.id, ? FROM hosts h WHERE h.id IN (SELECT value FROM json_each(?))",
    )
    .bind(id.0 as i64)
    .bind(now)
    .bind(id_array(hosts.iter().map(|h| h.0)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn create(pool: &SqlitePool, label: &NewLabel, now: i64) -> Result<Label, AdminError> {
    let failed = |e| write_error(e, "a label with this name");
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(failed)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO labels (name, description, query, platform, label_type, \
         label_membership_type, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 'regular', ?, ?, ?) RETURNING id",
    )
    .bind(&label.name)
    .bind(&label.description)
    .bind(&label.query)
    .bind(&label.platform)
    .bind(label.membership.as_str())
    .bind(now)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(failed)?;
    let id = LabelId(id as u64);
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

pub async fn list(pool: &SqlitePool, scope: &HostScope) -> Result<Vec<Label>, StoreError> {
    let mut query = select_labels(scope);
    query.push(" ORDER BY l.id");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::label)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn get(
    pool: &SqlitePool,
    id: LabelId,
    scope: &HostScope,
) -> Result<Option<Label>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    load(&mut conn, id, scope).await.map_err(store_error)
}

pub async fn by_name(pool: &SqlitePool, name: &str) -> Result<Option<Label>, StoreError> {
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

pub async fn ids_by_names(pool: &SqlitePool, names: &[String]) -> Result<Vec<LabelId>, StoreError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let list = serde_json::to_string(names).expect("strings serialise");
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM labels WHERE name IN (SELECT value FROM json_each(?)) ORDER BY id",
    )
    .bind(list)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(ids.into_iter().map(|id| LabelId(id as u64)).collect())
}

pub async fn manual_hosts(pool: &SqlitePool, id: LabelId) -> Result<Vec<HostId>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT m.host_id FROM label_membership m JOIN labels l ON l.id = m.label_id \
         WHERE m.label_id = ? AND l.label_membership_type = 'manual' ORDER BY m.host_id",
    )
    .bind(id.0 as i64)
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(ids.into_iter().map(|id| HostId(id as u64)).collect())
}

pub async fn update(
    pool: &SqlitePool,
    id: LabelId,
    changes: &LabelChanges,
    now: i64,
) -> Result<Label, AdminError> {
    let failed = |e| write_error(e, "a label with this name");
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(failed)?;
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
    .bind(id.0 as i64)
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

pub async fn delete(pool: &SqlitePool, id: LabelId) -> Result<Option<Label>, AdminError> {
    let failed = |e| AdminError::Store(store_error(e));
    let mut tx = crate::sqlite_store::write_transaction(pool)
        .await
        .map_err(failed)?;
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
        .bind(id.0 as i64)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Some(label))
}

pub async fn of_host(pool: &SqlitePool, host: HostId) -> Result<Vec<Label>, StoreError> {
    let mut query = select_labels(&HostScope::All);
    query
        .push(" WHERE EXISTS (SELECT 1 FROM hosts h WHERE h.id = ")
        .push_bind(host.0 as i64)
        .push(" AND ")
        .push(LABEL_MEMBER)
        .push(") ORDER BY l.id");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::label)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn dynamic_queries(pool: &SqlitePool) -> Result<Vec<LabelQuery>, StoreError> {
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
pub(crate) async fn write_results(
    tx: &mut sqlx::SqliteConnection,
    host: HostId,
    results: &[(u64, bool)],
    now: i64,
) -> Result<(), sqlx::Error> {
    for &(label, member) in results {
        if member {
            sqlx::query(
                "INSERT INTO label_membership (label_id, host_id, updated_at) \
                 SELECT l.id, h.id, ? FROM labels l, hosts h WHERE l.id = ? AND h.id = ? \
                 AND l.label_type <> 'builtin' AND l.label_membership_type = 'dynamic' \
                 ON CONFLICT (label_id, host_id) DO UPDATE SET updated_at = excluded.updated_at",
            )
            .bind(now)
            .bind(label as i64)
            .bind(host.0 as i64)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "DELETE FROM label_membership WHERE label_id = ? AND host_id = ? \
                 AND label_id IN (SELECT id FROM labels WHERE label_membership_type = 'dynamic')",
            )
            .bind(label as i64)
            .bind(host.0 as i64)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}
