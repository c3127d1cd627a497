//! [`CarveStore`]: file carves and their blocks, in the database (Fleet's default carve
//! storage), so that any node takes any block of any carve and serves it back.
//!
//! A carve is a row of `carves`; each block a row of `carve_blocks` keyed by (carve, block).
//! Storing a block is one transaction: the block is inserted unless it is there already (osquery
//! resends blocks), the carve's count of distinct blocks goes up when it was new, and the
//! transaction that brings the count to `block_count` marks the carve complete, so exactly one
//! caller, on whichever node, learns that it completed it.

use async_trait::async_trait;
use flotilla_engine::ids::HostId;
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::common::store_error;
use crate::rows::ModelRow;
use crate::sql::{Dialect, query, sql};

/// A file carve announced by `carve/begin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCarve {
    pub session_id: String,
    pub host: HostId,
    /// Fleet's name: `<hostname>-<UTC time>-<request_id>`.
    pub name: String,
    pub carve_id: String,
    pub request_id: String,
    pub block_count: u64,
    pub block_size: u64,
    pub carve_size: u64,
    pub created_at: i64,
}

/// A carve as stored, with its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carve {
    pub id: u64,
    pub session_id: String,
    pub host: HostId,
    pub name: String,
    pub carve_id: String,
    pub request_id: String,
    pub block_count: u64,
    pub block_size: u64,
    pub carve_size: u64,
    pub created_at: i64,
    /// Distinct blocks stored.
    pub blocks_received: u64,
    /// The highest block id stored (-1: none yet).
    pub max_block: i64,
    pub completed_at: Option<i64>,
    /// Where the node that completed the carve assembled it, on its own disk.
    pub path: Option<String>,
    pub error: Option<String>,
    /// Its blocks were deleted: only the record is left.
    pub expired: bool,
}

impl Carve {
    /// Neither complete, failed nor expired: blocks are still expected.
    pub fn is_open(&self) -> bool {
        self.completed_at.is_none() && self.error.is_none() && !self.expired
    }
}

/// How many carves may be open at once (begun, not complete, failed or expired).
#[derive(Clone, Copy, Debug)]
pub struct CarveLimits {
    pub per_host: u64,
    pub total: u64,
}

/// What [`CarveStore::begin_carve`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarveBegun {
    Opened,
    /// The host has `per_host` carves open already.
    HostBusy,
    /// `total` carves are open already.
    Full,
}

/// What [`CarveStore::put_carve_block`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockStored {
    /// Distinct blocks stored now.
    pub blocks_received: u64,
    /// This call stored the carve's last missing block and marked it complete.
    pub completed: bool,
}

