//! The two backends every storage check runs against: a SQLite file in a temporary directory,
//! and a scratch database on the MySQL/MariaDB server at `FLOTILLA_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306`), created for the test and dropped after it, also when the
//! test panics. An unreachable server fails the MySQL variants with a message saying so,
//! unless `FLOTILLA_TEST_SKIP_MYSQL=1` asks to skip them.
//!
//! [`backend_tests!`] turns each check (an `async fn(&Backend)`) into one `#[tokio::test]` per
//! backend, so the bodies are written once.

#![allow(dead_code)]

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use flotilla_storage::{MysqlOptions, SqlStore};
use sqlx::Connection;

/// One backend under test, with what keeps its database alive.
pub enum Backend {
    Sqlite {
        store: SqlStore,
        _dir: tempfile::TempDir,
    },
    Mysql {
        store: SqlStore,
        _database: ScratchDatabase,
    },
}

impl Backend {
    pub async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("flotilla.db"))
            .await
            .unwrap();
        Backend::Sqlite { store, _dir: dir }
    }

    /// `None` when `FLOTILLA_TEST_SKIP_MYSQL=1`.
    pub async fn mysql() -> Option<Backend> {
        if skip_mysql() {
            eprintln!("FLOTILLA_TEST_SKIP_MYSQL=1: skipping the MySQL variant");
            return None;
        }
        let database = ScratchDatabase::create().await;
        let store = SqlStore::connect_mysql(&database.url, &MysqlOptions::default())
            .await
            .unwrap_or_else(|e| panic!("opening the scratch database {}: {e}", database.name));
        Some(Backend::Mysql {
            store,
            _database: database,
        })
    }

    pub fn hosts(&self) -> &dyn flotilla_engine::store::HostStore {
        match self {
            Backend::Sqlite { store, .. } => store,
            Backend::Mysql { store, .. } => store,
        }
    }

    pub fn admin(&self) -> &dyn flotilla_storage::admin::AdminStore {
        match self {
            Backend::Sqlite { store, .. } => store,
            Backend::Mysql { store, .. } => store,
        }
    }

    /// A second, independent handle on the same database (a restarted process, or another
    /// node sharing it); migrations run again and must find nothing to do.
    pub async fn reopen(&self) -> Box<dyn flotilla_engine::store::HostStore> {
        match self {
            Backend::Sqlite { _dir, .. } => Box::new(
                SqlStore::open_sqlite(&_dir.path().join("flotilla.db"))
                    .await
                    .unwrap(),
            ),
            Backend::Mysql { _database, .. } => Box::new(
                SqlStore::connect_mysql(&_database.url, &MysqlOptions::default())
                    .await
                    .unwrap(),
            ),
        }
    }

    pub fn campaigns(&self) -> &dyn flotilla_engine::store::CampaignStore {
        match self {
            Backend::Sqlite { store, .. } => store,
            Backend::Mysql { store, .. } => store,
        }
    }
}

fn skip_mysql() -> bool {
    std::env::var("FLOTILLA_TEST_SKIP_MYSQL").is_ok_and(|v| v == "1")
}

/// The server URL, without a database.
pub fn server_url() -> String {
    std::env::var("FLOTILLA_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
        .trim_end_matches('/')
        .to_owned()
}

/// A database `flotilla_t_<random>` on the test server, dropped when this is dropped.
pub struct ScratchDatabase {
    pub name: String,
    /// URL of the database itself.
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create() -> ScratchDatabase {
        let server = server_url();
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let name = format!("flotilla_t_{random:016x}");
        let mut conn = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::MySqlConnection::connect(&server),
        )
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            panic!(
                "MySQL/MariaDB at {server} is unreachable ({e}). The storage suite runs against \
                 it; start MariaDB (apt-get install mariadb-server) or set \
                 FLOTILLA_TEST_MYSQL_URL, or set FLOTILLA_TEST_SKIP_MYSQL=1 to skip the MySQL \
                 variants"
            )
        });
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("creating the scratch database");
        let _ = conn.close().await;
        ScratchDatabase {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime that is shutting down (or unwinding): use a thread of
        // our own with its own small runtime.
        let server = server_url();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = sqlx::MySqlConnection::connect(&server).await?;
                drop_database(&mut conn, &name).await?;
                conn.close().await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                eprintln!("could not drop the scratch database {}: {error}", self.name)
            }
            Err(_) => eprintln!("could not drop the scratch database {}", self.name),
        }
    }
}

/// `backend_tests!(check_a, check_b)` → `mod check_a { sqlite, mysql }`, … each running
/// `check_a(&Backend)` on a fresh database of that backend.
#[macro_export]
macro_rules! backend_tests {
    ($($check:ident),+ $(,)?) => {
        $(
            mod $check {
                #[tokio::test]
                async fn sqlite() {
                    let backend = $crate::backends::Backend::sqlite().await;
                    super::$check(&backend).await;
                }

                #[tokio::test]
                async fn mysql() {
                    let Some(backend) = $crate::backends::Backend::mysql().await else {
                        return;
                    };
                    super::$check(&backend).await;
                }
            }
        )+
    };
}

/// Drops `name` after ending every session still using it: a test that panicked mid-transaction
/// leaves a pooled connection holding a metadata lock that `DROP DATABASE` would wait on.
async fn drop_database(conn: &mut sqlx::MySqlConnection, name: &str) -> Result<(), sqlx::Error> {
    let sessions: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    for id in sessions {
        // Already gone is fine.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .execute(&mut *conn)
            .await;
    }
    sqlx::raw_sql("SET SESSION lock_wait_timeout = 30")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{name}`"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
