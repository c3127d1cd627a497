//! [`HostDirectory`] for [`SqlStore`]: host lists, lookups, deletion, team transfer and the id
//! sets campaigns target.

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{
    AdminError, Host, HostDirectory, HostFilter, HostScope, HostTotals, LabelId, Order, Page,
    SoftwareFilter, StatusFilter, TeamFilter,
};
use crate::common::{like_pattern, store_error};
use crate::rows::ModelRow;
use crate::sql::{Dialect, Query, Row, query, sql};

macro_rules! admin_host_columns {
    () => {
        "h.id, h.osquery_host_id, h.uuid, h.hostname, h.computer_name, h.platform, \
         h.platform_like, h.os_version, h.build, h.code_name, h.osquery_version, h.cpu_type, \
         h.cpu_brand, h.cpu_physical_cores, h.cpu_logical_cores, h.memory, h.hardware_vendor, \
         h.hardware_model, h.hardware_version, h.hardware_serial, h.primary_ip, h.primary_mac, \
         h.uptime, h.distributed_interval, h.config_tls_refresh, h.logger_tls_period, h.team_id, \
         t.name AS team_name, h.seen_time, h.detail_updated_at, h.refetch_requested, \
         h.created_at, h.last_enrolled_at, h.updated_at, h.software_updated_at, \
         o.version AS orbit_version, \
         o.desktop_version AS fleet_desktop_version, o.scripts_enabled, \
         (SELECT e.email FROM host_emails e WHERE e.host_id = h.id AND e.source = 'custom') \
         AS custom_email, \
         (SELECT COUNT(*) FROM policy_membership pm JOIN policies p ON p.id = pm.policy_id \
          WHERE pm.host_id = h.id AND pm.passes = 0 \
          AND (p.team_id IS NULL OR p.team_id = h.team_id)) AS failing_policies_count"
    };
}

/// `SELECT … FROM` for [`crate::rows::host`], hosts aliased `h`.
macro_rules! select_hosts {
    () => {
        concat!(
            "SELECT ",
            admin_host_columns!(),
            " FROM hosts h LEFT JOIN teams t ON t.id = h.team_id \
             LEFT JOIN host_orbit_info o ON o.host_id = h.id"
        )
    };
}

/// Whether host `h` is a member of label `l`: builtin labels by platform, others by rows.
macro_rules! label_member {
    () => {
        "((l.label_type = 'builtin' AND (l.platform = '' OR l.platform = h.platform)) OR \
         (l.label_type <> 'builtin' AND EXISTS (SELECT 1 FROM label_membership m \
         WHERE m.label_id = l.id AND m.host_id = h.id)))"
    };
}
pub(crate) use label_member;

/// Appends ` AND <scope>` for hosts aliased `h`.
pub(crate) fn push_scope(query: &mut Query<'_>, d: Dialect, scope: &HostScope) {
    if let HostScope::Teams(teams) = scope {
        query.push(" AND h.team_id IN ");
        query.push_id_set(d, teams.iter().map(|t| t.0));
    }
}

