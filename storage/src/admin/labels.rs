//! [`LabelStore`] for [`SqlStore`]. Labels are builtin (members by platform), manual (members
//! chosen by people) or dynamic (members recorded from the hosts' answers to the label's
//! query, through [`write_results`] in the batched host flush).

use async_trait::async_trait;
use flotilla_engine::ids::HostId;
use flotilla_engine::store::StoreError;

use super::hosts::{label_member, push_scope};
use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{
    AdminError, HostScope, Label, LabelChanges, LabelId, LabelMembership, LabelQuery, LabelStore,
    LabelType, NewLabel,
};
use crate::common::{id_array, store_error};
use crate::rows::ModelRow;
use crate::sql::{Dialect, Exec, Query, Row, Tx, query, sql};

macro_rules! label_columns {
    () => {
        "l.id, l.name, l.description, l.query, l.platform, l.label_type, \
         l.label_membership_type, l.created_at, l.updated_at"
    };
}

/// `SELECT <label columns>, <host count within scope> AS host_count FROM labels l`.
fn select_labels<'a>(d: Dialect, scope: &HostScope) -> Query<'a> {
    let mut select = query(concat!(
        "SELECT ",
        label_columns!(),
        ", (SELECT COUNT(*) FROM hosts h WHERE ",
        label_member!()
    ));
    push_scope(&mut select, d, scope);
    select.push(") AS host_count FROM labels l");
    select
}

