//! The agent update server: `flotilla updates` signs a TUF repository (`cli`), and
//! `flotilla serve --tuf-repo P` serves it under `/tuf/` (`serve`), re-signs its timestamp
//! before it expires when given the timestamp key, exports each role's time to expiry, and
//! tells the fleet which channels exist (`GET /api/latest/fleet/updates`, the check on
//! `update_channels`).

pub mod cli;
pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use flotilla_engine::relay::Relay;
use flotilla_updates::{MetadataExpiry, Published, Repository, SigningKey, TargetRow};
use parking_lot::Mutex;

/// Re-sign timestamp.json once less than this is left of it: with Fleet's 14-day period,
/// the server re-signs it daily and an outage of 12 days still leaves agents updating.
const RESIGN_BELOW: Duration = Duration::from_secs(13 * 24 * 60 * 60);
/// How often the server looks at the repository's expiry times.
const CHECK_EVERY: Duration = Duration::from_secs(10 * 60);
const LOCK: &str = "tuf-timestamp";

/// The served repository, shared by the `/tuf/` routes, the API, the metrics and the
/// re-signer.
pub struct UpdateServer {
    repository: Repository,
    timestamp_key: Option<SigningKey>,
    /// The last metadata read, with the modification times it was read at: reloaded when
    /// any of the files changes (another node, or `flotilla updates`, wrote it).
    loaded: Mutex<Option<Loaded>>,
    pub stats: UpdateStats,
}

#[derive(Default)]
pub struct UpdateStats {
    pub resigned: AtomicU64,
    pub resign_failures: AtomicU64,
    pub load_failures: AtomicU64,
}

#[derive(Clone)]
struct Loaded {
    stamps: Vec<Option<SystemTime>>,
    published: Arc<Published>,
    targets: Arc<Vec<TargetRow>>,
}

impl UpdateServer {
    /// Opens the repository at `path` (the `--path` given to `updates init`) and checks it
    /// loads; with `timestamp_key`, checks root trusts that key.
    pub fn open(path: PathBuf, timestamp_key: Option<SigningKey>) -> anyhow::Result<Arc<Self>> {
        let repository = Repository::new(path);
        let published = repository
            .load()
            .map_err(|e| anyhow::anyhow!("--tuf-repo: {e}"))?;
        if let Some(key) = &timestamp_key {
            anyhow::ensure!(
                published.trusts(flotilla_updates::Role::Timestamp, key),
                "--tuf-timestamp-key: root.json does not trust this key for timestamp \
                 (was the timestamp key rotated?)"
            );
        }
        let server = Arc::new(Self {
            repository,
            timestamp_key,
            loaded: Mutex::new(None),
            stats: UpdateStats::default(),
        });
        server.current();
        Ok(server)
    }

    pub fn published_dir(&self) -> PathBuf {
        self.repository.published_dir()
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        let dir = self.published_dir();
        [
            "root.json",
            "targets.json",
            "snapshot.json",
            "timestamp.json",
        ]
        .iter()
        .map(|name| {
            std::fs::metadata(dir.join(name))
                .and_then(|m| m.modified())
                .ok()
        })
        .collect()
    }

