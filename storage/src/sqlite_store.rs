//! `SqliteStore`: the engine's [`HostStore`] on an embedded SQLite file (WAL mode).
//!
//! Every write transaction in this crate starts with `BEGIN IMMEDIATE`: a deferred transaction
//! that reads first and writes later cannot wait for the write lock (SQLite answers "database
//! is locked" at once), while an immediate one waits its turn under the busy timeout.
//!
//! SQLite's busy handler waits by sleeping (1 ms, 2 ms, … up to 100 ms between tries), so
//! writers that queue on the file lock lose most of their time asleep: a thousand concurrent
//! enrollments took seconds each that way. The hot writers therefore queue in-process first,
//! on one fair lock (`write_gate`), and reach SQLite one at a time; rare admin writes still use
//! the busy timeout. Enrollments are group-committed: one task takes every enrollment waiting
//! (up to [`ENROLL_BATCH`]) and writes them in one transaction, so a burst of hosts enrolling at
//! once pays one commit per batch, not per host; if the batch fails, each enrollment is retried
//! in its own transaction so one bad row fails alone.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, NodeKey, TeamId};
use flotilla_engine::store::{
    CarveRecord, EnrollSecret, EnrolledHost, Enrollment, HostStore, HostUpdate, StoreError,
    StoredHost,
};
use flotilla_engine::vitals::Vitals;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{mpsc, oneshot};

