//! [`SqlStore`]: the one store, on SQLite or MySQL. It implements the engine's
//! [`HostStore`](flotilla_engine::store::HostStore) (`hosts/`) and
//! [`CampaignStore`](flotilla_engine::store::CampaignStore) (`campaigns.rs`) and every admin
//! area trait (`admin/`), each written once against [`Db`]; what differs between the two
//! databases is in `sql/`.

use std::path::Path;

use flotilla_engine::store::StoreError;

use crate::hosts::enroll::Enroller;
use crate::sql::{self, Db, MysqlOptions, PoolUsage};

/// The store of a Flotilla node: an embedded SQLite file, or a MySQL database that several
/// nodes may share. Cheap to clone (a pool handle).
///
/// On MySQL nothing assumes this process is the only writer: enrollment locks the host row it
/// re-keys (`SELECT … FOR UPDATE`) and retries when another node inserted the same identifier
/// first or InnoDB chose it as a deadlock victim; flushes only ever move times forward
/// (`GREATEST`) and lock rows in id order.
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) db: Db,
    /// How enrollments reach the database (group-committed on SQLite).
    pub(crate) enroller: Enroller,
    /// Ids of interned software, so the flush resolves a host's set without queries.
    pub(crate) software: std::sync::Arc<crate::hosts::software::SoftwareCache>,
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database file at `path` and applies its
    /// migrations (`migrations/sqlite/`).
    pub async fn open_sqlite(path: &Path) -> Result<SqlStore, StoreError> {
        SqlStore::over(sql::sqlite::open(path).await?).await
    }

    /// Connects to the MySQL or MariaDB database at `url`
    /// (`mysql://user:password@host:3306/database`) and applies its migrations
    /// (`migrations/mysql/`). Fails with a message naming the cause when the URL is malformed
    /// or the server cannot be reached within `options.connect_timeout`.
    pub async fn connect_mysql(url: &str, options: &MysqlOptions) -> Result<SqlStore, StoreError> {
        SqlStore::over(sql::mysql::connect(url, options).await?).await
    }

    /// The store over a migrated database, with node keys left by an older version hashed.
    async fn over(db: Db) -> Result<SqlStore, StoreError> {
        let hashed = crate::hosts::keys::hash_legacy_keys(&db).await?;
        if hashed > 0 {
            tracing::info!(hosts = hashed, "stored node keys replaced by their digests");
        }
        let enroller = Enroller::for_db(&db);
        Ok(SqlStore {
            db,
            enroller,
            software: Default::default(),
        })
    }

    /// The database's name for logs and metrics: `sqlite` or `mysql`.
    pub fn backend(&self) -> &'static str {
        match self.db.dialect() {
            sql::Dialect::Sqlite => "sqlite",
            sql::Dialect::Mysql => "mysql",
        }
    }

    /// The connection pool's usage, for `/metrics`.
    pub fn pool_usage(&self) -> PoolUsage {
        self.db.pool_usage()
    }

    /// Closes the pool: waits for connections in use to be returned.
    pub async fn close(&self) {
        self.db.close().await
    }
}
