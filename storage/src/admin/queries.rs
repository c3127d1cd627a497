//! [`QueryStore`] for [`SqlStore`]: saved queries (global, `team_id` NULL, or per team), the
//! schedule they make, and their reports (`query_results`).

use std::collections::HashMap;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{AdminError, QueryFields, QueryId, QueryStore, ReportRows, SavedQuery, UserId};
use crate::common::{id_array, like_pattern, store_error};
use crate::rows::ModelRow;
use crate::sql::{Exec, Row, query, sql};

/// `interval` is a reserved word in MySQL: quoted with backticks, which SQLite accepts too.
macro_rules! select_queries {
    () => {
        "SELECT q.id, q.team_id, q.name, q.description, q.query, \
         q.`interval`, q.platform, q.min_osquery_version, q.automations_enabled, q.logging, \
         q.observer_can_run, q.discard_data, q.author_id, COALESCE(u.name, '') AS author_name, \
         COALESCE(u.email, '') AS author_email, q.created_at, q.updated_at \
         FROM queries q LEFT JOIN users u ON u.id = q.author_id"
    };
}

const NAME_TAKEN: &str = "a query with this name in this team";

fn saved_queries(rows: &[Row]) -> Result<Vec<SavedQuery>, StoreError> {
    rows.iter()
        .map(crate::rows::saved_query)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

async fn load(on: Exec<'_>, id: QueryId) -> Result<Option<SavedQuery>, sqlx::Error> {
    let row = query(concat!(select_queries!(), " WHERE q.id = ?"))
        .bind(id)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(crate::rows::saved_query).transpose()
}

#[async_trait]
impl QueryStore for SqlStore {
    async fn create_query(
        &self,
        team: Option<TeamId>,
        fields: &QueryFields,
        author: Option<UserId>,
        now: i64,
    ) -> Result<SavedQuery, AdminError> {
        let failed = |e| write_error(e, NAME_TAKEN);
        let mut tx = self.db.begin().await.map_err(failed)?;
        // What a foreign key would check (MySQL's table has none: its migration says why).
        if let Some(team) = team
            && !super::teams::team_exists(&mut tx, team)
                .await
                .map_err(failed)?
        {
            return Err(AdminError::Invalid(format!(
                "{NAME_TAKEN} refers to something that does not exist"
            )));
        }
        let inserted = query(
            "INSERT INTO queries (team_id, name, description, query, `interval`, platform, \
             min_osquery_version, automations_enabled, logging, observer_can_run, discard_data, \
             author_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(team)
        .bind(&fields.name)
        .bind(&fields.description)
        .bind(&fields.query)
        .bind(fields.interval)
        .bind(&fields.platform)
        .bind(&fields.min_osquery_version)
        .bind(fields.automations_enabled)
        .bind(&fields.logging)
        .bind(fields.observer_can_run)
        .bind(fields.discard_data)
        .bind(author)
        .bind(now)
        .bind(now)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        let id = QueryId(inserted.last_insert_id);
        let created = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("query {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(created)
    }

    async fn queries(
        &self,
        team: Option<TeamId>,
        search: Option<&str>,
    ) -> Result<Vec<SavedQuery>, StoreError> {
        let d = self.db.dialect();
        let mut list = query(sql!(d, select_queries!(), " WHERE q.team_id ", IS, " ?")).bind(team);
        if let Some(search) = search.filter(|s| !s.is_empty()) {
            let pattern = like_pattern(search);
            list.push(" AND (q.name LIKE ")
                .push_bind(pattern.clone())
                .push(d.like_end())
                .push(" OR q.query LIKE ")
                .push_bind(pattern.clone())
                .push(d.like_end())
                .push(" OR q.description LIKE ")
                .push_bind(pattern)
                .push(d.like_end())
                .push(")");
        }
        list.push(" ORDER BY q.name, q.id");
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        saved_queries(&rows)
    }

    async fn scheduled_queries(&self) -> Result<Vec<SavedQuery>, StoreError> {
        let rows = query(concat!(
            select_queries!(),
            " WHERE q.`interval` > 0 ORDER BY q.team_id, q.name"
        ))
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        saved_queries(&rows)
    }

    async fn get_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
        load((&self.db).into(), id).await.map_err(store_error)
    }

    async fn query_by_name(
        &self,
        team: Option<TeamId>,
        name: &str,
    ) -> Result<Option<SavedQuery>, StoreError> {
        let d = self.db.dialect();
        let row = query(sql!(
            d,
            select_queries!(),
            " WHERE q.team_id ",
            IS,
            " ? AND q.name = ?"
        ))
        .bind(team)
        .bind(name)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?;
        row.as_ref()
            .map(crate::rows::saved_query)
            .transpose()
            .map_err(store_error)
    }

    async fn update_query(
        &self,
        id: QueryId,
        fields: &QueryFields,
        now: i64,
    ) -> Result<SavedQuery, AdminError> {
        let failed = |e| write_error(e, NAME_TAKEN);
        let mut tx = self.db.begin().await.map_err(failed)?;
        let updated = query(
            "UPDATE queries SET name = ?, description = ?, query = ?, `interval` = ?, \
             platform = ?, min_osquery_version = ?, automations_enabled = ?, logging = ?, \
             observer_can_run = ?, discard_data = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&fields.name)
        .bind(&fields.description)
        .bind(&fields.query)
        .bind(fields.interval)
        .bind(&fields.platform)
        .bind(&fields.min_osquery_version)
        .bind(fields.automations_enabled)
        .bind(&fields.logging)
        .bind(fields.observer_can_run)
        .bind(fields.discard_data)
        .bind(now)
        .bind(id)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        if updated.rows_affected == 0 {
            return Err(AdminError::NotFound(format!("query {id}")));
        }
        let changed = load((&mut tx).into(), id)
            .await
            .map_err(failed)?
            .ok_or_else(|| AdminError::NotFound(format!("query {id}")))?;
        tx.commit().await.map_err(failed)?;
        Ok(changed)
    }

    async fn delete_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let Some(removed) = load((&mut tx).into(), id).await.map_err(store_error)? else {
            return Ok(None);
        };
        query("DELETE FROM queries WHERE id = ?")
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(removed))
    }

    async fn delete_queries(&self, ids: &[QueryId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let d = self.db.dialect();
        let deleted = query(sql!(d, "DELETE FROM queries WHERE id IN ", ID_SET))
            .bind(id_array(ids.iter().map(|q| q.0)))
            .execute(&self.db)
            .await
            .map_err(store_error)?;
        Ok(deleted.rows_affected)
    }

    async fn write_reports(&self, reports: &[ReportRows]) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin().await.map_err(store_error)?;
        for report in reports {
            let exists = query("SELECT id FROM queries WHERE id = ?")
                .bind(report.query)
                .fetch_optional(&mut tx)
                .await
                .map_err(store_error)?;
            if exists.is_none() {
                continue;
            }
            query("DELETE FROM query_results WHERE query_id = ? AND host_id = ?")
                .bind(report.query)
                .bind(report.host)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
            // A host whose answer had no rows keeps one row with no data: it did answer.
            let no_rows = [None];
            let rows: Vec<Option<&str>> = if report.rows.is_empty() {
                no_rows.to_vec()
            } else {
                report.rows.iter().map(|r| Some(r.as_str())).collect()
            };
            for row in rows {
                query(
                    "INSERT INTO query_results (query_id, host_id, last_fetched, data) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(report.query)
                .bind(report.host)
                .bind(report.last_fetched)
                .bind(row)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
            }
        }
        tx.commit().await.map_err(store_error)
    }

    async fn reports(&self) -> Result<Vec<ReportRows>, StoreError> {
        let rows = query(
            "SELECT query_id, host_id, last_fetched, data FROM query_results \
             ORDER BY query_id, host_id, id",
        )
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let mut order = Vec::new();
        let mut by_key: HashMap<(u64, u64), ReportRows> = HashMap::new();
        for row in &rows {
            let query = row.id("query_id").map_err(store_error)?;
            let host = row.id("host_id").map_err(store_error)?;
            let last_fetched = row.int("last_fetched").map_err(store_error)?;
            let data = row.opt_text("data").map_err(store_error)?;
            let entry = by_key.entry((query, host)).or_insert_with(|| {
                order.push((query, host));
                ReportRows {
                    query: QueryId(query),
                    host: HostId(host),
                    last_fetched,
                    rows: Vec::new(),
                }
            });
            entry.rows.extend(data);
        }
        Ok(order
            .into_iter()
            .filter_map(|key| by_key.remove(&key))
            .collect())
    }

    async fn delete_report(&self, query_id: QueryId) -> Result<(), StoreError> {
        query("DELETE FROM query_results WHERE query_id = ?")
            .bind(query_id)
            .execute(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