    /// The published metadata as it is on disk now (reread only when a file changed).
    fn current(&self) -> Option<Loaded> {
        let stamps = self.stamps();
        let mut loaded = self.loaded.lock();
        if let Some(current) = loaded.as_ref()
            && current.stamps == stamps
        {
            return Some(current.clone());
        }
        match self.repository.load() {
            Ok(published) => {
                let fresh = Loaded {
                    stamps,
                    targets: Arc::new(published.targets()),
                    published: Arc::new(published),
                };
                *loaded = Some(fresh.clone());
                Some(fresh)
            }
            Err(error) => {
                // A half-written change by hand, or a file removed: keep serving files as
                // they are, and say so.
                self.stats.load_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "the TUF repository did not load");
                loaded.clone()
            }
        }
    }

    /// Every published target.
    pub fn targets(&self) -> Arc<Vec<TargetRow>> {
        self.current().map(|l| l.targets).unwrap_or_default()
    }

    /// Each role's version and expiry, as last read.
    pub fn expiry(&self) -> Option<[MetadataExpiry; 4]> {
        self.current().map(|l| l.published.expiry())
    }

    /// Whether `path` (under targets/) is a version path, which never changes.
    pub fn is_version_path(&self, path: &str) -> bool {
        self.targets()
            .iter()
            .any(|row| row.target == path && row.is_version_path())
    }

    /// The channels that exist for `name` (orbit, osqueryd, desktop): every channel any
    /// platform has.
    pub fn channels(&self, name: &str) -> Vec<String> {
        let mut channels: Vec<String> = self
            .targets()
            .iter()
            .filter(|row| row.name == name)
            .map(|row| row.channel.clone())
            .collect();
        channels.sort();
        channels.dedup();
        channels
    }

    /// Re-signs timestamp.json when less than `RESIGN_BELOW` is left of it, on one node at a
    /// time. Returns whether it signed.
    pub async fn resign_if_due(&self, relay: &dyn Relay) -> bool {
        let Some(key) = &self.timestamp_key else {
            return false;
        };
        let Some(expiry) = self.expiry() else {
            return false;
        };
        let now = jiff::Timestamp::now().as_second();
        let left = expiry[3].expires_unix.saturating_sub(now);
        if left > RESIGN_BELOW.as_secs() as i64 {
            return false;
        }
        if !matches!(
            relay.hold_lock(LOCK, Duration::from_secs(60)).await,
            Ok(true)
        ) {
            return false;
        }
        // Another node may have signed between our read and the lock.
        let Some(expiry) = self.expiry() else {
            return false;
        };
        if expiry[3].expires_unix.saturating_sub(now) > RESIGN_BELOW.as_secs() as i64 {
            return false;
        }
        match self.repository.timestamp(key, None).await {
            Ok(signed) => {
                self.stats.resigned.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    version = signed.version,
                    expires = %jiff::Timestamp::from_second(signed.expires_unix).unwrap_or_default(),
                    "re-signed the TUF timestamp"
                );
                true
            }
            Err(error) => {
                self.stats.resign_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "re-signing the TUF timestamp failed");
                false
            }
        }
    }

    /// Checks every ten minutes, and at once, whether the timestamp needs re-signing.
    pub fn spawn_resigner(self: &Arc<Self>, relay: Arc<dyn Relay>) -> Option<ResignTask> {
        self.timestamp_key.as_ref()?;
        let server = self.clone();
        Some(ResignTask(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            loop {
                tick.tick().await;
                server.resign_if_due(relay.as_ref()).await;
            }
        })))
    }
}

/// The re-signing task; ends when dropped.
pub struct ResignTask(tokio::task::JoinHandle<()>);

impl Drop for ResignTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The check agent options' `update_channels` get when they are applied: each of orbit,
/// osqueryd and desktop names a channel as a string, and, when this server serves the
/// repository agents update from, a channel that exists there for that component.
#[derive(Clone, Default)]
pub struct UpdateChannels(Option<Arc<UpdateServer>>);

impl UpdateChannels {
    pub fn new(server: Option<Arc<UpdateServer>>) -> Self {
        Self(server)
    }

    pub fn check(&self, options: &serde_json::Value) -> Result<(), String> {
        let Some(channels) = options.get("update_channels").filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let Some(channels) = channels.as_object() else {
            return Err("\"update_channels\" must be an object".into());
        };
        for (component, channel) in channels {
            if !["orbit", "osqueryd", "desktop"].contains(&component.as_str()) {
                return Err(format!(
                    "update_channels: unknown component \"{component}\" (orbit, osqueryd or desktop)"
                ));
            }
            let Some(channel) = channel.as_str() else {
                return Err(format!("update_channels.{component} must be a string"));
            };
            let Some(server) = &self.0 else {
                continue;
            };
            let known = server.channels(component);
            if !known.iter().any(|c| c == channel) {
                let listed = if known.is_empty() {
                    "none are published".to_owned()
                } else {
                    format!("published: {}", known.join(", "))
                };
                return Err(format!(
                    "update_channels.{component}: channel \"{channel}\" does not exist in the \
                     update server's repository ({listed})"
                ));
            }
        }
        Ok(())
    }
}