/// Appends ` WHERE …` for every part of `filter`.
fn push_filter(query: &mut Query<'_>, d: Dialect, filter: &HostFilter) {
    query.push(" WHERE 1 = 1");
    push_scope(query, d, &filter.scope);
    match filter.team {
        None => {}
        Some(TeamFilter::NoTeam) => {
            query.push(" AND h.team_id IS NULL");
        }
        Some(TeamFilter::Team(team)) => {
            query.push(" AND h.team_id = ").push_bind(team);
        }
    }
    if let Some(label) = filter.label {
        query
            .push(" AND EXISTS (SELECT 1 FROM labels l WHERE l.id = ")
            .push_bind(label)
            .push(concat!(" AND ", label_member!(), ")"));
    }
    if let Some((policy, passes)) = filter.policy {
        query
            .push(" AND EXISTS (SELECT 1 FROM policy_membership m WHERE m.host_id = h.id AND m.policy_id = ")
            .push_bind(policy)
            .push(" AND m.passes = ")
            .push_bind(i64::from(passes))
            .push(")");
    }
    match filter.software {
        None => {}
        Some(SoftwareFilter::Version(id)) => {
            query
                .push(
                    " AND h.id IN (SELECT hs.host_id FROM host_software hs WHERE hs.software_id = ",
                )
                .push_bind(id)
                .push(")");
        }
        Some(SoftwareFilter::Title(id)) => {
            query
                .push(
                    " AND h.id IN (SELECT hs.host_id FROM host_software hs \
                     JOIN software s ON s.id = hs.software_id WHERE s.title_id = ",
                )
                .push_bind(id)
                .push(")");
        }
    }
    if let Some((platform, os_version)) = &filter.os {
        query
            .push(" AND h.os_version = ")
            .push_bind(os_version.clone());
        if let Some(platform) = platform {
            query.push(" AND h.platform = ").push_bind(platform.clone());
        }
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
                .push(d.like_end());
        }
        query.push(")");
    }
    match &filter.status {
        None => {}
        Some(StatusFilter::IdsIn(ids)) => {
            query.push(" AND h.id IN ");
            query.push_id_set(d, ids.iter().map(|h| h.0));
        }
        Some(StatusFilter::IdsNotIn(ids)) => {
            query.push(" AND h.id NOT IN ");
            query.push_id_set(d, ids.iter().map(|h| h.0));
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

fn hosts(rows: &[Row]) -> Result<Vec<Host>, StoreError> {
    rows.iter()
        .map(crate::rows::host)
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

fn host(row: Option<Row>) -> Result<Option<Host>, StoreError> {
    row.as_ref()
        .map(crate::rows::host)
        .transpose()
        .map_err(store_error)
}

fn host_ids(rows: &[Row]) -> Result<Vec<HostId>, StoreError> {
    rows.iter()
        .map(|row| row.id("id").map(HostId))
        .collect::<Result<_, _>>()
        .map_err(store_error)
}

#[async_trait]
impl HostDirectory for SqlStore {
    async fn list_hosts(
        &self,
        filter: &HostFilter,
        order: &Order,
        page: Page,
    ) -> Result<Vec<Host>, StoreError> {
        let expression = order_expression(&order.key)
            .ok_or_else(|| StoreError::Data(format!("unknown host order key `{}`", order.key)))?;
        let direction = if order.descending { " DESC" } else { " ASC" };
        let mut list = query(select_hosts!());
        push_filter(&mut list, self.db.dialect(), filter);
        list.push(" ORDER BY ")
            .push(expression)
            .push(direction)
            .push(", h.id")
            .push(direction)
            .push(" LIMIT ")
            .push_bind(page.limit.min(i64::MAX as u64))
            .push(" OFFSET ")
            .push_bind(page.offset.min(i64::MAX as u64));
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        hosts(&rows)
    }

    async fn count_hosts(&self, filter: &HostFilter) -> Result<u64, StoreError> {
        let mut count = query("SELECT COUNT(*) AS n FROM hosts h");
        push_filter(&mut count, self.db.dialect(), filter);
        let row = count.fetch_one(&self.db).await.map_err(store_error)?;
        Ok(row.int("n").map_err(store_error)? as u64)
    }

    async fn host(&self, id: HostId) -> Result<Option<Host>, StoreError> {
        let row = query(concat!(select_hosts!(), " WHERE h.id = ?"))
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        host(row)
    }

    async fn host_by_identifier(&self, identifier: &str) -> Result<Option<Host>, StoreError> {
        if identifier.is_empty() {
            return Ok(None);
        }
        // The agent's own identifier wins over a hostname another host may share.
        let row = query(concat!(
            select_hosts!(),
            " WHERE h.osquery_host_id = ? OR h.hostname = ? OR h.uuid = ? \
             OR h.hardware_serial = ? \
             ORDER BY CASE WHEN h.osquery_host_id = ? THEN 0 ELSE 1 END, h.id LIMIT 1"
        ))
        .bind(identifier)
        .bind(identifier)
        .bind(identifier)
        .bind(identifier)
        .bind(identifier)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?;
        host(row)
    }

    async fn delete_host(&self, id: HostId) -> Result<Option<Host>, StoreError> {
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let row = query(concat!(select_hosts!(), " WHERE h.id = ?"))
            .bind(id)
            .fetch_optional(&mut tx)
            .await
            .map_err(store_error)?;
        let Some(deleted) = host(row)? else {
            return Ok(None);
        };
        // Its policy answers go with it (the foreign key's cascade would do it too, but the
        // counts must not depend on that), and what orbit and Desktop recorded.
        for statement in [
            "DELETE FROM policy_membership WHERE host_id = ?",
            "DELETE FROM host_orbit_info WHERE host_id = ?",
            "DELETE FROM host_device_auth WHERE host_id = ?",
            "DELETE FROM host_emails WHERE host_id = ?",
            "DELETE FROM host_software WHERE host_id = ?",
            "DELETE FROM hosts WHERE id = ?",
        ] {
            query(statement)
                .bind(id)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(Some(deleted))
    }

    async fn transfer_hosts(
        &self,
        team: Option<TeamId>,
        hosts: &[HostId],
        now: i64,
    ) -> Result<Vec<HostId>, AdminError> {
        let failed = |e| write_error(e, "the team");
        let d = self.db.dialect();
        let mut tx = self.db.begin().await.map_err(failed)?;
        if let Some(team) = team {
            let exists = query("SELECT id FROM teams WHERE id = ?")
                .bind(team)
                .fetch_optional(&mut tx)
                .await
                .map_err(failed)?;
            if exists.is_none() {
                return Err(AdminError::NotFound(format!("team {team}")));
            }
        }
        let ids = crate::common::id_array(hosts.iter().map(|h| h.0));
        // Lock the rows that exist (they are the ones that move), then move them.
        let moved = query(sql!(
            d,
            "SELECT id FROM hosts WHERE id IN ",
            ID_SET,
            " ORDER BY id",
            FOR_UPDATE
        ))
        .bind(&ids)
        .fetch_all(&mut tx)
        .await
        .map_err(failed)?;
        query(sql!(
            d,
            "UPDATE hosts SET team_id = ?, updated_at = ? WHERE id IN ",
            ID_SET
        ))
        .bind(team)
        .bind(now)
        .bind(&ids)
        .execute(&mut tx)
        .await
        .map_err(failed)?;
        // Answers to the old team's policies no longer count for it.
        super::policies::forget_other_teams(&mut tx, team, &ids)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(host_ids(&moved)?)
    }

    async fn host_totals(
        &self,
        scope: &HostScope,
        team: Option<TeamFilter>,
        new_since: i64,
        not_seen_since: i64,
    ) -> Result<HostTotals, StoreError> {
        let d = self.db.dialect();
        let filter = HostFilter {
            scope: scope.clone(),
            team,
            ..HostFilter::all()
        };
        // SUM is DECIMAL on MySQL: cast back to an integer (a no-op on SQLite's integers).
        let mut counts =
            query("SELECT COUNT(*) AS total, CAST(COALESCE(SUM(CASE WHEN h.created_at >= ");
        counts
            .push_bind(new_since)
            .push(" THEN 1 ELSE 0 END), 0) AS SIGNED) AS new, CAST(COALESCE(SUM(CASE WHEN h.seen_time < ")
            .push_bind(not_seen_since)
            .push(" THEN 1 ELSE 0 END), 0) AS SIGNED) AS not_seen FROM hosts h");
        push_filter(&mut counts, d, &filter);
        let row = counts.fetch_one(&self.db).await.map_err(store_error)?;
        let number = |column: &str| -> Result<u64, StoreError> {
            Ok(row.int(column).map_err(store_error)? as u64)
        };
        let mut totals = HostTotals {
            total: number("total")?,
            new: number("new")?,
            not_seen_since: number("not_seen")?,
            platforms: Vec::new(),
        };
        let mut platforms = query("SELECT h.platform, COUNT(*) AS n FROM hosts h");
        push_filter(&mut platforms, d, &filter);
        platforms.push(" GROUP BY h.platform ORDER BY n DESC, h.platform");
        let rows = platforms.fetch_all(&self.db).await.map_err(store_error)?;
        for row in &rows {
            let platform = row.text("platform").map_err(store_error)?;
            let n = row.int("n").map_err(store_error)?;
            totals.platforms.push((platform, n as u64));
        }
        Ok(totals)
    }

    async fn host_ids_in_labels(&self, labels: &[LabelId]) -> Result<Vec<HostId>, StoreError> {
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.db.dialect();
        let rows = query(sql!(
            d,
            "SELECT h.id FROM hosts h WHERE EXISTS (SELECT 1 FROM labels l WHERE l.id IN ",
            ID_SET,
            " AND ",
            label_member!(),
            ") ORDER BY h.id"
        ))
        .bind(crate::common::id_array(labels.iter().map(|l| l.0)))
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        host_ids(&rows)
    }

    async fn host_ids_in_teams(&self, teams: &[TeamId]) -> Result<Vec<HostId>, StoreError> {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.db.dialect();
        let rows = query(sql!(
            d,
            "SELECT id FROM hosts WHERE team_id IN ",
            ID_SET,
            " ORDER BY id"
        ))
        .bind(crate::common::id_array(teams.iter().map(|t| t.0)))
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        host_ids(&rows)
    }

    async fn host_ids_by_identifiers(
        &self,
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
        // A handful of names from an admin: one placeholder each, so they compare with the
        // columns' own collation (a JSON table's column would have its own).
        let mut select = query("SELECT id FROM hosts WHERE ");
        for (i, column) in ["hostname", "uuid", "hardware_serial", "osquery_host_id"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                select.push(" OR ");
            }
            select.push(column).push(" IN ");
            select.push_list(identifiers.iter().copied());
        }
        select.push(" ORDER BY id");
        let rows = select.fetch_all(&self.db).await.map_err(store_error)?;
        host_ids(&rows)
    }
}
