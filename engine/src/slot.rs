//! `HostSlot`: one enrolled host's place in the registry, shared by the registry
//! ([`Hosts`](crate::hosts::Hosts)), the host's [`HostActor`](crate::host::HostActor) while it
//! runs, and the [`HostWriter`](crate::writer::HostWriter).
//!
//! The slot's mutex guards the compact [`HostRecord`] and the actor's mailbox; it is held for a
//! few field reads or writes, never across an await. Last-seen times are atomics, written by
//! every check-in without the lock.

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::{Mutex, MutexGuard};
use ractor::ActorRef;

use crate::host_msg::HostMsg;
use crate::ids::{HostId, NodeKey};
use crate::record::HostRecord;
use crate::store::DeviceAuth;

/// A host's place in the registry. Lives as long as the host is enrolled.
pub struct HostSlot {
    pub id: HostId,
    /// Unix seconds of the latest authenticated request; exact, written by every check-in.
    last_seen: AtomicI64,
    /// The last-seen time the store holds; the writer compares the two.
    persisted_seen: AtomicI64,
    /// The latest check-in another node announced (shared relay only).
    remote_seen: AtomicI64,
    /// The latest check-in here this node has announced to the others.
    announced_seen: AtomicI64,
    /// The host answered detail, label or policy queries here since this node last told the
    /// others (shared relay only).
    answers_unannounced: std::sync::atomic::AtomicBool,
    state: Mutex<SlotState>,
}

pub(crate) struct SlotState {
    pub record: HostRecord,
    /// The host's actor while it is active.
    pub(crate) actor: Option<ActorRef<HostMsg>>,
    /// Orbit's node key, once orbit has enrolled. Here rather than in the record, which every
    /// osquery request copies.
    pub(crate) orbit_key: Option<NodeKey>,
    /// Fleet Desktop's device token, once orbit has set one.
    pub(crate) device: Option<DeviceAuth>,
}

impl HostSlot {
    pub(crate) fn new(record: HostRecord, seen: i64) -> HostSlot {
        HostSlot {
            id: record.id,
            last_seen: AtomicI64::new(seen),
            persisted_seen: AtomicI64::new(seen),
            remote_seen: AtomicI64::new(0),
            announced_seen: AtomicI64::new(seen),
            answers_unannounced: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(SlotState {
                record,
                actor: None,
                orbit_key: None,
                device: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock()
    }

    /// The latest check-in here (exact) or, with a shared relay, on another node.
    pub fn last_seen(&self) -> i64 {
        self.last_seen
            .load(Ordering::Relaxed)
            .max(self.remote_seen.load(Ordering::Relaxed))
    }

    /// The latest check-in with this node.
    pub(crate) fn seen_here(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    pub(crate) fn touch(&self, now: i64) {
        self.last_seen.fetch_max(now, Ordering::Relaxed);
    }

    /// A last-seen time the store has not got yet, if it is worth a write: `force` at shutdown,
    /// otherwise only once it is `granularity` seconds newer than the stored one.
    pub(crate) fn unpersisted_seen(&self, granularity: i64, force: bool) -> Option<i64> {
        let seen = self.seen_here();
        let stored = self.persisted_seen.load(Ordering::Relaxed);
        (seen > stored && (force || seen - stored >= granularity)).then_some(seen)
    }

    pub(crate) fn mark_persisted(&self, seen: i64) {
        self.persisted_seen.fetch_max(seen, Ordering::Relaxed);
    }

    /// A check-in another node announced.
    pub(crate) fn seen_elsewhere(&self, at: i64) {
        self.remote_seen.fetch_max(at, Ordering::Relaxed);
    }

    /// The latest check-in here if it has not been announced to the other nodes yet, marked
    /// announced.
    pub(crate) fn take_unannounced(&self) -> Option<i64> {
        let here = self.seen_here();
        if here > self.announced_seen.load(Ordering::Relaxed) {
            self.announced_seen.store(here, Ordering::Relaxed);
            return Some(here);
        }
        None
    }

    /// Notes that the host answered scheduled queries here, for the next announcement.
    pub(crate) fn mark_answered(&self) {
        self.answers_unannounced.store(true, Ordering::Relaxed);
    }

    /// Whether the host answered scheduled queries here since the last announcement; clears
    /// the mark.
    pub(crate) fn take_answered(&self) -> bool {
        self.answers_unannounced.swap(false, Ordering::Relaxed)
    }

    /// Marks this host's check-ins as not announced after the announcement failed.
    pub(crate) fn unannounce(&self) {
        self.announced_seen.store(0, Ordering::Relaxed);
    }

    /// Forgets `actor` if it is still this slot's actor. Called by the actor as it stops.
    pub(crate) fn detach(&self, actor: &ActorRef<HostMsg>) {
        let mut state = self.state.lock();
        if state
            .actor
            .as_ref()
            .is_some_and(|a| a.get_id() == actor.get_id())
        {
            state.actor = None;
        }
    }
}
