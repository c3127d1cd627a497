//! Saved queries, global (`team_id` NULL) or per team.

use flotilla_engine::ids::TeamId;
use flotilla_engine::store::StoreError;
use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use super::{JSON_IDS, LIKE_CI_END, id_array, like_pattern, store_error, write_error};
use crate::admin::{AdminError, QueryFields, QueryId, SavedQuery, UserId};

const SELECT_QUERIES: &str = "SELECT q.id, q.team_id, q.name, q.description, q.query, \
     q.`interval`, q.platform, q.min_osquery_version, q.automations_enabled, q.logging, \
     q.observer_can_run, q.discard_data, q.author_id, COALESCE(u.name, '') AS author_name, \
     COALESCE(u.email, '') AS author_email, q.created_at, q.updated_at \
     FROM queries q LEFT JOIN users u ON u.id = q.author_id";

const NAME_TAKEN: &str = "a query with this name in this team";

async fn load(conn: &mut MySqlConnection, id: QueryId) -> Result<Option<SavedQuery>, sqlx::Error> {
    let sql = format!("{SELECT_QUERIES} WHERE q.id = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(crate::rows::saved_query).transpose()
}

pub async fn create(
    pool: &MySqlPool,
    team: Option<TeamId>,
    fields: &QueryFields,
    author: Option<UserId>,
    now: i64,
) -> Result<SavedQuery, AdminError> {
    let failed = |e| write_error(e, NAME_TAKEN);
    let mut tx = pool.begin().await.map_err(failed)?;
    if let Some(team) = team {
        // What a foreign key would check (the migration says why there is none).
        let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM teams WHERE id = ?")
            .bind(team.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed)?;
        if exists.is_none() {
            return Err(AdminError::Invalid(format!(
                "{NAME_TAKEN} refers to something that does not exist"
            )));
        }
    }
    let inserted = sqlx::query(
        "INSERT INTO queries (team_id, name, description, query, `interval`, platform, \
         min_osquery_version, automations_enabled, logging, observer_can_run, discard_data, \
         author_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(team.map(|t| t.0))
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(&fields.query)
    .bind(fields.interval as i64)
    .bind(&fields.platform)
    .bind(&fields.min_osquery_version)
    .bind(fields.automations_enabled)
    .bind(&fields.logging)
    .bind(fields.observer_can_run)
    .bind(fields.discard_data)
    .bind(author.map(|a| a.0))
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    let id = inserted.last_insert_id();
    let query = load(&mut tx, QueryId(id))
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("query {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(query)
}

pub async fn list(
    pool: &MySqlPool,
    team: Option<TeamId>,
    search: Option<&str>,
) -> Result<Vec<SavedQuery>, StoreError> {
    let mut query = QueryBuilder::<MySql>::new(SELECT_QUERIES);
    query
        .push(" WHERE q.team_id <=> ")
        .push_bind(team.map(|t| t.0));
    if let Some(search) = search.filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        query
            .push(" AND (q.name LIKE ")
            .push_bind(pattern.clone())
            .push(LIKE_CI_END)
            .push(" OR q.query LIKE ")
            .push_bind(pattern.clone())
            .push(LIKE_CI_END)
            .push(" OR q.description LIKE ")
            .push_bind(pattern)
            .push(LIKE_CI_END)
            .push(")");
    }
    query.push(" ORDER BY q.name, q.id");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::saved_query)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

/// Every query with an interval above 0 (global and of every team), by team and name.
pub async fn scheduled(pool: &MySqlPool) -> Result<Vec<SavedQuery>, StoreError> {
    let sql = format!("{SELECT_QUERIES} WHERE q.`interval` > 0 ORDER BY q.team_id, q.name");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(crate::rows::saved_query)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn get(pool: &MySqlPool, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    load(&mut conn, id).await.map_err(store_error)
}

pub async fn by_name(
    pool: &MySqlPool,
    team: Option<TeamId>,
    name: &str,
) -> Result<Option<SavedQuery>, StoreError> {
    let sql = format!("{SELECT_QUERIES} WHERE q.team_id <=> ? AND q.name = ?");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(team.map(|t| t.0))
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    row.as_ref()
        .map(crate::rows::saved_query)
        .transpose()
        .map_err(store_error)
}

pub async fn update(
    pool: &MySqlPool,
    id: QueryId,
    fields: &QueryFields,
    now: i64,
) -> Result<SavedQuery, AdminError> {
    let failed = |e| write_error(e, NAME_TAKEN);
    let mut tx = pool.begin().await.map_err(failed)?;
    let updated = sqlx::query(
        "UPDATE queries SET name = ?, description = ?, query = ?, `interval` = ?, platform = ?, \
         min_osquery_version = ?, automations_enabled = ?, logging = ?, observer_can_run = ?, \
         discard_data = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&fields.name)
    .bind(&fields.description)
    .bind(&fields.query)
    .bind(fields.interval as i64)
    .bind(&fields.platform)
    .bind(&fields.min_osquery_version)
    .bind(fields.automations_enabled)
    .bind(&fields.logging)
    .bind(fields.observer_can_run)
    .bind(fields.discard_data)
    .bind(now)
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    if updated.rows_affected() == 0 {
        return Err(AdminError::NotFound(format!("query {id}")));
    }
    let query = load(&mut tx, id)
        .await
        .map_err(failed)?
        .ok_or_else(|| AdminError::NotFound(format!("query {id}")))?;
    tx.commit().await.map_err(failed)?;
    Ok(query)
}

pub async fn delete(pool: &MySqlPool, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let Some(query) = load(&mut tx, id).await.map_err(store_error)? else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM queries WHERE id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some(query))
}

pub async fn delete_many(pool: &MySqlPool, ids: &[QueryId]) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM queries WHERE id IN (SELECT id FROM {JSON_IDS})"
    )))
    .bind(id_array(ids.iter().map(|q| q.0)))
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(deleted.rows_affected())
}
