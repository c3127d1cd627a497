//! `MysqlStore`: the engine's [`HostStore`] on MySQL 8 or MariaDB 10.11, for deployments that
//! outgrow one node. Same behaviour as [`SqliteStore`](crate::SqliteStore); the SQL differs
//! where the dialects do (no `RETURNING`: ids come from `LAST_INSERT_ID()`; `GREATEST` for
//! SQLite's two-argument `MAX`; `JSON_TABLE` for SQLite's `json_each`).
//!
//! **Several nodes share one database.** Nothing here assumes this process is the only writer:
//! enrollment locks the host row it re-keys (`SELECT … FOR UPDATE`) and retries once when
//! another node inserted the same identifier first; flushes only ever move times forward
//! (`GREATEST`), so two nodes writing the same host in either order leave the newest time.
//!
//! **Failing fast.** The pool waits at most `acquire_timeout` for a connection, and every
//! connection is checked before use, so a dead server turns into
//! [`StoreError::Unavailable`] within seconds instead of hanging a request.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{
    CarveRecord, EnrollSecret, EnrolledHost, Enrollment, HostStore, HostUpdate, StoreError,
    StoredHost,
};
use flotilla_engine::vitals::Vitals;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{MySql, Row, Transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// Hosts per flush statement: keeps each statement's JSON parameter to a few hundred KB,
/// well under the default `max_allowed_packet` (16 MB on MySQL 8, 16 MB on MariaDB).
const FLUSH_CHUNK: usize = 5_000;

/// Characters in a `VARCHAR(255)` column; longer host details are cut to fit.
const TEXT_COLUMN: usize = 255;

/// How [`MysqlStore::connect`] sizes and times its pool.
#[derive(Clone, Debug)]
pub struct MysqlOptions {
    /// Connections kept open at most.
    pub max_connections: u32,
    /// How long opening a connection, or waiting for a free one, may take before the
    /// operation fails as unavailable.
    pub connect_timeout: Duration,
}

impl Default for MysqlOptions {
    fn default() -> Self {
        MysqlOptions {
            max_connections: 10,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// `SET` clause for every vitals column: a `NULL` parameter keeps the stored value.
macro_rules! vitals_set {
    () => {
        "hostname = COALESCE(?, hostname), computer_name = COALESCE(?, computer_name), \
         uuid = COALESCE(?, uuid), platform = COALESCE(?, platform), \
         platform_like = COALESCE(?, platform_like), os_version = COALESCE(?, os_version), \
         build = COALESCE(?, build), code_name = COALESCE(?, code_name), \
         osquery_version = COALESCE(?, osquery_version), cpu_type = COALESCE(?, cpu_type), \
         cpu_brand = COALESCE(?, cpu_brand), \
         cpu_physical_cores = COALESCE(?, cpu_physical_cores), \
         cpu_logical_cores = COALESCE(?, cpu_logical_cores), memory = COALESCE(?, memory), \
         hardware_vendor = COALESCE(?, hardware_vendor), \
         hardware_model = COALESCE(?, hardware_model), \
         hardware_version = COALESCE(?, hardware_version), \
         hardware_serial = COALESCE(?, hardware_serial), primary_ip = COALESCE(?, primary_ip), \
         primary_mac = COALESCE(?, primary_mac), uptime = COALESCE(?, uptime), \
         distributed_interval = COALESCE(?, distributed_interval), \
         config_tls_refresh = COALESCE(?, config_tls_refresh), \
         logger_tls_period = COALESCE(?, logger_tls_period)"
    };
}

/// The columns [`crate::rows::stored_host`] reads.
macro_rules! host_columns {
    () => {
        "id, node_key, osquery_host_id, hostname, platform, team_id, distributed_interval, \
         config_tls_refresh, logger_tls_period, seen_time, detail_updated_at, label_updated_at, \
         refetch_requested"
    };
}

type Query<'q> = sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>;

/// `text` cut to at most [`TEXT_COLUMN`] characters (a `VARCHAR(255)` counts characters).
pub(crate) fn fit(text: &str) -> &str {
    match text.char_indices().nth(TEXT_COLUMN) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

fn fit_opt(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(fit)
}

/// Binds the parameters of [`vitals_set!`] in order.
fn bind_vitals<'q>(query: Query<'q>, v: &'q Vitals) -> Query<'q> {
    query
        .bind(fit_opt(&v.hostname))
        .bind(fit_opt(&v.computer_name))
        .bind(fit_opt(&v.uuid))
        .bind(fit_opt(&v.platform))
        .bind(fit_opt(&v.platform_like))
        .bind(fit_opt(&v.os_version))
        .bind(fit_opt(&v.build))
        .bind(fit_opt(&v.code_name))
        .bind(fit_opt(&v.osquery_version))
        .bind(fit_opt(&v.cpu_type))
        .bind(fit_opt(&v.cpu_brand))
        .bind(v.cpu_physical_cores)
        .bind(v.cpu_logical_cores)
        .bind(v.memory)
        .bind(fit_opt(&v.hardware_vendor))
        .bind(fit_opt(&v.hardware_model))
        .bind(fit_opt(&v.hardware_version))
        .bind(fit_opt(&v.hardware_serial))
        .bind(fit_opt(&v.primary_ip))
        .bind(fit_opt(&v.primary_mac))
        .bind(v.uptime_seconds)
        .bind(v.distributed_interval)
        .bind(v.config_tls_refresh)
        .bind(v.logger_tls_period)
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A duplicate key or a deadlock (SQLSTATE 40001): worth running the transaction again.
fn is_retryable(error: &sqlx::Error) -> bool {
    is_unique_violation(error)
        || matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The engine's and the admin API's store on MySQL. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct MysqlStore {
    pool: MySqlPool,
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:password@host:3306/database`), checks the server
    /// answers, and applies the migrations in `migrations/mysql/` (under MySQL's advisory lock,
    /// so nodes starting together do not race). Fails with a message naming the cause when the
    /// URL is malformed or the server cannot be reached within `connect_timeout`.
    pub async fn connect(url: &str, options: &MysqlOptions) -> Result<MysqlStore, StoreError> {
        // sqlx reads any scheme as MySQL; a PostgreSQL URL given by mistake should say so.
        if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            return Err(StoreError::Data(
                "invalid MySQL URL: it must start with mysql:// (or mariadb://)".into(),
            ));
        }
        let connect = MySqlConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid MySQL URL: {e}")))?
            .charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(options.connect_timeout)
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Unavailable(format!("connecting to MySQL: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("MySQL migrations: {e}")))?;
        Ok(MysqlStore { pool })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The host this enrollment is for, locked until the transaction ends: by identifier,
    /// else by hardware UUID (most recently enrolled first).
    async fn find_for_enrollment(
        tx: &mut Transaction<'_, MySql>,
        e: &Enrollment,
    ) -> Result<Option<(u64, Option<String>)>, sqlx::Error> {
        let by_identifier =
            sqlx::query("SELECT id, node_key FROM hosts WHERE osquery_host_id = ? FOR UPDATE")
                .bind(fit(&e.identifier))
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(row) = by_identifier {
            return Ok(Some((row.try_get("id")?, row.try_get("node_key")?)));
        }
        let Some(uuid) = e.hardware_uuid.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let by_uuid = sqlx::query(
            "SELECT id, node_key, osquery_host_id FROM hosts WHERE uuid = ? \
             ORDER BY last_enrolled_at DESC LIMIT 1 FOR UPDATE",
        )
        .bind(fit(uuid))
        .fetch_optional(&mut **tx)
        .await?;
        match by_uuid {
            Some(row) => {
                let previous: String = row.try_get("osquery_host_id")?;
                tracing::warn!(
                    identifier = %e.identifier,
                    previous_identifier = %previous,
                    "host re-enrolled under a new identifier; matched by hardware uuid"
                );
                Ok(Some((row.try_get("id")?, row.try_get("node_key")?)))
            }
            None => Ok(None),
        }
    }

    async fn enroll_once(&self, e: &Enrollment) -> Result<EnrolledHost, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let existing = Self::find_for_enrollment(&mut tx, e).await?;
        let team = e.team.map(|t| t.0);
        let (id, previous, created) = match existing {
            Some((id, previous)) => {
                sqlx::query(concat!(
                    "UPDATE hosts SET node_key = ?, osquery_host_id = ?, team_id = ?, \
                     last_enrolled_at = ?, updated_at = ?, seen_time = GREATEST(seen_time, ?), ",
                    vitals_set!(),
                    " WHERE id = ?"
                ))
                .bind(e.node_key.as_str())
                .bind(fit(&e.identifier))
                .bind(team)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .bind_all_vitals(&e.vitals)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                (id, previous, false)
            }
            None => {
                let inserted = sqlx::query(
                    "INSERT INTO hosts (osquery_host_id, node_key, team_id, seen_time, \
                     refetch_requested, created_at, last_enrolled_at, updated_at) \
                     VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                )
                .bind(fit(&e.identifier))
                .bind(e.node_key.as_str())
                .bind(team)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .execute(&mut *tx)
                .await?;
                let id = inserted.last_insert_id();
                sqlx::query(concat!("UPDATE hosts SET ", vitals_set!(), " WHERE id = ?"))
                    .bind_all_vitals(&e.vitals)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                (id, None, true)
            }
        };
        let row = sqlx::query(concat!(
            "SELECT ",
            host_columns!(),
            " FROM hosts WHERE id = ?"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let host = crate::rows::stored_host(&row)?;
        tx.commit().await?;
        Ok(EnrolledHost {
            host,
            previous_node_key: previous.as_deref().and_then(NodeKey::new),
            created,
        })
    }

    async fn enroll(&self, e: &Enrollment) -> Result<EnrolledHost, sqlx::Error> {
        let mut attempt = 1;
        loop {
            match self.enroll_once(e).await {
                // Another node inserted this identifier between our lookup and our insert, or
                // InnoDB chose this transaction as a deadlock victim (concurrent enrollments
                // take gap locks on the same index range): start over; the next attempt
                // finds the other row or gets the lock.
                Err(error) if attempt < 3 && is_retryable(&error) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Writes a batch. Last-seen and label times — nearly every update — go in one
    /// `UPDATE … JOIN JSON_TABLE(?)` per chunk: one statement, one round trip, one parameter,
    /// whatever the number of hosts. Vitals (about one per host per hour) and label answers
    /// are written row by row in the same transaction.
    async fn flush(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), sqlx::Error> {
        let mut sorted: Vec<&(HostId, HostUpdate)> = updates.iter().collect();
        // One lock order for every node writing the same hosts: no deadlock between flushes.
        sorted.sort_by_key(|(host, _)| *host);
        for chunk in sorted.chunks(FLUSH_CHUNK) {
            let times = times_json(chunk);
            let has_rows = chunk
                .iter()
                .any(|(_, u)| u.vitals.is_some() || u.labels.is_some());
            if !has_rows {
                if let Some(times) = times {
                    execute_times(&self.pool, &times).await?;
                }
                continue;
            }
            let mut tx = self.pool.begin().await?;
            if let Some(times) = times {
                execute_times(&mut *tx, &times).await?;
            }
            for (host, update) in chunk {
                if let Some(vitals) = &update.vitals {
                    sqlx::query(concat!(
                        "UPDATE hosts SET detail_updated_at = COALESCE(?, detail_updated_at), \
                         refetch_requested = 0, updated_at = ?, ",
                        vitals_set!(),
                        " WHERE id = ?"
                    ))
                    .bind(update.detail_updated_at)
                    .bind(update.detail_updated_at.unwrap_or_default())
                    .bind_all_vitals(vitals)
                    .bind(host.0)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(labels) = &update.labels {
                    crate::mysql_admin::labels::write_results(
                        &mut tx,
                        *host,
                        labels,
                        update.label_updated_at.unwrap_or_default(),
                    )
                    .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// `[{"id":…,"seen":…,"label_at":…}, …]` for the hosts whose times change; `None` if none.
fn times_json(chunk: &[&(HostId, HostUpdate)]) -> Option<String> {
    let entries: Vec<serde_json::Value> = chunk
        .iter()
        .filter(|(_, u)| u.seen_time.is_some() || u.label_updated_at.is_some())
        .map(|(host, u)| {
            let mut entry = serde_json::Map::new();
            entry.insert("id".into(), host.0.into());
            if let Some(seen) = u.seen_time {
                entry.insert("seen".into(), seen.into());
            }
            if let Some(at) = u.label_updated_at {
                entry.insert("label_at".into(), at.into());
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    (!entries.is_empty()).then(|| serde_json::Value::Array(entries).to_string())
}

/// Moves last-seen and label times forward, never back, for every host in `times`.
async fn execute_times<'e>(
    executor: impl sqlx::Executor<'e, Database = MySql>,
    times: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE hosts h JOIN JSON_TABLE(?, '$[*]' COLUMNS (\
             id BIGINT UNSIGNED PATH '$.id', \
             seen BIGINT PATH '$.seen', \
             label_at BIGINT PATH '$.label_at')) AS t ON t.id = h.id \
         SET h.seen_time = GREATEST(h.seen_time, COALESCE(t.seen, 0)), \
             h.label_updated_at = GREATEST(h.label_updated_at, COALESCE(t.label_at, 0))",
    )
    .bind(times)
    .execute(executor)
    .await?;
    Ok(())
}

/// Lets a query chain bind the vitals in place.
trait BindVitals<'q> {
    fn bind_all_vitals(self, vitals: &'q Vitals) -> Self;
}

impl<'q> BindVitals<'q> for Query<'q> {
    fn bind_all_vitals(self, vitals: &'q Vitals) -> Self {
        bind_vitals(self, vitals)
    }
}

#[async_trait]
impl HostStore for MysqlStore {
    async fn load_hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            host_columns!(),
            " FROM hosts ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(crate::rows::stored_host)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Data(e.to_string()))
    }

    async fn load_host(&self, id: HostId) -> Result<Option<StoredHost>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            host_columns!(),
            " FROM hosts WHERE id = ?"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref()
            .map(crate::rows::stored_host)
            .transpose()
            .map_err(|e| StoreError::Data(e.to_string()))
    }

    async fn host_by_node_key(&self, node_key: &str) -> Result<Option<StoredHost>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            host_columns!(),
            " FROM hosts WHERE node_key = ?"
        ))
        .bind(node_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref()
            .map(crate::rows::stored_host)
            .transpose()
            .map_err(|e| StoreError::Data(e.to_string()))
    }

    async fn enroll_host(&self, enrollment: &Enrollment) -> Result<EnrolledHost, StoreError> {
        self.enroll(enrollment).await.map_err(unavailable)
    }

    async fn flush_hosts(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), StoreError> {
        self.flush(updates).await.map_err(unavailable)
    }

    async fn enroll_secrets(&self) -> Result<Vec<EnrollSecret>, StoreError> {
        let rows = sqlx::query("SELECT secret, team_id FROM enroll_secrets ORDER BY created_at")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(crate::rows::enroll_secret)
            .collect::<Result<Vec<EnrollSecret>, sqlx::Error>>()
            .map_err(|e| StoreError::Data(e.to_string()))
    }

    async fn ensure_enroll_secret(
        &self,
        secret: &str,
        team: Option<TeamId>,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(secret)
        .bind(team.map(|t| t.0))
        .bind(flotilla_engine::unix_now())
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn create_carve(&self, c: &CarveRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO carves (session_id, host_id, name, carve_id, request_id, block_count, \
             block_size, carve_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.session_id)
        .bind(c.host.0)
        .bind(&c.name)
        .bind(&c.carve_id)
        .bind(&c.request_id)
        .bind(c.block_count as i64)
        .bind(c.block_size as i64)
        .bind(c.carve_size as i64)
        .bind(c.created_at)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn finish_carve(
        &self,
        session_id: &str,
        path: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE carves SET completed_at = ?, path = ?, error = ? WHERE session_id = ?")
            .bind(now)
            .bind(path)
            .bind(error)
            .bind(session_id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
