//! Opening the embedded SQLite database (WAL mode), with the migrations in
//! `migrations/sqlite/`.
//!
//! SQLite takes one writer at a time. Every write transaction starts with `BEGIN IMMEDIATE`
//! ([`Db::begin`]). SQLite's busy handler waits by sleeping (1 ms, 2 ms, … up to 100 ms between
//! tries), so writers that queue on the file lock lose most of their time asleep: a thousand
//! concurrent enrollments took seconds each that way. The hot writers (enrollment and the
//! host flushes) therefore queue in-process first, on one fair lock ([`Db::begin_hot`]), and
//! reach SQLite one at a time; rare admin writes still use the busy timeout.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use flotilla_engine::store::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Db, Pool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Opens (creating if needed) the database file at `path` and applies migrations.
pub(crate) async fn open(path: &Path) -> Result<Db, StoreError> {
    let unavailable = |e: sqlx::Error| StoreError::Unavailable(e.to_string());
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(unavailable)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        // A fleet's software makes the file large (hundreds of MB at 100,000 hosts) and its
        // writes land all over `host_software`'s second index: a 32 MiB page cache per
        // connection and reads through mmap, instead of SQLite's 2 MB and a `pread` per page
        // (which made a first ingest spend most of its time in the kernel; BENCHMARKS.md).
        .pragma("cache_size", "-32768")
        .pragma("mmap_size", "1073741824");
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(unavailable)?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migrations: {e}")))?;
    Ok(Db::new(Pool::Sqlite(pool)))
}
