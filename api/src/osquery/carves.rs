//! `Carves`: file carves uploaded by osquery (`carve/begin`, then `carve/block` per block).
//!
//! A session and its blocks live in the store (Fleet's default carve storage), not in this
//! node's memory: behind a round-robin balancer each block may reach a different node, and any
//! node takes it. Blocks may repeat (osquery retries) or arrive out of order without harm; the
//! carve is complete when the store holds `block_count` distinct blocks, and the store tells
//! exactly one request that it completed it. That request's node then assembles the carve into
//! `<data-dir>/carves/<session_id>.tar` (`.tar.zst` when it starts with zstd's magic) in the
//! background; the blocks stay in the store, served by `GET /api/v1/fleet/carves/{id}/block/{n}`
//! from any node, until the carve expires (`--carve-expiry`, Fleet's 24 hours).
//!
//! No file is open between blocks, so an abandoned carve costs rows, not descriptors; the
//! sweep ([`Carves::sweep`], at start and every minute) expires old carves and removes
//! assemblies a crash left half-written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::OnceCell;

use flotilla_engine::record::HostRecord;
use flotilla_storage::admin::AdminStore;
use flotilla_storage::carves::{Carve, CarveBegun, CarveLimits, NewCarve};

use crate::osquery::error::OsqueryError;

/// Largest block osquery may announce (Fleet's limit).
const MAX_BLOCK_SIZE: u64 = 256 << 20;
/// Largest carve (Fleet's limit).
const MAX_CARVE_SIZE: u64 = 8 << 30;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Blocks read from the store per step while a carve is assembled.
const ASSEMBLY_BATCH: u64 = 16;
/// A `.part` file untouched this long is left over from a crash: no assembly is that slow.
const STALE_PART: Duration = Duration::from_secs(3600);

pub struct CarveBegin {
    pub block_count: u64,
    pub block_size: u64,
    pub carve_size: u64,
    pub carve_id: String,
    pub request_id: String,
}

pub struct CarveBlock {
    pub session_id: String,
    pub request_id: String,
    pub block_id: u64,
    pub data: String,
}

/// How many carves may be open, and how long a carve is kept.
#[derive(Clone, Copy, Debug)]
pub struct CarveSettings {
    pub limits: CarveLimits,
    pub expiry: Duration,
}

pub struct Carves {
    dir: PathBuf,
    store: Arc<dyn AdminStore>,
    settings: CarveSettings,
    /// The largest block the database takes in one row, asked once.
    max_block: OnceCell<u64>,
}

