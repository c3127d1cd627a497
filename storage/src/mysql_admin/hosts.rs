//! Host lists, lookups, deletion, team transfer and the id sets campaigns target.

use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};

use super::{
    JSON_IDS, LIKE_CI_END, host_ids, id_array, like_pattern, push_id_set, store_error, write_error,
};
use crate::admin::{
    AdminError, Host, HostFilter, HostScope, HostTotals, LabelId, Order, Page, StatusFilter,
    TeamFilter,
};

macro_rules! host_columns {
    () => {
        "h.id, h.osquery_host_id, h.uuid, h.hostname, h.computer_name, h.platform, \
         h.platform_like, h.os_version, h.build, h.code_name, h.osquery_version, h.cpu_type, \
         h.cpu_brand, h.cpu_physical_cores, h.cpu_logical_cores, h.memory, h.hardware_vendor, \
         h.hardware_model, h.hardware_version, h.hardware_serial, h.primary_ip, h.primary_mac, \
         h.uptime, h.distributed_interval, h.config_tls_refresh, h.logger_tls_period, h.team_id, \
         t.name AS team_name, h.seen_time, h.detail_updated_at, h.refetch_requested, \
         h.created_at, h.last_enrolled_at, h.updated_at"
    };
}

/// `FROM` clause matching [`host_columns!`].
const HOSTS_FROM: &str = " FROM hosts h LEFT JOIN teams t ON t.id = h.team_id";

/// Whether host `h` is a member of label `l`: builtin labels by platform, others by rows.
pub(crate) const LABEL_MEMBER: &str = "((l.label_type = 'builtin' AND (l.platform = '' OR \
     l.platform = h.platform)) OR (l.label_type <> 'builtin' AND EXISTS (SELECT 1 FROM \
     label_membership m WHERE m.label_id = l.id AND m.host_id = h.id)))";

/// Appends ` AND <scope>` for hosts aliased `h`.
pub(crate) fn push_scope(query: &mut QueryBuilder<MySql>, scope: &HostScope) {
    if let HostScope::Teams(teams) = scope {
        query.push(" AND h.team_id IN ");
        push_id_set(query, id_array(teams.iter().map(|t| t.0)));
    }
}

/// Appends ` WHERE …` for every part of `filter`.
fn push_filter(query: &mut QueryBuilder<MySql>, filter: &HostFilter) {
    query.push(" WHERE 1 = 1");
    push_scope(query, &filter.scope);
    match filter.team {
        None => {}
        Some(TeamFilter::NoTeam) => {
            query.push(" AND h.team_id IS NULL");
        }
        Some(TeamFilter::Team(team)) => {
            query.push(" AND h.team_id = ").push_bind(team.0);
        }
    }
    if let Some(label) = filter.label {
        query
            .push(" AND EXISTS (SELECT 1 FROM labels l WHERE l.id = ")
            .push_bind(label.0)
            .push(" AND ")
            .push(LABEL_MEMBER)
            .push(")");
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        query.push(" AND (");
        for (i, column) in [
            "h.hostname",
            "h.computer_name",
            "h.uuid",
            "h.hardware_serial",
            "h.primary_ip",
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                query.push(" OR ");
            }
            query
                .push(column)
                .push(" LIKE ")
                .push_bind(pattern.clone())
                .push(LIKE_CI_END);
        }
        query.push(")");
    }
    match &filter.status {
        None => {}
        Some(StatusFilter::IdsIn(ids)) => {
            query.push(" AND h.id IN ");
            push_id_set(query, id_array(ids.iter().map(|h| h.0)));
        }
        Some(StatusFilter::IdsNotIn(ids)) => {
            query.push(" AND h.id NOT IN ");
            push_id_set(query, id_array(ids.iter().map(|h| h.0)));
        }
        Some(StatusFilter::CreatedSince(time)) => {
            query.push(" AND h.created_at >= ").push_bind(*time);
        }
        Some(StatusFilter::NotSeenSince(time)) => {
            query.push(" AND h.seen_time < ").push_bind(*time);
        }
    }
}