/// A write transaction: `BEGIN IMMEDIATE`, for the reason the module comment gives.
pub(crate) async fn write_transaction(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Updates written in one transaction; bounds how long a flush holds SQLite's write lock.
const FLUSH_CHUNK: usize = 2_000;

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

type Query<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds the parameters of [`vitals_set!`] in order.
fn bind_vitals<'q>(query: Query<'q>, v: &'q Vitals) -> Query<'q> {
    query
        .bind(v.hostname.as_deref())
        .bind(v.computer_name.as_deref())
        .bind(v.uuid.as_deref())
        .bind(v.platform.as_deref())
        .bind(v.platform_like.as_deref())
        .bind(v.os_version.as_deref())
        .bind(v.build.as_deref())
        .bind(v.code_name.as_deref())
        .bind(v.osquery_version.as_deref())
        .bind(v.cpu_type.as_deref())
        .bind(v.cpu_brand.as_deref())
        .bind(v.cpu_physical_cores)
        .bind(v.cpu_logical_cores)
        .bind(v.memory)
        .bind(v.hardware_vendor.as_deref())
        .bind(v.hardware_model.as_deref())
        .bind(v.hardware_version.as_deref())
        .bind(v.hardware_serial.as_deref())
        .bind(v.primary_ip.as_deref())
        .bind(v.primary_mac.as_deref())
        .bind(v.uptime_seconds)
        .bind(v.distributed_interval)
        .bind(v.config_tls_refresh)
        .bind(v.logger_tls_period)
}

/// The columns [`crate::rows::stored_host`] reads.
macro_rules! host_columns {
    () => {
        "id, node_key, osquery_host_id, hostname, platform, team_id, distributed_interval, \
         config_tls_refresh, logger_tls_period, seen_time, detail_updated_at, label_updated_at, \
         refetch_requested"
    };
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Taken around the hot write transactions (see the module comment).
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// To the group-commit task of enrollments.
    enrollments: mpsc::Sender<EnrollJob>,
}

/// Enrollments written in one transaction at most.
const ENROLL_BATCH: usize = 256;

struct EnrollJob {
    enrollment: Enrollment,
    reply: oneshot::Sender<Result<EnrolledHost, sqlx::Error>>,
}

/// Writes enrollments as they come, each time all that wait (up to [`ENROLL_BATCH`]) in one
/// transaction. Ends when every [`SqliteStore`] clone is dropped.
async fn group_commit_enrollments(
    pool: SqlitePool,
    gate: Arc<tokio::sync::Mutex<()>>,
    mut jobs: mpsc::Receiver<EnrollJob>,
) {
    let mut batch = Vec::with_capacity(ENROLL_BATCH);
    while jobs.recv_many(&mut batch, ENROLL_BATCH).await > 0 {
        let _gate = gate.lock().await;
        let together = async {
            let mut tx = write_transaction(&pool).await?;
            let mut enrolled = Vec::with_capacity(batch.len());
            for job in &batch {
                enrolled.push(SqliteStore::enroll_in(&mut tx, &job.enrollment).await?);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(enrolled)
        };
        match together.await {
            Ok(enrolled) => {
                for (job, host) in batch.drain(..).zip(enrolled) {
                    let _ = job.reply.send(Ok(host));
                }
            }
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "an enrollment batch failed; writing each alone");
                for job in batch.drain(..) {
                    let alone = async {
                        let mut tx = write_transaction(&pool).await?;
                        let host = SqliteStore::enroll_in(&mut tx, &job.enrollment).await?;
                        tx.commit().await?;
                        Ok(host)
                    };
                    let _ = job.reply.send(alone.await);
                }
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations: {e}")))?;
        let write_gate = Arc::new(tokio::sync::Mutex::new(()));
        let (enrollments, jobs) = mpsc::channel(4 * ENROLL_BATCH);
        tokio::spawn(group_commit_enrollments(
            pool.clone(),
            write_gate.clone(),
            jobs,
        ));
        Ok(SqliteStore {
            pool,
            write_gate,
            enrollments,
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn find_for_enrollment(
        tx: &mut Transaction<'_, Sqlite>,
        e: &Enrollment,
    ) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
        let by_identifier = sqlx::query("SELECT id, node_key FROM hosts WHERE osquery_host_id = ?")
            .bind(&e.identifier)
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
             ORDER BY last_enrolled_at DESC LIMIT 1",
        )
        .bind(uuid)
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

    /// Enrolls through the group-commit task.
    async fn enroll(&self, e: &Enrollment) -> Result<EnrolledHost, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let job = EnrollJob {
            enrollment: e.clone(),
            reply,
        };
        let closed = || sqlx::Error::WorkerCrashed;
        self.enrollments.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// One enrollment's statements, inside the caller's write transaction.
    async fn enroll_in(
        tx: &mut Transaction<'static, Sqlite>,
        e: &Enrollment,
    ) -> Result<EnrolledHost, sqlx::Error> {
        let existing = Self::find_for_enrollment(tx, e).await?;
        let team = e.team.map(|t| t.0 as i64);
        let (id, previous, created) = match existing {
            Some((id, previous)) => {
                sqlx::query(concat!(
                    "UPDATE hosts SET node_key = ?, osquery_host_id = ?, team_id = ?, \
                     last_enrolled_at = ?, updated_at = ?, seen_time = MAX(seen_time, ?), ",
                    vitals_set!(),
                    " WHERE id = ?"
                ))
                .bind(e.node_key.as_str())
                .bind(&e.identifier)
                .bind(team)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .bind_all_vitals(&e.vitals)
                .bind(id)
                .execute(&mut **tx)
                .await?;
                (id, previous, false)
            }
            None => {
                let row = sqlx::query(
                    "INSERT INTO hosts (osquery_host_id, node_key, team_id, seen_time, \
                     refetch_requested, created_at, last_enrolled_at, updated_at) \
                     VALUES (?, ?, ?, ?, 1, ?, ?, ?) RETURNING id",
                )
                .bind(&e.identifier)
                .bind(e.node_key.as_str())
                .bind(team)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .bind(e.now)
                .fetch_one(&mut **tx)
                .await?;
                let id: i64 = row.try_get("id")?;
                sqlx::query(concat!("UPDATE hosts SET ", vitals_set!(), " WHERE id = ?"))
                    .bind_all_vitals(&e.vitals)
                    .bind(id)
                    .execute(&mut **tx)
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
        .fetch_one(&mut **tx)
        .await?;
        let host = crate::rows::stored_host(&row)?;
        Ok(EnrolledHost {
            host,
            previous_node_key: previous.as_deref().and_then(NodeKey::new),
            created,
        })
    }

    async fn flush(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), sqlx::Error> {
        for chunk in updates.chunks(FLUSH_CHUNK) {
            let _gate = self.write_gate.lock().await;
            let mut tx = write_transaction(&self.pool).await?;
            for (host, update) in chunk {
                let id = host.0 as i64;
                if let Some(seen) = update.seen_time {
                    sqlx::query("UPDATE hosts SET seen_time = MAX(seen_time, ?) WHERE id = ?")
                        .bind(seen)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
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
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(at) = update.label_updated_at {
                    sqlx::query(
                        "UPDATE hosts SET label_updated_at = MAX(label_updated_at, ?) WHERE id = ?",
                    )
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(labels) = &update.labels {
                    crate::sqlite_admin::labels::write_results(
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
impl HostStore for SqliteStore {
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
        .bind(id.0 as i64)
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
        let result = sqlx::query(
            "INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (secret) DO NOTHING",
        )
        .bind(secret)
        .bind(team.map(|t| t.0 as i64))
        .bind(flotilla_engine::unix_now())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(result.rows_affected() > 0)
    }

    async fn create_carve(&self, c: &CarveRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO carves (session_id, host_id, name, carve_id, request_id, block_count, \
             block_size, carve_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.session_id)
        .bind(c.host.0 as i64)
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