impl Carves {
    pub fn new(
        dir: PathBuf,
        store: Arc<dyn AdminStore>,
        settings: CarveSettings,
    ) -> std::io::Result<Carves> {
        std::fs::create_dir_all(&dir)?;
        Ok(Carves {
            dir,
            store,
            settings,
            max_block: OnceCell::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Carves for `GET /carves`, newest first.
    pub async fn list(
        &self,
        expired: bool,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Carve>, flotilla_engine::store::StoreError> {
        self.store.list_carves(expired, offset, limit).await
    }

    pub async fn get(&self, id: u64) -> Result<Option<Carve>, flotilla_engine::store::StoreError> {
        self.store.carve(id).await
    }

    /// Block `block_id` of carve `id`, as stored.
    pub async fn stored_block(
        &self,
        id: u64,
        block_id: u64,
    ) -> Result<Option<Vec<u8>>, flotilla_engine::store::StoreError> {
        self.store.carve_block(id, block_id).await
    }

    /// Opens a session for a carve announced by `host`; returns its session id.
    pub async fn begin(
        &self,
        host: &HostRecord,
        begin: CarveBegin,
        now: i64,
    ) -> Result<String, OsqueryError> {
        check_begin(&begin)?;
        let max_block = *self
            .max_block
            .get_or_try_init(|| self.store.max_carve_block())
            .await
            .map_err(unavailable)?;
        if begin.block_size > max_block {
            return Err(OsqueryError::BadRequest(format!(
                "block_size {} exceeds the {max_block} bytes the database takes in one row \
                 (raise MySQL's max_allowed_packet or lower osquery's --carver_block_size)",
                begin.block_size
            )));
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        let timestamp = chrono::DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let name = flotilla_engine::text::clip_owned(format!(
            "{}-{timestamp}-{}",
            host.hostname, begin.request_id
        ));
        let carve = NewCarve {
            session_id: session_id.clone(),
            host: host.id,
            name,
            carve_id: begin.carve_id,
            request_id: begin.request_id,
            block_count: begin.block_count,
            block_size: begin.block_size,
            carve_size: begin.carve_size,
            created_at: now,
        };
        let limits = self.settings.limits;
        match self
            .store
            .begin_carve(&carve, limits)
            .await
            .map_err(unavailable)?
        {
            CarveBegun::Opened => Ok(session_id),
            CarveBegun::HostBusy => Err(OsqueryError::Unavailable(format!(
                "this host has {} carves in progress already; they must complete or expire first",
                limits.per_host
            ))),
            CarveBegun::Full => Err(OsqueryError::Unavailable(format!(
                "{} carves are in progress already; try again later",
                limits.total
            ))),
        }
    }

    /// Stores one block; the carve completes when its last distinct block is stored. `sender`
    /// is the host whose node key came with the block (osquery 5.23 and later send one): a
    /// session only takes blocks from the host that began it.
    pub async fn block(
        &self,
        block: CarveBlock,
        sender: Option<&HostRecord>,
        now: i64,
    ) -> Result<(), OsqueryError> {
        let carve = self
            .store
            .carve_by_session(&block.session_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| OsqueryError::BadRequest("unknown carve session_id".into()))?;
        if carve.request_id != block.request_id {
            return Err(OsqueryError::BadRequest("request_id does not match".into()));
        }
        if sender.is_some_and(|host| host.id != carve.host) {
            return Err(OsqueryError::BadRequest(
                "this carve session belongs to another host".into(),
            ));
        }
        if carve.completed_at.is_some() && carve.error.is_none() {
            // A block resent after the carve completed (osquery retries a block whose answer
            // it did not see): it is stored already.
            return Ok(());
        }
        if carve.expired {
            return Err(OsqueryError::BadRequest("the carve has expired".into()));
        }
        if let Some(error) = &carve.error {
            return Err(OsqueryError::BadRequest(format!(
                "the carve failed: {error}"
            )));
        }
        let data = match check_block(&carve, &block) {
            Ok(data) => data,
            Err(message) => {
                // osquery does not read the answer to a block: the error is kept on the carve,
                // where an admin sees it, and the carve is failed rather than left to expire.
                tracing::warn!(carve = %carve.name, session = %carve.session_id, error = %message, "carve block refused");
                if let Err(error) = self.store.fail_carve(carve.id, &message, now).await {
                    tracing::warn!(%error, "recording a carve's failure");
                }
                return Err(OsqueryError::BadRequest(message));
            }
        };
        let stored = self
            .store
            .put_carve_block(carve.id, block.block_id, &data, now)
            .await
            .map_err(unavailable)?;
        if stored.completed {
            tracing::info!(carve = %carve.name, session = %carve.session_id, bytes = carve.carve_size, "carve complete");
            let (store, dir) = (self.store.clone(), self.dir.clone());
            tokio::spawn(async move {
                if let Err(error) = assemble(store.as_ref(), &dir, &carve).await {
                    tracing::warn!(%error, carve = %carve.name, "carve complete in the store but not assembled on disk");
                }
            });
        }
        Ok(())
    }

    /// Expires carves older than `--carve-expiry` (their blocks are deleted; those still open
    /// are marked failed) and removes half-written assemblies a crash left behind.
    pub async fn sweep(&self, now: i64) {
        let cutoff = now - self.settings.expiry.as_secs() as i64;
        match self.store.expire_carves(cutoff, now).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "carves expired"),
            Err(error) => tracing::warn!(%error, "expiring carves"),
        }
        let dir = self.dir.clone();
        let removed = tokio::task::spawn_blocking(move || remove_stale_parts(&dir))
            .await
            .unwrap_or(0);
        if removed > 0 {
            tracing::info!(removed, "half-written carve files removed");
        }
    }

    /// [`sweep`](Carves::sweep) now and every minute, for as long as the server runs.
    pub fn spawn_sweeper(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.sweep(flotilla_engine::unix_now()).await;
            }
        })
    }
}