fn labels(rows: &[Row]) -> Result<Vec<Label>, StoreError> {
    rows.iter()
        .map(crate::rows::label)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

async fn load(on: Exec<'_>, id: LabelId, scope: &HostScope) -> Result<Option<Label>, sqlx::Error> {
    let mut select = select_labels(on.dialect(), scope);
    select.push(" WHERE l.id = ").push_bind(id);
    let row = select.fetch_optional(on).await?;
    row.as_ref().map(crate::rows::label).transpose()
}

async fn set_members(
    tx: &mut Tx,
    id: LabelId,
    hosts: &[HostId],
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    query("DELETE FROM label_membership WHERE label_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    query(sql!(
        d,
        "INSERT INTO label_membership (label_id, host_id, updated_at) \
         SELECT ?, h.id, ? FROM hosts h WHERE h.id IN ",
        ID_SET
    ))
    .bind(id)
    .bind(now)
    .bind(id_array(hosts.iter().map(|h| h.0)))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Writes a host's dynamic-label answers inside the caller's transaction (the batched host
/// flush): memberships gained in one upsert, memberships lost in one delete. Only dynamic
/// labels that still exist, and a host that still exists, are touched: a late answer for a
/// deleted label or host is dropped, and no answer ever edits a manual label.
pub(crate) async fn write_results(
    tx: &mut Tx,
    host: HostId,
    results: &[(u64, bool)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    // The last answer for a label wins, as when they are applied one by one.
    let latest: std::collections::BTreeMap<u64, bool> = results.iter().copied().collect();
    let members = latest
        .iter()
        .filter(|(_, member)| **member)
        .map(|(l, _)| *l);
    let not_members = latest
        .iter()
        .filter(|(_, member)| !**member)
        .map(|(l, _)| *l);
    let members: Vec<u64> = members.collect();
    let not_members: Vec<u64> = not_members.collect();
    if !members.is_empty() {
        query(sql!(
            d,
            "INSERT INTO label_membership (label_id, host_id, updated_at) \
             SELECT l.id, h.id, ? FROM labels l, hosts h WHERE l.id IN ",
            ID_SET,
            " AND h.id = ? AND l.label_type <> 'builtin' AND l.label_membership_type = 'dynamic' ",
            UPSERT("label_id, host_id"),
            " updated_at = ",
            EXCLUDED(updated_at)
        ))
        .bind(now)
        .bind(id_array(members))
        .bind(host)
        .execute(&mut *tx)
        .await?;
    }
    if !not_members.is_empty() {
        query(sql!(
            d,
            "DELETE FROM label_membership WHERE host_id = ? AND label_id IN ",
            ID_SET,
            " AND label_id IN (SELECT id FROM labels WHERE label_membership_type = 'dynamic')"
        ))
        .bind(host)
        .bind(id_array(not_members))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl LabelStore for SqlStore {
    async fn create_label(&self, label: &NewLabel, now: i64) -> Result<Label, AdminError> {
        let failed = |e| write_error(e, "a label with this name");
        let mut tx = self.db.begin().await.map_err(failed)?;
        let inserted = query(
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
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        let id = LabelId(inserted.last_insert_id);
        if label.membership == LabelMembership::Manual {
            set_members(&mut tx, id, &label.hosts, now)
                .await
                .map_err(failed)?;
        }
        let created = load((&mut tx).into(), id, &HostScope::All)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("label {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(created)
    }

    async fn labels(&self, scope: &HostScope) -> Result<Vec<Label>, StoreError> {
        let mut select = select_labels(self.db.dialect(), scope);
        select.push(" ORDER BY l.id");
        let rows = select.fetch_all(&self.db).await.map_err(store_error)?;
        labels(&rows)
    }

    async fn label(&self, id: LabelId, scope: &HostScope) -> Result<Option<Label>, StoreError> {
        load((&self.db).into(), id, scope)
            .await
            .map_err(store_error)
    }

    async fn label_ids_by_names(&self, names: &[String]) -> Result<Vec<LabelId>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // A handful of names: one placeholder each, compared with the column's own collation.
        let mut select = query("SELECT id FROM labels WHERE name IN ");
        select.push_list(names.iter()).push(" ORDER BY id");
        let rows = select.fetch_all(&self.db).await.map_err(store_error)?;
        rows.iter()
            .map(|row| row.id("id").map(LabelId))
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }

    async fn manual_label_hosts(&self, id: LabelId) -> Result<Vec<HostId>, StoreError> {
        let rows = query(
            "SELECT m.host_id FROM label_membership m JOIN labels l ON l.id = m.label_id \
             WHERE m.label_id = ? AND l.label_membership_type = 'manual' ORDER BY m.host_id",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| row.id("host_id").map(HostId))
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }

    async fn update_label(
        &self,
        id: LabelId,
        changes: &LabelChanges,
        now: i64,
    ) -> Result<Label, AdminError> {
        let failed = |e| write_error(e, "a label with this name");
        let mut tx = self.db.begin().await.map_err(failed)?;
        let label = load((&mut tx).into(), id, &HostScope::All)
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
        query(
            "UPDATE labels SET name = COALESCE(?, name), description = COALESCE(?, description), \
             updated_at = ? WHERE id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.description.as_deref())
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        if let Some(hosts) = &changes.hosts {
            set_members(&mut tx, id, hosts, now).await.map_err(failed)?;
        }
        let updated = load((&mut tx).into(), id, &HostScope::All)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("label {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(updated)
    }

    async fn delete_label(&self, id: LabelId) -> Result<Option<Label>, AdminError> {
        let failed = |e| AdminError::Store(store_error(e));
        let mut tx = self.db.begin().await.map_err(failed)?;
        let Some(label) = load((&mut tx).into(), id, &HostScope::All)
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        if label.label_type == LabelType::Builtin {
            return Err(AdminError::Invalid(format!(
                "built-in label `{}` can't be deleted",
                label.name
            )));
        }
        query("DELETE FROM labels WHERE id = ?")
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Some(label))
    }

    async fn label_by_name(&self, name: &str) -> Result<Option<Label>, StoreError> {
        let mut select = select_labels(self.db.dialect(), &HostScope::All);
        select.push(" WHERE l.name = ").push_bind(name);
        let row = select.fetch_optional(&self.db).await.map_err(store_error)?;
        row.as_ref()
            .map(crate::rows::label)
            .transpose()
            .map_err(store_error)
    }

    async fn host_labels(&self, host: HostId) -> Result<Vec<Label>, StoreError> {
        let mut select = select_labels(self.db.dialect(), &HostScope::All);
        select
            .push(" WHERE EXISTS (SELECT 1 FROM hosts h WHERE h.id = ")
            .push_bind(host)
            .push(concat!(" AND ", label_member!(), ") ORDER BY l.id"));
        let rows = select.fetch_all(&self.db).await.map_err(store_error)?;
        labels(&rows)
    }

    async fn dynamic_label_queries(&self) -> Result<Vec<LabelQuery>, StoreError> {
        let rows = query(
            "SELECT id, query, platform FROM labels WHERE label_type <> 'builtin' \
             AND label_membership_type = 'dynamic' AND query <> '' ORDER BY id",
        )
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(crate::rows::label_query)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }
}