#[async_trait]
pub trait CarveStore: Send + Sync + 'static {
    /// Records a new carve unless its host, or the whole server, has too many open.
    async fn begin_carve(
        &self,
        carve: &NewCarve,
        limits: CarveLimits,
    ) -> Result<CarveBegun, StoreError>;

    async fn carve_by_session(&self, session_id: &str) -> Result<Option<Carve>, StoreError>;

    async fn carve(&self, id: u64) -> Result<Option<Carve>, StoreError>;

    /// Carves, newest first; expired ones only when `expired` is set.
    async fn list_carves(
        &self,
        expired: bool,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Carve>, StoreError>;

    /// Stores block `block_id` of carve `carve` (a block stored already is left as it is).
    async fn put_carve_block(
        &self,
        carve: u64,
        block_id: u64,
        data: &[u8],
        now: i64,
    ) -> Result<BlockStored, StoreError>;

    /// Block `block_id` of carve `carve`, if stored.
    async fn carve_block(&self, carve: u64, block_id: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records where the completing node assembled the carve.
    async fn set_carve_path(&self, carve: u64, path: &str) -> Result<(), StoreError>;

    /// Marks an open carve failed with `error`; its blocks are deleted.
    async fn fail_carve(&self, carve: u64, error: &str, now: i64) -> Result<(), StoreError>;

    /// Expires carves begun before `created_before`: their blocks are deleted, and those still
    /// open are marked failed. Answers how many expired.
    async fn expire_carves(&self, created_before: i64, now: i64) -> Result<u64, StoreError>;

    /// The largest block, in bytes, the database takes in one row (MySQL's
    /// `max_allowed_packet`, less room for the statement).
    async fn max_carve_block(&self) -> Result<u64, StoreError>;
}

/// Carves expired per statement, so a backlog never makes one huge transaction.
const EXPIRE_BATCH: i64 = 100;

/// Room left in a MySQL packet for the rest of the `INSERT` beside a block's bytes.
const STATEMENT_ROOM: u64 = 4096;

/// SQLite's default `SQLITE_MAX_LENGTH`: the largest value a row holds.
const SQLITE_MAX_LENGTH: u64 = 1_000_000_000;

macro_rules! carve_columns {
    () => {
        "id, session_id, host_id, name, carve_id, request_id, block_count, block_size, \
         carve_size, created_at, blocks_received, max_block, completed_at, path, error, expired"
    };
}

fn carve_row(row: &impl ModelRow) -> Result<Carve, sqlx::Error> {
    Ok(Carve {
        id: row.id("id")?,
        session_id: row.text("session_id")?,
        host: HostId(row.id("host_id")?),
        name: row.text("name")?,
        carve_id: row.text("carve_id")?,
        request_id: row.text("request_id")?,
        block_count: row.int("block_count")?.max(0) as u64,
        block_size: row.int("block_size")?.max(0) as u64,
        carve_size: row.int("carve_size")?.max(0) as u64,
        created_at: row.int("created_at")?,
        blocks_received: row.int("blocks_received")?.max(0) as u64,
        max_block: row.int("max_block")?,
        completed_at: row.opt_int("completed_at")?,
        path: row.opt_text("path")?,
        error: row.opt_text("error")?,
        expired: row.flag("expired")?,
    })
}

impl SqlStore {
    async fn count_open(&self, host: Option<HostId>) -> Result<u64, sqlx::Error> {
        let mut q = query(
            "SELECT COUNT(*) AS n FROM carves \
             WHERE completed_at IS NULL AND error IS NULL AND expired = 0",
        );
        if let Some(host) = host {
            q.push(" AND host_id = ").push_bind(host);
        }
        Ok(q.fetch_one(&self.db).await?.int("n")?.max(0) as u64)
    }
}

#[async_trait]
impl CarveStore for SqlStore {
    async fn begin_carve(
        &self,
        c: &NewCarve,
        limits: CarveLimits,
    ) -> Result<CarveBegun, StoreError> {
        // Counted outside a transaction: two begins racing may both pass, which only lets a
        // cap be exceeded by the few requests in flight at that moment.
        if self.count_open(Some(c.host)).await.map_err(store_error)? >= limits.per_host {
            return Ok(CarveBegun::HostBusy);
        }
        if self.count_open(None).await.map_err(store_error)? >= limits.total {
            return Ok(CarveBegun::Full);
        }
        let dialect = self.db.dialect();
        query(
            "INSERT INTO carves (session_id, host_id, name, carve_id, request_id, block_count, \
             block_size, carve_size, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.session_id)
        .bind(c.host)
        .bind(&c.name)
        .bind(dialect.fit(&c.carve_id))
        .bind(dialect.fit(&c.request_id))
        .bind(c.block_count)
        .bind(c.block_size)
        .bind(c.carve_size)
        .bind(c.created_at)
        .execute(&self.db)
        .await
        .map_err(store_error)?;
        Ok(CarveBegun::Opened)
    }

    async fn carve_by_session(&self, session_id: &str) -> Result<Option<Carve>, StoreError> {
        query(concat!(
            "SELECT ",
            carve_columns!(),
            " FROM carves WHERE session_id = ?"
        ))
        .bind(session_id)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?
        .map(|row| carve_row(&row).map_err(store_error))
        .transpose()
    }

    async fn carve(&self, id: u64) -> Result<Option<Carve>, StoreError> {
        query(concat!(
            "SELECT ",
            carve_columns!(),
            " FROM carves WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?
        .map(|row| carve_row(&row).map_err(store_error))
        .transpose()
    }

    async fn list_carves(
        &self,
        expired: bool,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Carve>, StoreError> {
        let sql = if expired {
            concat!(
                "SELECT ",
                carve_columns!(),
                " FROM carves ORDER BY id DESC LIMIT ? OFFSET ?"
            )
        } else {
            concat!(
                "SELECT ",
                carve_columns!(),
                " FROM carves WHERE expired = 0 ORDER BY id DESC LIMIT ? OFFSET ?"
            )
        };
        query(sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?
            .iter()
            .map(|row| carve_row(row).map_err(store_error))
            .collect()
    }

    async fn put_carve_block(
        &self,
        carve: u64,
        block_id: u64,
        data: &[u8],
        now: i64,
    ) -> Result<BlockStored, StoreError> {
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let dialect = tx.dialect();
        let inserted = query(sql!(
            dialect,
            INSERT_IGNORE,
            " INTO carve_blocks (carve_id, block_id, data) VALUES (?, ?, ?)"
        ))
        .bind(carve)
        .bind(block_id)
        .bind(data)
        .execute(&mut tx)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected == 1 {
            query(sql!(
                dialect,
                "UPDATE carves SET blocks_received = blocks_received + 1, max_block = ",
                GREATEST,
                "(max_block, ?) WHERE id = ?"
            ))
            .bind(block_id)
            .bind(carve)
            .execute(&mut tx)
            .await
            .map_err(store_error)?;
        }
        let row = query(sql!(
            dialect,
            "SELECT blocks_received, block_count, completed_at FROM carves WHERE id = ?",
            FOR_UPDATE
        ))
        .bind(carve)
        .fetch_one(&mut tx)
        .await
        .map_err(store_error)?;
        let received = row.int("blocks_received").map_err(store_error)?.max(0) as u64;
        let count = row.int("block_count").map_err(store_error)?.max(0) as u64;
        let done = row.opt_int("completed_at").map_err(store_error)?.is_some();
        let completed = !done && received >= count;
        if completed {
            query("UPDATE carves SET completed_at = ? WHERE id = ?")
                .bind(now)
                .bind(carve)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(BlockStored {
            blocks_received: received,
            completed,
        })
    }

    async fn carve_block(&self, carve: u64, block_id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        query("SELECT data FROM carve_blocks WHERE carve_id = ? AND block_id = ?")
            .bind(carve)
            .bind(block_id)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?
            .map(|row| row.blob("data").map_err(store_error))
            .transpose()
    }

    async fn set_carve_path(&self, carve: u64, path: &str) -> Result<(), StoreError> {
        query("UPDATE carves SET path = ? WHERE id = ?")
            .bind(path)
            .bind(carve)
            .execute(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn fail_carve(&self, carve: u64, error: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await.map_err(store_error)?;
        let failed = query(
            "UPDATE carves SET error = ?, completed_at = ? \
             WHERE id = ? AND completed_at IS NULL AND error IS NULL",
        )
        .bind(error)
        .bind(now)
        .bind(carve)
        .execute(&mut tx)
        .await
        .map_err(store_error)?;
        if failed.rows_affected > 0 {
            query("DELETE FROM carve_blocks WHERE carve_id = ?")
                .bind(carve)
                .execute(&mut tx)
                .await
                .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)?;
        Ok(())
    }

    async fn expire_carves(&self, created_before: i64, now: i64) -> Result<u64, StoreError> {
        let mut expired = 0;
        loop {
            let ids: Vec<u64> =
                query("SELECT id FROM carves WHERE expired = 0 AND created_at < ? LIMIT ?")
                    .bind(created_before)
                    .bind(EXPIRE_BATCH)
                    .fetch_all(&self.db)
                    .await
                    .map_err(store_error)?
                    .iter()
                    .map(|row| row.id("id"))
                    .collect::<Result<_, _>>()
                    .map_err(store_error)?;
            if ids.is_empty() {
                return Ok(expired);
            }
            let dialect = self.db.dialect();
            let mut tx = self.db.begin().await.map_err(store_error)?;
            let mut delete = query("DELETE FROM carve_blocks WHERE carve_id IN ");
            delete.push_id_set(dialect, ids.iter().copied());
            delete.execute(&mut tx).await.map_err(store_error)?;
            let mut open = query(
                "UPDATE carves SET error = 'expired before all blocks arrived', completed_at = ",
            );
            open.push_bind(now)
                .push(" WHERE completed_at IS NULL AND error IS NULL AND id IN ")
                .push_id_set(dialect, ids.iter().copied());
            open.execute(&mut tx).await.map_err(store_error)?;
            let mut mark = query("UPDATE carves SET expired = 1 WHERE id IN ");
            mark.push_id_set(dialect, ids.iter().copied());
            expired += mark
                .execute(&mut tx)
                .await
                .map_err(store_error)?
                .rows_affected;
            tx.commit().await.map_err(store_error)?;
        }
    }

    async fn max_carve_block(&self) -> Result<u64, StoreError> {
        match self.db.dialect() {
            Dialect::Sqlite => Ok(SQLITE_MAX_LENGTH),
            Dialect::Mysql => {
                let row = query("SELECT @@max_allowed_packet AS n")
                    .fetch_one(&self.db)
                    .await
                    .map_err(store_error)?;
                let packet = row.int("n").map_err(store_error)?.max(0) as u64;
                Ok(packet.saturating_sub(STATEMENT_ROOM))
            }
        }
    }
}
