//! Connecting to MySQL 8 or MariaDB 10.11, with the migrations in `migrations/mysql/` (one
//! schema file, `BIGINT UNSIGNED` ids, utf8mb4, byte-wise text except case-insensitive emails
//! and team and label names).
//!
//! **Failing fast.** The pool waits at most `connect_timeout` for a connection, and every
//! connection is checked before use, so a dead server turns into
//! [`StoreError::Unavailable`] within seconds instead of hanging a request.

use std::str::FromStr;
use std::time::Duration;

use flotilla_engine::store::StoreError;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use super::{Db, Pool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// How [`connect`] sizes and times its pool.
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

/// Connects to `url` (`mysql://user:password@host:3306/database`), checks the server answers,
/// and applies the migrations (under MySQL's advisory lock, so nodes starting together do not
/// race). Fails with a message naming the cause when the URL is malformed or the server
/// cannot be reached within `connect_timeout`.
pub(crate) async fn connect(url: &str, options: &MysqlOptions) -> Result<Db, StoreError> {
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
    Ok(Db::new(Pool::Mysql(pool)))
}

/// A duplicate key or a deadlock (SQLSTATE 40001): worth running the transaction again.
pub(crate) fn is_retryable(error: &sqlx::Error) -> bool {
    crate::common::is_unique_violation(error)
        || matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("40001"))
}