/// The sizes a `carve/begin` announces, checked against each other and the limits.
pub fn check_begin(begin: &CarveBegin) -> Result<(), OsqueryError> {
    let bad = |m: &str| Err(OsqueryError::BadRequest(m.to_owned()));
    if begin.carve_size == 0 {
        return bad("carve_size must be greater than 0");
    }
    if begin.block_size == 0 || begin.block_size > MAX_BLOCK_SIZE {
        return bad("block_size must be between 1 byte and 256 MiB");
    }
    if begin.carve_size > MAX_CARVE_SIZE {
        return bad("carve_size exceeds the maximum of 8 GiB");
    }
    let capacity = begin.block_count.checked_mul(begin.block_size);
    let floor = begin
        .block_count
        .saturating_sub(1)
        .saturating_mul(begin.block_size);
    if begin.block_count == 0
        || capacity.is_none_or(|c| begin.carve_size > c)
        || begin.carve_size <= floor
    {
        return bad("carve_size does not match block_size and block_count");
    }
    if begin.request_id.is_empty() {
        return bad("request_id is required");
    }
    Ok(())
}

fn unavailable(error: impl std::fmt::Display) -> OsqueryError {
    OsqueryError::Unavailable(error.to_string())
}

/// The block's bytes, if it fits its place in the carve.
pub fn check_block(carve: &Carve, block: &CarveBlock) -> Result<Vec<u8>, String> {
    if block.block_id >= carve.block_count {
        return Err(format!(
            "block_id {} is out of range for {} blocks",
            block.block_id, carve.block_count
        ));
    }
    let data = STANDARD
        .decode(block.data.trim())
        .map_err(|e| format!("block {} is not base64: {e}", block.block_id))?;
    let offset = block.block_id * carve.block_size;
    let expected = if block.block_id + 1 == carve.block_count {
        carve.carve_size - offset
    } else {
        carve.block_size
    };
    if data.len() as u64 != expected {
        return Err(format!(
            "block {} has {} bytes, expected {expected}",
            block.block_id,
            data.len()
        ));
    }
    Ok(data)
}

/// Writes the carve's blocks, in order, to `<session_id>.part`, then renames it to its final
/// name and records that path.
async fn assemble(store: &dyn AdminStore, dir: &Path, carve: &Carve) -> Result<(), String> {
    use std::io::Write;
    let part = dir.join(format!("{}.part", carve.session_id));
    let mut file = {
        let part = part.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::File::create(&part).map_err(|e| format!("creating {}: {e}", part.display()))
        })
        .await
        .map_err(|e| e.to_string())??
    };
    let mut zstd = false;
    let mut next = 0;
    while next < carve.block_count {
        let end = (next + ASSEMBLY_BATCH).min(carve.block_count);
        let mut blocks = Vec::with_capacity((end - next) as usize);
        for id in next..end {
            let data = store
                .carve_block(carve.id, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("block {id} is missing from the store"))?;
            blocks.push(data);
        }
        if next == 0 {
            zstd = blocks.first().is_some_and(|b| b.starts_with(&ZSTD_MAGIC));
        }
        file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            for block in &blocks {
                file.write_all(block)?;
            }
            Ok(file)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("writing {}: {e}", part.display()))?;
        next = end;
    }
    let path = dir.join(format!(
        "{}.{}",
        carve.session_id,
        if zstd { "tar.zst" } else { "tar" }
    ));
    let done = {
        let (part, path) = (part.clone(), path.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            file.sync_all()?;
            std::fs::rename(&part, &path)
        })
        .await
        .map_err(|e| e.to_string())?
    };
    if let Err(error) = done {
        let _ = std::fs::remove_file(&part);
        return Err(format!("finishing {}: {error}", path.display()));
    }
    let shown = path.to_string_lossy();
    tracing::info!(carve = %carve.name, path = %shown, "carve assembled");
    store
        .set_carve_path(carve.id, &shown)
        .await
        .map_err(|e| e.to_string())
}

/// Removes `*.part` files in `dir` untouched for [`STALE_PART`]; answers how many.
fn remove_stale_parts(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|x| x == "part"))
        .filter(|entry| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_PART)
        })
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}