/// The SQL expression for one of [`crate::admin::HOST_ORDER_KEYS`].
fn order_expression(key: &str) -> Option<&'static str> {
    Some(match key {
        "id" => "h.id",
        "hostname" => "h.hostname",
        "computer_name" => "h.computer_name",
        "display_name" => "COALESCE(NULLIF(h.computer_name, ''), h.hostname)",
        "uuid" => "h.uuid",
        "osquery_host_id" => "h.osquery_host_id",
        "platform" => "h.platform",
        "os_version" => "h.os_version",
        "osquery_version" => "h.osquery_version",
        "hardware_serial" => "h.hardware_serial",
        "hardware_model" => "h.hardware_model",
        "primary_ip" => "h.primary_ip",
        "primary_mac" => "h.primary_mac",
        "memory" => "h.memory",
        "uptime" => "h.uptime",
        "seen_time" => "h.seen_time",
        "created_at" => "h.created_at",
        "updated_at" => "h.updated_at",
        "last_enrolled_at" => "h.last_enrolled_at",
        "detail_updated_at" => "h.detail_updated_at",
        "team_id" => "h.team_id",
        "team_name" => "t.name",
        "cpu_brand" => "h.cpu_brand",
        "cpu_logical_cores" => "h.cpu_logical_cores",
        "distributed_interval" => "h.distributed_interval",
        _ => return None,
    })
}

pub async fn list(
    pool: &MySqlPool,
    filter: &HostFilter,
    order: &Order,
    page: Page,
) -> Result<Vec<Host>, StoreError> {
    let expression = order_expression(&order.key)
        .ok_or_else(|| StoreError::Data(format!("unknown host order key `{}`", order.key)))?;
    let direction = if order.descending { " DESC" } else { " ASC" };
    let mut query = QueryBuilder::<MySql>::new(concat!("SELECT ", host_columns!()));
    query.push(HOSTS_FROM);
    push_filter(&mut query, filter);
    query
        .push(" ORDER BY ")
        .push(expression)
        .push(direction)
        .push(", h.id")
        .push(direction)
        .push(" LIMIT ")
        .push_bind(page.limit.min(i64::MAX as u64) as i64)
        .push(" OFFSET ")
        .push_bind(page.offset.min(i64::MAX as u64) as i64);
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter()
        .map(crate::rows::host)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

pub async fn count(pool: &MySqlPool, filter: &HostFilter) -> Result<u64, StoreError> {
    let mut query = QueryBuilder::<MySql>::new("SELECT COUNT(*) FROM hosts h");
    push_filter(&mut query, filter);
    let n: i64 = query
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Ok(n as u64)
}

pub async fn get(pool: &MySqlPool, id: HostId) -> Result<Option<Host>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        host_columns!(),
        " FROM hosts h LEFT JOIN teams t ON t.id = h.team_id WHERE h.id = ?"
    ))
    .bind(id.0)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    row.as_ref()
        .map(crate::rows::host)
        .transpose()
        .map_err(store_error)
}

pub async fn by_identifier(pool: &MySqlPool, identifier: &str) -> Result<Option<Host>, StoreError> {
    if identifier.is_empty() {
        return Ok(None);
    }
    // The agent's own identifier wins over a hostname another host may share.
    let row = sqlx::query(concat!(
        "SELECT ",
        host_columns!(),
        " FROM hosts h LEFT JOIN teams t ON t.id = h.team_id \
         WHERE h.osquery_host_id = ? OR h.hostname = ? OR h.uuid = ? OR h.hardware_serial = ? \
         ORDER BY CASE WHEN h.osquery_host_id = ? THEN 0 ELSE 1 END, h.id LIMIT 1"
    ))
    .bind(identifier)
    .bind(identifier)
    .bind(identifier)
    .bind(identifier)
    .bind(identifier)
    .fetch_optional(pool)
    .await
    .map_err(store_error)?;
    row.as_ref()
        .map(crate::rows::host)
        .transpose()
        .map_err(store_error)
}

pub async fn delete(pool: &MySqlPool, id: HostId) -> Result<Option<Host>, StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        host_columns!(),
        " FROM hosts h LEFT JOIN teams t ON t.id = h.team_id WHERE h.id = ?"
    ))
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let host = crate::rows::host(&row).map_err(store_error)?;
    sqlx::query("DELETE FROM hosts WHERE id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some(host))
}

