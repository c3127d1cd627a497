//! `GroupSync`: group commit for a log file. A log request's lines are handed to the
//! operating system and then wait until they are on disk (`fdatasync`) before osquery is told
//! they are kept; one sync covers every request whose lines were written before it began, so
//! a burst of requests costs one sync per disk round trip, not one each.
//!
//! Each write takes a generation number ([`GroupSync::wrote`]). One task per file syncs
//! whenever generations are waiting: it notes the newest generation written, syncs, and
//! publishes that generation as durable ([`GroupSync::durable`] waits for it). A sync that
//! fails fails every generation it covered: those requests are answered with an error and
//! osquery sends their lines again (they may then be kept twice, never lost).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{Notify, watch};

/// How far syncing has got: everything up to `synced` is on disk, except generations up to
/// `failed`, whose sync failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    synced: u64,
    failed: u64,
}

pub struct GroupSync {
    enabled: AtomicBool,
    written: AtomicU64,
    progress: watch::Sender<Progress>,
    wake: Notify,
    /// Syncs done, and the time they took, for `/metrics`.
    pub syncs: AtomicU64,
    pub sync_nanos: AtomicU64,
}

impl GroupSync {
    /// A group commit for the file `sync` syncs (called on the blocking pool), with its task
    /// started on the current runtime. The task ends when the last handle is dropped.
    pub fn start(sync: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> Arc<GroupSync> {
        let group = Arc::new(GroupSync {
            enabled: AtomicBool::new(true),
            written: AtomicU64::new(0),
            progress: watch::Sender::new(Progress::default()),
            wake: Notify::new(),
            syncs: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
        });
        tokio::spawn(sync_loop(Arc::downgrade(&group), Arc::new(sync)));
        group
    }

    /// Turns syncing off (`--no-log-fsync`): writes are then kept once the operating system
    /// has them, as they are on a crash of this process, but not on a power loss.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Notes a write handed to the operating system; its generation, for [`durable`], or
    /// `None` when syncing is off.
    ///
    /// [`durable`]: GroupSync::durable
    pub fn wrote(&self) -> Option<u64> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let generation = self.written.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        Some(generation)
    }

    /// Waits until the write of `generation` is on disk.
    pub async fn durable(&self, generation: u64) -> io::Result<()> {
        let mut progress = self.progress.subscribe();
        let reached = progress
            .wait_for(|p| p.synced >= generation || p.failed >= generation)
            .await
            .map_err(|_| io::Error::other("the log's sync task stopped"))?;
        if reached.failed >= generation {
            return Err(io::Error::other(
                "the log could not be synced to disk; send the lines again",
            ));
        }
        Ok(())
    }
}

async fn sync_loop(
    group: std::sync::Weak<GroupSync>,
    sync: Arc<dyn Fn() -> io::Result<()> + Send + Sync>,
) {
    loop {
        let Some(strong) = group.upgrade() else {
            return;
        };
        let done = {
            let p = *strong.progress.borrow();
            p.synced.max(p.failed)
        };
        let target = strong.written.load(Ordering::Acquire);
        if target <= done {
            // Nothing waits: sleep until a write (checked again, so no wake-up is lost).
            let notified = strong.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if strong.written.load(Ordering::Acquire) <= done {
                // Woken by a write, or after a second to see whether the file is still in use
                // (the task ends within a second of its last handle).
                let idle = tokio::time::timeout(std::time::Duration::from_secs(1), notified);
                let _ = idle.await;
            }
            continue;
        }
        let started = Instant::now();
        let sync = sync.clone();
        let result = tokio::task::spawn_blocking(move || sync())
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        strong.syncs.fetch_add(1, Ordering::Relaxed);
        strong
            .sync_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        strong.progress.send_modify(|p| match &result {
            Ok(()) => p.synced = p.synced.max(target),
            Err(_) => p.failed = p.failed.max(target),
        });
        if let Err(error) = result {
            tracing::warn!(%error, "syncing an osquery log to disk failed; its requests are answered with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn one_sync_covers_every_write_before_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let group = GroupSync::start(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(())
        });
        let generations: Vec<u64> = (0..50).map(|_| group.wrote().unwrap()).collect();
        for generation in generations {
            group.durable(generation).await.unwrap();
        }
        let syncs = calls.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&syncs),
            "50 writes made before a sync are covered by one or two syncs, not {syncs}"
        );
        let later = group.wrote().unwrap();
        group.durable(later).await.unwrap();
        assert!(
            calls.load(Ordering::SeqCst) > syncs,
            "a later write gets its own sync"
        );
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_writes_it_covered_and_not_later_ones() {
        let fail = Arc::new(AtomicBool::new(true));
        let failing = fail.clone();
        let group = GroupSync::start(move || {
            if failing.load(Ordering::SeqCst) {
                Err(io::Error::other("disk gone"))
            } else {
                Ok(())
            }
        });
        let first = group.wrote().unwrap();
        assert!(group.durable(first).await.is_err());
        fail.store(false, Ordering::SeqCst);
        let second = group.wrote().unwrap();
        group.durable(second).await.unwrap();
    }

    #[tokio::test]
    async fn with_syncing_off_writes_do_not_wait() {
        let group = GroupSync::start(|| panic!("no sync when off"));
        group.set_enabled(false);
        assert_eq!(group.wrote(), None);
    }
}
