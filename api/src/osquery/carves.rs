//! `Carves`: file carves uploaded by osquery (`carve/begin`, then `carve/block` per block).
//!
//! Each session writes its blocks straight to their offsets in `<data-dir>/carves/<name>.part`,
//! so blocks may repeat (osquery retries) or arrive out of order without harm. When all
//! `block_count` distinct blocks are in, the file is renamed to `<name>.tar` (or `.tar.zst` when
//! it starts with zstd's magic) and the carve is marked complete in the store.
//!
//! Sessions live in memory: a server restart abandons carves in progress, which osquery reports
//! as failed (it does not resume carves either).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dashmap::DashMap;
use tokio::sync::Mutex;

use flotilla_engine::record::HostRecord;
use flotilla_engine::store::{CarveRecord, HostStore};

use crate::osquery::error::OsqueryError;

/// Largest block osquery may announce (Fleet's limit).
const MAX_BLOCK_SIZE: u64 = 256 << 20;
/// Largest carve (Fleet's limit).
const MAX_CARVE_SIZE: u64 = 8 << 30;
/// Sessions not completed within this long are abandoned.
const SESSION_EXPIRY: Duration = Duration::from_secs(24 * 3600);
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

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

struct Session {
    record: CarveRecord,
    part: PathBuf,
    file: Arc<File>,
    received: Vec<bool>,
    received_count: u64,
    /// When `begin` opened the session; abandoned sessions expire.
    started: tokio::time::Instant,
}

pub struct Carves {
    dir: PathBuf,
    store: Arc<dyn HostStore>,
    sessions: DashMap<String, Arc<Mutex<Session>>>,
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Carves {
    pub fn new(dir: PathBuf, store: Arc<dyn HostStore>) -> std::io::Result<Carves> {
        fs::create_dir_all(&dir)?;
        Ok(Carves {
            dir,
            store,
            sessions: DashMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens a session for a carve announced by `host`; returns its session id.
    pub async fn begin(
        &self,
        host: &HostRecord,
        begin: CarveBegin,
        now: i64,
    ) -> Result<String, OsqueryError> {
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
        self.expire_old_sessions().await;
        let session_id = uuid::Uuid::new_v4().to_string();
        let timestamp = chrono::DateTime::from_timestamp(now, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let name = sanitize(&format!(
            "{}-{timestamp}-{}",
            host.hostname, begin.request_id
        ));
        let part = self.dir.join(format!("{name}.part"));
        let carve_size = begin.carve_size;
        let file = {
            let part = part.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<File> {
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .read(true)
                    .open(&part)?;
                file.set_len(carve_size)?;
                Ok(file)
            })
            .await
            .map_err(|e| OsqueryError::Unavailable(e.to_string()))?
            .map_err(|e| OsqueryError::Unavailable(format!("creating carve file: {e}")))?
        };
        let record = CarveRecord {
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
        self.store
            .create_carve(&record)
            .await
            .map_err(|e| OsqueryError::Unavailable(e.to_string()))?;
        let session = Session {
            received: vec![false; begin.block_count as usize],
            received_count: 0,
            record,
            part,
            file: Arc::new(file),
            started: tokio::time::Instant::now(),
        };
        self.sessions
            .insert(session_id.clone(), Arc::new(Mutex::new(session)));
        Ok(session_id)
    }

    /// Writes one block; completes the carve when the last distinct block arrives.
    pub async fn block(&self, block: CarveBlock, now: i64) -> Result<(), OsqueryError> {
        let session = self
            .sessions
            .get(&block.session_id)
            .map(|s| s.clone())
            .ok_or_else(|| OsqueryError::BadRequest("unknown carve session_id".into()))?;
        let mut session = session.lock().await;
        if session.record.request_id != block.request_id {
            return Err(OsqueryError::BadRequest("request_id does not match".into()));
        }
        let record = &session.record;
        if block.block_id >= record.block_count {
            return Err(OsqueryError::BadRequest(format!(
                "block_id {} is out of range for {} blocks",
                block.block_id, record.block_count
            )));
        }
        let data = STANDARD
            .decode(block.data.trim())
            .map_err(|e| OsqueryError::BadRequest(format!("block data is not base64: {e}")))?;
        let offset = block.block_id * record.block_size;
        let expected = if block.block_id + 1 == record.block_count {
            record.carve_size - offset
        } else {
            record.block_size
        };
        if data.len() as u64 != expected {
            return Err(OsqueryError::BadRequest(format!(
                "block {} has {} bytes, expected {expected}",
                block.block_id,
                data.len()
            )));
        }
        let file = session.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&data, offset)
        })
        .await
        .map_err(|e| OsqueryError::Unavailable(e.to_string()))?
        .map_err(|e| OsqueryError::Unavailable(format!("writing carve block: {e}")))?;
        let index = block.block_id as usize;
        if !session.received[index] {
            session.received[index] = true;
            session.received_count += 1;
        }
        if session.received_count == session.record.block_count {
            self.complete(&session, now).await?;
            self.sessions.remove(&block.session_id);
        }
        Ok(())
    }

    async fn complete(&self, session: &Session, now: i64) -> Result<(), OsqueryError> {
        let part = session.part.clone();
        let file = session.file.clone();
        let dir = self.dir.clone();
        let name = session.record.name.clone();
        let path = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            use std::os::unix::fs::FileExt;
            file.sync_all()?;
            let mut magic = [0u8; 4];
            let is_zstd = file.read_exact_at(&mut magic, 0).is_ok() && magic == ZSTD_MAGIC;
            let path = dir.join(format!(
                "{name}.{}",
                if is_zstd { "tar.zst" } else { "tar" }
            ));
            fs::rename(&part, &path)?;
            Ok(path)
        })
        .await
        .map_err(|e| OsqueryError::Unavailable(e.to_string()))?
        .map_err(|e| OsqueryError::Unavailable(format!("completing carve: {e}")))?;
        tracing::info!(carve = %session.record.name, path = %path.display(), bytes = session.record.carve_size, "carve complete");
        if let Err(error) = self
            .store
            .finish_carve(&session.record.session_id, path.to_str(), None, now)
            .await
        {
            tracing::warn!(%error, carve = %session.record.name, "carve complete on disk but not recorded");
        }
        Ok(())
    }

    async fn expire_old_sessions(&self) {
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| {
                s.try_lock()
                    .is_ok_and(|s| s.started.elapsed() > SESSION_EXPIRY)
            })
            .map(|s| s.key().clone())
            .collect();
        for id in expired {
            if let Some((_, session)) = self.sessions.remove(&id) {
                let session = session.lock().await;
                let _ = fs::remove_file(&session.part);
                let _ = self
                    .store
                    .finish_carve(
                        &id,
                        None,
                        Some("expired before all blocks arrived"),
                        flotilla_engine::unix_now(),
                    )
                    .await;
            }
        }
    }
}