pub async fn transfer(
    pool: &MySqlPool,
    team: Option<TeamId>,
    hosts: &[HostId],
    now: i64,
) -> Result<Vec<HostId>, AdminError> {
    let failed = |e| write_error(e, "the team");
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
    let ids = id_array(hosts.iter().map(|h| h.0));
    // No RETURNING on MySQL: lock the rows that exist, then move them.
    let moved: Vec<u64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM hosts WHERE id IN (SELECT id FROM {JSON_IDS}) ORDER BY id FOR UPDATE"
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await
    .map_err(failed)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE hosts SET team_id = ?, updated_at = ? WHERE id IN (SELECT id FROM {JSON_IDS})"
    )))
    .bind(team.map(|t| t.0))
    .bind(now)
    .bind(&ids)
    .execute(&mut *tx)
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(host_ids(moved))
}

pub async fn totals(
    pool: &MySqlPool,
    scope: &HostScope,
    team: Option<TeamFilter>,
    new_since: i64,
    not_seen_since: i64,
) -> Result<HostTotals, StoreError> {
    let filter = HostFilter {
        scope: scope.clone(),
        team,
        ..HostFilter::all()
    };
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT COUNT(*) AS total, CAST(COALESCE(SUM(CASE WHEN h.created_at >= ",
    );
    // SUM is DECIMAL on MySQL: cast back to an integer.
    query
        .push_bind(new_since)
        .push(
            " THEN 1 ELSE 0 END), 0) AS SIGNED) AS new, CAST(COALESCE(SUM(CASE WHEN h.seen_time < ",
        )
        .push_bind(not_seen_since)
        .push(" THEN 1 ELSE 0 END), 0) AS SIGNED) AS not_seen FROM hosts h");
    push_filter(&mut query, &filter);
    let row = query.build().fetch_one(pool).await.map_err(store_error)?;
    let number = |column: &str| -> Result<u64, StoreError> {
        Ok(row.try_get::<i64, _>(column).map_err(store_error)? as u64)
    };
    let mut totals = HostTotals {
        total: number("total")?,
        new: number("new")?,
        not_seen_since: number("not_seen")?,
        platforms: Vec::new(),
    };
    let mut query = QueryBuilder::<MySql>::new("SELECT h.platform, COUNT(*) AS n FROM hosts h");
    push_filter(&mut query, &filter);
    query.push(" GROUP BY h.platform ORDER BY n DESC, h.platform");
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    for row in &rows {
        let platform: String = row.try_get("platform").map_err(store_error)?;
        let n: i64 = row.try_get("n").map_err(store_error)?;
        totals.platforms.push((platform, n as u64));
    }
    Ok(totals)
}

pub async fn ids_in_labels(
    pool: &MySqlPool,
    labels: &[LabelId],
) -> Result<Vec<HostId>, StoreError> {
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT h.id FROM hosts h WHERE EXISTS (SELECT 1 FROM labels l WHERE l.id IN \
         (SELECT id FROM {JSON_IDS}) AND {LABEL_MEMBER}) ORDER BY h.id"
    );
    let ids: Vec<u64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id_array(labels.iter().map(|l| l.0)))
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    Ok(host_ids(ids))
}

pub async fn ids_in_teams(pool: &MySqlPool, teams: &[TeamId]) -> Result<Vec<HostId>, StoreError> {
    if teams.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<u64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM hosts WHERE team_id IN (SELECT id FROM {JSON_IDS}) ORDER BY id"
    )))
    .bind(id_array(teams.iter().map(|t| t.0)))
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    Ok(host_ids(ids))
}

pub async fn ids_by_identifiers(
    pool: &MySqlPool,
    identifiers: &[String],
) -> Result<Vec<HostId>, StoreError> {
    let identifiers: Vec<&str> = identifiers
        .iter()
        .map(|i| i.as_str())
        .filter(|i| !i.is_empty())
        .collect();
    if identifiers.is_empty() {
        return Ok(Vec::new());
    }
    // A handful of names from an admin: one placeholder each (strings compared as the
    // columns' own collation, which a JSON_TABLE column would not share).
    let mut query = QueryBuilder::<MySql>::new("SELECT id FROM hosts WHERE ");
    for (i, column) in ["hostname", "uuid", "hardware_serial", "osquery_host_id"]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            query.push(" OR ");
        }
        query.push(column).push(" IN (");
        let mut list = query.separated(", ");
        for identifier in &identifiers {
            list.push_bind(*identifier);
        }
        query.push(")");
    }
    query.push(" ORDER BY id");
    let ids: Vec<u64> = query
        .build_query_scalar()
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    Ok(host_ids(ids))
}
