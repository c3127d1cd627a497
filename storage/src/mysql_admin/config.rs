//! Agent options (global in `app_config`, per team in `team_agent_options`), the scheduled
//! queries hosts pull, and query reports (`query_results`).

use std::collections::HashMap;

use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;
use sqlx::{MySqlPool, Row};

use super::{store_error, write_error};
use crate::admin::{AdminError, QueryId, ReportRows, SavedQuery};

const GLOBAL_AGENT_OPTIONS: &str = "agent_options";
const APP_SETTINGS: &str = "settings";

pub async fn app_settings(pool: &MySqlPool) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT value FROM app_config WHERE name = ?")
        .bind(APP_SETTINGS)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    text.as_deref().map(parse_json).transpose()
}

pub async fn set_app_settings(
    pool: &MySqlPool,
    settings: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO app_config (name, value, updated_at) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)",
    )
    .bind(APP_SETTINGS)
    .bind(settings.to_string())
    .bind(now)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Data(format!("stored JSON: {e}")))
}

pub async fn agent_options(
    pool: &MySqlPool,
    team: Option<TeamId>,
) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = match team {
        None => sqlx::query_scalar("SELECT value FROM app_config WHERE name = ?")
            .bind(GLOBAL_AGENT_OPTIONS)
            .fetch_optional(pool)
            .await
            .map_err(store_error)?,
        Some(team) => {
            sqlx::query_scalar("SELECT options FROM team_agent_options WHERE team_id = ?")
                .bind(team.0)
                .fetch_optional(pool)
                .await
                .map_err(store_error)?
        }
    };
    text.as_deref().map(parse_json).transpose()
}

pub async fn set_agent_options(
    pool: &MySqlPool,
    team: Option<TeamId>,
    options: &serde_json::Value,
    now: i64,
) -> Result<(), AdminError> {
    let failed = |e| write_error(e, "agent options");
    let text = options.to_string();
    match team {
        None => {
            sqlx::query(
                "INSERT INTO app_config (name, value, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)",
            )
            .bind(GLOBAL_AGENT_OPTIONS)
            .bind(text)
            .bind(now)
            .execute(pool)
            .await
            .map_err(failed)?;
        }
        Some(team) => {
            let mut tx = pool.begin().await.map_err(failed)?;
            let exists: Option<u64> =
                sqlx::query_scalar("SELECT id FROM teams WHERE id = ? FOR UPDATE")
                    .bind(team.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(failed)?;
            if exists.is_none() {
                return Err(AdminError::NotFound(format!("team {team}")));
            }
            if options.is_null() {
                sqlx::query("DELETE FROM team_agent_options WHERE team_id = ?")
                    .bind(team.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            } else {
                sqlx::query(
                    "INSERT INTO team_agent_options (team_id, options, updated_at) \
                     VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE \
                     options = VALUES(options), updated_at = VALUES(updated_at)",
                )
                .bind(team.0)
                .bind(text)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            }
            tx.commit().await.map_err(failed)?;
        }
    }
    Ok(())
}

pub async fn team_agent_options(
    pool: &MySqlPool,
) -> Result<Vec<(TeamId, serde_json::Value)>, StoreError> {
    let rows = sqlx::query("SELECT team_id, options FROM team_agent_options ORDER BY team_id")
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let team: u64 = row.try_get("team_id").map_err(store_error)?;
            let text: String = row.try_get("options").map_err(store_error)?;
            Ok((TeamId(team), parse_json(&text)?))
        })
        .collect()
}

pub async fn scheduled_queries(pool: &MySqlPool) -> Result<Vec<SavedQuery>, StoreError> {
    super::queries::scheduled(pool).await
}

pub async fn write_reports(pool: &MySqlPool, reports: &[ReportRows]) -> Result<(), StoreError> {
    if reports.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(store_error)?;
    for report in reports {
        let exists: Option<u64> = sqlx::query_scalar("SELECT id FROM queries WHERE id = ?")
            .bind(report.query.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        if exists.is_none() {
            continue;
        }
        sqlx::query("DELETE FROM query_results WHERE query_id = ? AND host_id = ?")
            .bind(report.query.0)
            .bind(report.host.0)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let empty = [None];
        let rows: Vec<Option<&str>> = if report.rows.is_empty() {
            empty.to_vec()
        } else {
            report.rows.iter().map(|r| Some(r.as_str())).collect()
        };
        for row in rows {
            sqlx::query(
                "INSERT INTO query_results (query_id, host_id, last_fetched, data) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(report.query.0)
            .bind(report.host.0)
            .bind(report.last_fetched)
            .bind(row)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
    }
    tx.commit().await.map_err(store_error)
}

pub async fn reports(pool: &MySqlPool) -> Result<Vec<ReportRows>, StoreError> {
    let rows = sqlx::query(
        "SELECT query_id, host_id, last_fetched, data FROM query_results \
         ORDER BY query_id, host_id, id",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    let mut order = Vec::new();
    let mut by_key: HashMap<(u64, u64), ReportRows> = HashMap::new();
    for row in &rows {
        let query = row.try_get::<u64, _>("query_id").map_err(store_error)?;
        let host = row.try_get::<u64, _>("host_id").map_err(store_error)?;
        let last_fetched: i64 = row.try_get("last_fetched").map_err(store_error)?;
        let data: Option<String> = row.try_get("data").map_err(store_error)?;
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

pub async fn delete_report(pool: &MySqlPool, query: QueryId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM query_results WHERE query_id = ?")
        .bind(query.0)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(())
}
