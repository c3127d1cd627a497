//! `Hosts`: the registry of enrolled hosts and the entry point for every osquery request.
//!
//! Each host has a [`HostSlot`]: its compact [`HostRecord`], its last-seen time, and — while it
//! has something to hold — the [`HostActor`] that owns its work. Two `dashmap` indexes find a
//! slot by node key (the check-in path) and by host id (campaigns, the writer).
//!
//! The check-in path is: node key → slot (one map lookup) → stamp last-seen → if the host has
//! no actor and nothing is due, answer "no work" right here; otherwise one call into its actor.
//! No check-in touches the store: last-seen times and vitals go out in batches through the
//! [`HostWriter`].

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;
use ractor::{Actor, ActorRef, ActorStatus, RpcReplyPort, rpc::CallResult};

use crate::config::EngineConfig;
use crate::counters::HostCounters;
use crate::device::BadDeviceToken;
use crate::enroll::{EnrollError, EnrollRequest, EnrollSecrets, OrbitEnrollRequest};
use crate::host::{HostActor, HostArgs};
use crate::host_msg::{HostMsg, HostResults, ReadWork};
use crate::ids::{CampaignId, HostId, NodeKey, TeamId};
use crate::labels::{LabelQuery, Labels};
use crate::live::{LiveQuery, ResultSink};
use crate::policies::{Policies, PolicyQuery};
use crate::record::HostRecord;
use crate::relay::{AnswerTimes, LocalRelay, Relay, RelayEvent};
use crate::row::Row;
use crate::store::{
    DeviceAuth, DeviceTokenWrite, Enrollment, HostStore, OrbitEnrollment, StoreError, StoredHost,
};
use crate::text::{clip, clip_owned};
use crate::vitals::Vitals;
use crate::writer::HostWriter;

pub use crate::host::HostContext;
pub use crate::slot::HostSlot;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("invalid node key")]
    UnknownNodeKey,
    #[error("invalid orbit node key")]
    UnknownOrbitKey,
    #[error("invalid device authentication token")]
    UnknownDeviceToken,
    /// The host's actor did not answer in time or could not be started.
    #[error("host busy: {0}")]
    Busy(&'static str),
}

/// What [`Hosts::presence`] tells about a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence {
    /// Unix seconds of its latest check-in.
    pub last_seen: i64,
    pub online: bool,
    pub team: Option<TeamId>,
}

/// Hosts by platform and running host actors, counted when asked: what `/metrics` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// One entry per platform, in order of first appearance. A host that has not reported a
    /// platform yet counts under `unknown`; past [`CENSUS_MAX_PLATFORMS`] distinct platforms,
    /// the rest count under `other`, so an agent cannot make the list grow without bound.
    pub platforms: Vec<PlatformCount>,
    pub active_actors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformCount {
    pub platform: Box<str>,
    pub enrolled: u64,
    pub online: u64,
}

/// Distinct platforms [`Hosts::census`] reports before it lumps the rest into `other`.
pub const CENSUS_MAX_PLATFORMS: usize = 32;

impl Census {
    fn count(&mut self, platform: &str, online: bool) {
        let platform = if platform.is_empty() {
            "unknown"
        } else {
            platform
        };
        let index = match self.platforms.iter().position(|p| &*p.platform == platform) {
            Some(index) => index,
            // The last place is kept for `other`.
            None if self.platforms.len() + 1 < CENSUS_MAX_PLATFORMS || platform == "other" => {
                self.platforms.push(PlatformCount {
                    platform: platform.into(),
                    enrolled: 0,
                    online: 0,
                });
                self.platforms.len() - 1
            }
            None => return self.count("other", online),
        };
        let entry = &mut self.platforms[index];
        entry.enrolled += 1;
        entry.online += u64::from(online);
    }
}

/// Enrollments of one identifier are serialised so the store and the registry agree on which
/// node key is current; different identifiers proceed in parallel over this many stripes.
const ENROLL_STRIPES: usize = 64;

/// Why [`Hosts::set_device_token`] did not set a token.
#[derive(Debug, thiserror::Error)]
pub enum DeviceTokenError {
    #[error(transparent)]
    Invalid(#[from] BadDeviceToken),
    #[error("auth token conflicts with another host")]
    Conflict,
    #[error("host not found")]
    UnknownHost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which index a key that was not found was looked up in (the memory of unknown keys is kept
/// apart per kind: an osquery node key is not an orbit key).
#[derive(Clone, Copy)]
enum KeyKind {
    Osquery,
    Orbit,
    Device,
}

struct HostsInner {
    /// Every host by its osquery node key (hosts only orbit enrolled have none yet).
    by_key: DashMap<NodeKey, Arc<HostSlot>>,
    /// Hosts by orbit node key.
    by_orbit_key: DashMap<NodeKey, Arc<HostSlot>>,
    /// Hosts by device token, current and previous (the slot's `DeviceAuth` says which is
    /// still valid).
    by_device_token: DashMap<Box<str>, Arc<HostSlot>>,
    by_id: Arc<DashMap<HostId, Arc<HostSlot>>>,
    ctx: Arc<HostContext>,
    store: Arc<dyn HostStore>,
    secrets: EnrollSecrets,
    enroll_stripes: Vec<tokio::sync::Mutex<()>>,
    writer: HostWriter,
    relay: Arc<dyn Relay>,
    /// Keys the store did not know when last asked (shared relay only), by kind, so a client
    /// repeating a bad key costs one store lookup per interval, not one per request.
    unknown_keys: [DashMap<Box<str>, i64>; 3],
}

/// How long a node key the store did not know is answered `node_invalid` without asking again.
const UNKNOWN_KEY_TTL_SECS: i64 = 10;
/// Bound on remembered unknown keys; the memory is cleared when it is reached.
const UNKNOWN_KEYS_MAX: usize = 100_000;

/// Cheap to clone; every clone is the same registry.
#[derive(Clone)]
pub struct Hosts {
    inner: Arc<HostsInner>,
}

impl Hosts {
    /// Loads every enrolled host and the enroll secrets from `store` and starts the writer.
    /// A single node: nothing is relayed.
    pub async fn start(
        store: Arc<dyn HostStore>,
        config: EngineConfig,
        sink: Arc<dyn ResultSink>,
    ) -> Result<Hosts, StoreError> {
        Hosts::start_with_relay(store, config, sink, Arc::new(LocalRelay::default())).await
    }

    /// As [`Hosts::start`], for one of several nodes sharing `relay`: hosts enrolled or
    /// changed on other nodes are found in the store. [`Engine::start`](crate::Engine::start)
    /// calls it and starts the tasks that follow the other nodes and share check-ins.
    pub(crate) async fn start_with_relay(
        store: Arc<dyn HostStore>,
        config: EngineConfig,
        sink: Arc<dyn ResultSink>,
        relay: Arc<dyn Relay>,
    ) -> Result<Hosts, StoreError> {
        let stored = store.load_hosts().await?;
        let secrets = EnrollSecrets::default();
        secrets.replace(store.enroll_secrets().await?);
        let by_key = DashMap::with_capacity(stored.len());
        let by_id = Arc::new(DashMap::with_capacity(stored.len()));
        let by_orbit_key = DashMap::new();
        let by_device_token = DashMap::new();
        for host in &stored {
            let slot = Arc::new(HostSlot::new(HostRecord::from_stored(host), host.seen_time));
            if let Some(key) = host.node_key.clone() {
                by_key.insert(key, slot.clone());
            }
            if let Some(key) = host.orbit_node_key.clone() {
                by_orbit_key.insert(key, slot.clone());
            }
            if let Some(device) = &host.device {
                for token in device_tokens(device) {
                    by_device_token.insert(token.into(), slot.clone());
                }
            }
            {
                let mut state = slot.lock();
                state.orbit_key = host.orbit_node_key.clone();
                state.device = host.device.clone();
            }
            by_id.insert(host.id, slot);
        }
        let counters = Arc::new(HostCounters::default());
        let writer = HostWriter::start(store.clone(), by_id.clone(), &config, counters.clone());
        let ctx = Arc::new(HostContext {
            config,
            writer: writer.handle(),
            sink,
            counters,
            select_one: "SELECT 1".into(),
            labels: Labels::default(),
            policies: Policies::default(),
            software_inventory: std::sync::atomic::AtomicBool::new(true),
        });
        let hosts = Hosts {
            inner: Arc::new(HostsInner {
                by_key,
                by_orbit_key,
                by_device_token,
                by_id,
                ctx,
                store,
                secrets,
                enroll_stripes: (0..ENROLL_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                writer,
                relay,
                unknown_keys: Default::default(),
            }),
        };
        Ok(hosts)
    }

    /// The relay this node shares with others ([`LocalRelay`] for a single node).
    pub fn relay(&self) -> Arc<dyn Relay> {
        self.inner.relay.clone()
    }

    /// Tells the other nodes, without waiting; a failure only delays what they learn.
    fn announce(&self, event: RelayEvent) {
        if self.inner.relay.is_local() {
            return;
        }
        let relay = self.inner.relay.clone();
        tokio::spawn(async move {
            if let Err(error) = relay.publish(&event).await {
                tracing::warn!(%error, ?event, "could not tell the other nodes");
            }
        });
    }

    /// Tells the other nodes that shared configuration changed.
    pub fn announce_changed(&self, topic: crate::relay::Topic) {
        self.announce(RelayEvent::Changed(topic));
    }

    /// Brings a host in line with the store after another node changed it: new node key,
    /// team, hostname — or gone.
    pub async fn reload_host(&self, id: HostId) -> Result<(), StoreError> {
        match self.inner.store.load_host(id).await? {
            None => {
                self.forget(id);
            }
            Some(stored) => {
                self.install_stored(&stored);
            }
        }
        Ok(())
    }

    /// Check-ins other nodes announced.
    pub fn seen_elsewhere(&self, seen: &[(HostId, i64)]) {
        for &(id, at) in seen {
            if let Some(slot) = self.inner.by_id.get(&id) {
                slot.seen_elsewhere(at);
            }
        }
    }

    /// Hosts that checked in here since they were last announced, marked announced.
    pub(crate) fn seen_here_since_announced(&self) -> Vec<(HostId, i64)> {
        let mut seen = Vec::new();
        for slot in self.inner.by_id.iter() {
            if let Some(here) = slot.take_unannounced() {
                seen.push((slot.id, here));
            }
        }
        seen
    }

    /// Marks check-ins as not announced after the announcement failed.
    pub(crate) fn unannounce(&self, seen: &[(HostId, i64)]) {
        for &(id, _) in seen {
            if let Some(slot) = self.inner.by_id.get(&id) {
                slot.unannounce();
            }
        }
    }

    /// Hosts that answered detail, label or policy queries here since they were last
    /// announced, with their answer times, marked announced.
    pub(crate) fn answered_here_since_announced(&self) -> Vec<(HostId, AnswerTimes)> {
        let mut answered = Vec::new();
        for slot in self.inner.by_id.iter() {
            if slot.take_answered() {
                let state = slot.lock();
                let r = &state.record;
                answered.push((
                    slot.id,
                    AnswerTimes {
                        detail: r.detail_updated_at,
                        label: r.label_updated_at,
                        policy: r.policy_updated_at,
                    },
                ));
            }
        }
        answered
    }

    /// Marks these hosts' answers as not announced after the announcement failed.
    pub(crate) fn unannounce_answers(&self, answered: &[(HostId, AnswerTimes)]) {
        for (id, _) in answered {
            if let Some(slot) = self.inner.by_id.get(id) {
                slot.mark_answered();
            }
        }
    }

    /// Answers other nodes took: a host that answered its detail, label or policy queries on
    /// another node is not asked them again here before its interval. A label or policy answer
    /// counts for this node's current set only if it came after that set was installed.
    pub fn answered_elsewhere(&self, answered: &[(HostId, AnswerTimes)]) {
        let (labels_since, label_version) = (
            self.inner.ctx.labels.replaced_at(),
            self.inner.ctx.labels.read().version,
        );
        let (policies_since, policy_version) = (
            self.inner.ctx.policies.replaced_at(),
            self.inner.ctx.policies.read().version,
        );
        for (id, times) in answered {
            let Some(slot) = self.inner.by_id.get(id) else {
                continue;
            };
            let mut state = slot.lock();
            let record = &mut state.record;
            if times.detail > record.detail_updated_at {
                record.detail_updated_at = times.detail;
                record.refetch_requested = false;
            }
            if times.label > record.label_updated_at {
                record.label_updated_at = times.label;
                if times.label > labels_since {
                    record.label_version = label_version;
                }
            }
            if times.policy > record.policy_updated_at {
                record.policy_updated_at = times.policy;
                if times.policy > policies_since {
                    record.policy_version = policy_version;
                }
            }
        }
    }

    /// Brings every host in line with the store after this node may have missed other nodes'
    /// announcements (the relay was cut off): hosts deleted, moved to another team or
    /// re-enrolled meanwhile. Answers how many hosts changed and how many were forgotten.
    pub async fn resync_with_store(&self) -> Result<(usize, usize), StoreError> {
        let stored = self.inner.store.load_hosts().await?;
        let mut present = std::collections::HashSet::with_capacity(stored.len());
        let mut changed = 0;
        for host in &stored {
            present.insert(host.id);
            let differs = match self.inner.by_id.get(&host.id) {
                None => true,
                Some(slot) => {
                    let state = slot.lock();
                    state.record.team != host.team
                        || state.record.node_key != host.node_key
                        || state.orbit_key != host.orbit_node_key
                        || state.device != host.device
                }
            };
            if differs {
                self.install_stored(host);
                changed += 1;
            }
        }
        let missing: Vec<HostId> = self
            .inner
            .by_id
            .iter()
            .map(|slot| slot.id)
            .filter(|id| !present.contains(id))
            .collect();
        let mut forgotten = 0;
        for id in missing {
            // Deleted, or enrolled here after the hosts were read: the store says which.
            if self.inner.store.load_host(id).await?.is_none() && self.forget(id) {
                forgotten += 1;
            }
        }
        Ok((changed, forgotten))
    }

    pub fn counters(&self) -> &HostCounters {
        &self.inner.ctx.counters
    }

    pub fn len(&self) -> usize {
        self.inner.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.by_id.is_empty()
    }

    /// Hosts whose actor is running right now.
    pub fn active_actors(&self) -> usize {
        self.inner
            .by_id
            .iter()
            .filter(|slot| slot.lock().actor.is_some())
            .count()
    }

    /// Enrolled and online hosts by platform, and running host actors, at `now`: one pass over
    /// the registry holding each host's lock for a few field reads. For scrapes, not check-ins.
    pub fn census(&self, now: i64) -> Census {
        let config = &self.inner.ctx.config;
        let mut census = Census::default();
        for slot in self.inner.by_id.iter() {
            let last_seen = slot.last_seen();
            let state = slot.lock();
            census.count(
                &state.record.platform,
                state.record.is_online(last_seen, now, config),
            );
            census.active_actors += u64::from(state.actor.is_some());
        }
        census
    }

    /// Finds the host presenting `key` and stamps its last-seen time. For endpoints that need
    /// no actor (config, log, carve).
    /// Whether `key` is an enrolled host's node key, without touching the host: for checking a
    /// request's `Authorization: NodeKey` header before its body is read.
    pub async fn knows_key(&self, key: &str, now: i64) -> Result<(), HostError> {
        self.slot_by_key(key, now).await.map(|_| ())
    }

    pub async fn authenticate(&self, key: &str, now: i64) -> Result<HostRecord, HostError> {
        let slot = self.slot_by_key(key, now).await?;
        slot.touch(now);
        Ok(slot.lock().record.clone())
    }

    /// A copy of a host's record and its last-seen time.
    pub fn record(&self, host: HostId) -> Option<(HostRecord, i64)> {
        let slot = self.inner.by_id.get(&host)?.clone();
        let record = slot.lock().record.clone();
        Some((record, slot.last_seen()))
    }

    /// Whether `host` counts as online at `now`.
    pub fn is_online(&self, host: HostId, now: i64) -> bool {
        self.presence(host, now).is_some_and(|p| p.online)
    }

    /// A host's last check-in and online state, without copying its record: for campaigns
    /// that ask this of every target.
    pub fn presence(&self, host: HostId, now: i64) -> Option<Presence> {
        let slot = self.inner.by_id.get(&host)?.clone();
        let last_seen = slot.last_seen();
        let state = slot.lock();
        Some(Presence {
            last_seen,
            online: state
                .record
                .is_online(last_seen, now, &self.inner.ctx.config),
            team: state.record.team,
        })
    }

    /// A distributed read: the queries this host should run now.
    pub async fn read(&self, key: &str, now: i64) -> Result<Arc<ReadWork>, HostError> {
        let slot = self.slot_by_key(key, now).await?;
        slot.touch(now);
        self.inner.ctx.counters.reads.incr();
        {
            // A read guard, not a clone of the set: this is the path of every idle check-in.
            let labels = self.inner.ctx.labels.read();
            let policies = self.inner.ctx.policies.read();
            let config = &self.inner.ctx.config;
            let state = slot.lock();
            if state.actor.is_none()
                && !state.record.detail_due(now, config)
                && !state.record.labels_due(now, &labels, config)
                && !state.record.policies_due(now, &policies, config)
            {
                self.inner.ctx.counters.reads_without_actor.incr();
                return Ok(ReadWork::empty());
            }
        }
        self.ask(&slot, |reply| HostMsg::Read { now, reply }).await
    }

    /// A distributed write: detail answers fill vitals, live answers go to their campaigns.
    pub async fn write(&self, key: &str, now: i64, results: HostResults) -> Result<(), HostError> {
        let slot = self.slot_by_key(key, now).await?;
        slot.touch(now);
        self.inner.ctx.counters.writes.incr();
        if results.is_empty() {
            return Ok(());
        }
        let results = Arc::new(results);
        self.ask(&slot, |reply| HostMsg::Write {
            now,
            results: results.clone(),
            reply,
        })
        .await
    }

    /// Places a live query in a host's mailbox, activating its actor.
    pub async fn enqueue(&self, host: HostId, query: LiveQuery) -> Result<(), HostError> {
        let slot = self
            .inner
            .by_id
            .get(&host)
            .map(|s| s.clone())
            .ok_or(HostError::UnknownNodeKey)?;
        self.ask(&slot, |reply| HostMsg::Enqueue {
            query: query.clone(),
            reply,
        })
        .await
    }

    /// Drops a campaign's query from a host's mailbox (nothing to do if the host is idle).
    pub fn cancel(&self, host: HostId, campaign: CampaignId) {
        let actor = self
            .inner
            .by_id
            .get(&host)
            .and_then(|slot| slot.lock().actor.clone());
        if let Some(actor) = actor {
            let _ = actor.cast(HostMsg::Cancel { campaign });
        }
    }

    /// Enrolls a host, or re-enrolls a known one under a new node key.
    pub async fn enroll(&self, request: EnrollRequest, now: i64) -> Result<NodeKey, EnrollError> {
        let team = self
            .inner
            .secrets
            .verify(&request.enroll_secret)
            .ok_or(EnrollError::InvalidSecret)?;
        let vitals = vitals_from_details(&request);
        let identifier = identifier_for(&request, &vitals).ok_or(EnrollError::MissingIdentifier)?;
        let node_key = NodeKey::generate();
        let digest = node_key.digest();
        let _stripe = self.enroll_stripe(&identifier).await;
        let enrolled = self
            .inner
            .store
            .enroll_host(&Enrollment {
                identifier,
                hardware_uuid: vitals.uuid.clone(),
                // The agent gets the key; the store and the index keep its digest.
                node_key: digest.clone(),
                team,
                vitals,
                now,
            })
            .await
            .map_err(|e| self.enroll_failed(e))?;
        self.install(&enrolled.host, digest, enrolled.previous_node_key, now);
        if enrolled.created {
            self.inner.ctx.counters.enrollments.incr();
        } else {
            self.inner.ctx.counters.reenrollments.incr();
        }
        self.announce(RelayEvent::HostChanged(enrolled.host.id));
        Ok(node_key)
    }

    /// Enrollments of `identifier`, osqueryd's and orbit's, one at a time.
    async fn enroll_stripe(&self, identifier: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.enroll_stripes[stripe_of(identifier)]
            .lock()
            .await
    }

    /// The store did not take an enrollment: counted, and the agent told to retry.
    fn enroll_failed(&self, error: StoreError) -> EnrollError {
        self.inner.ctx.counters.enroll_store_failures.incr();
        EnrollError::Unavailable(error.to_string())
    }

    /// Puts an enrolled host under its new key, retiring the old one.
    fn install(&self, host: &StoredHost, key: NodeKey, previous: Option<NodeKey>, now: i64) {
        let existing = self.inner.by_id.get(&host.id).map(|s| s.clone());
        let slot = match existing {
            Some(slot) => {
                let old_key = {
                    let mut state = slot.lock();
                    let old = state.record.node_key.replace(key.clone());
                    state.record.identifier = host.identifier.as_str().into();
                    state.record.team = host.team;
                    if !host.hostname.is_empty() {
                        state.record.hostname = host.hostname.as_str().into();
                    }
                    if !host.platform.is_empty() {
                        state.record.platform = host.platform.as_str().into();
                    }
                    old
                };
                if let Some(old_key) = old_key {
                    self.inner.by_key.remove(&old_key);
                }
                slot
            }
            None => self.new_slot(host),
        };
        if let Some(previous) = previous {
            self.inner
                .by_key
                .remove_if(&previous, |_, s| s.id == host.id);
        }
        slot.touch(now);
        self.inner.by_key.insert(key, slot);
    }

    /// Forgets a deleted host: its node key stops working at once (the agent gets
    /// `node_invalid` and enrolls as a new host). The store row is the caller's to delete.
    pub fn remove(&self, host: HostId) -> bool {
        let removed = self.forget(host);
        self.announce(RelayEvent::HostChanged(host));
        removed
    }

    fn forget(&self, host: HostId) -> bool {
        let Some((_, slot)) = self.inner.by_id.remove(&host) else {
            return false;
        };
        let (key, orbit_key, device, actor) = {
            let mut state = slot.lock();
            (
                state.record.node_key.clone(),
                state.orbit_key.take(),
                state.device.take(),
                state.actor.take(),
            )
        };
        if let Some(key) = key {
            self.inner.by_key.remove_if(&key, |_, s| s.id == host);
        }
        if let Some(key) = orbit_key {
            self.inner.by_orbit_key.remove_if(&key, |_, s| s.id == host);
        }
        for token in device.iter().flat_map(device_tokens) {
            self.inner
                .by_device_token
                .remove_if(token, |_, s| s.id == host);
        }
        if let Some(actor) = actor {
            actor.stop(None);
        }
        true
    }

    /// Moves a host to another team (or to none) in memory; the store is the caller's.
    pub fn set_team(&self, host: HostId, team: Option<TeamId>) {
        if let Some(slot) = self.inner.by_id.get(&host) {
            let mut state = slot.lock();
            // The new team's policies go out at the host's next check-in.
            if state.record.team != team {
                state.record.policy_updated_at = 0;
            }
            state.record.team = team;
        }
        self.announce(RelayEvent::HostChanged(host));
    }

    /// Ids of every registered host.
    pub fn ids(&self) -> Vec<HostId> {
        self.inner.by_id.iter().map(|slot| slot.id).collect()
    }

    /// Reloads the enroll secrets after the store's set changed (team secrets edited, say).
    pub async fn reload_enroll_secrets(&self) -> Result<(), StoreError> {
        self.inner
            .secrets
            .replace(self.inner.store.enroll_secrets().await?);
        Ok(())
    }

    /// Reloads the enroll secrets here and tells the other nodes to do the same.
    pub async fn enroll_secrets_changed(&self) -> Result<(), StoreError> {
        self.reload_enroll_secrets().await?;
        self.announce(RelayEvent::Changed(crate::relay::Topic::EnrollSecrets));
        Ok(())
    }

    /// The dynamic-label queries as stored at start; hosts keep their own label schedule.
    pub fn load_label_queries(&self, queries: Vec<LabelQuery>) {
        self.inner.ctx.labels.initialize(queries);
    }

    /// Replaces the dynamic-label queries hosts run; every host re-evaluates its labels at its
    /// next check-in.
    pub fn set_label_queries(&self, queries: Vec<LabelQuery>) {
        self.inner.ctx.labels.replace(queries);
    }

    /// Turns the software inventory on or off (`features.enable_software_inventory`): while
    /// off, the software queries are not sent and answers to them are ignored.
    pub fn set_software_inventory(&self, on: bool) {
        self.inner
            .ctx
            .software_inventory
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The policies as stored at start; hosts keep their own policy schedule.
    pub fn load_policy_queries(&self, queries: Vec<PolicyQuery>) {
        self.inner.ctx.policies.initialize(queries);
    }

    /// Replaces the policies hosts run; every host runs the policies that apply to it at its
    /// next check-in.
    pub fn set_policy_queries(&self, queries: Vec<PolicyQuery>) {
        self.inner.ctx.policies.replace(queries);
    }

    /// Ensures `secret` enrolls hosts into `team`; returns true if it was new.
    pub async fn ensure_enroll_secret(
        &self,
        secret: &str,
        team: Option<TeamId>,
    ) -> Result<bool, StoreError> {
        let created = self.inner.store.ensure_enroll_secret(secret, team).await?;
        if created {
            self.enroll_secrets_changed().await?;
        } else {
            self.reload_enroll_secrets().await?;
        }
        Ok(created)
    }

    pub fn has_enroll_secrets(&self) -> bool {
        !self.inner.secrets.is_empty()
    }

    /// Writes every unwritten last-seen time and vitals now. Called at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.writer.flush_all().await
    }

    /// The host presenting osquery node key `key`: looked up by its digest, as it is stored.
    async fn slot_by_key(&self, key: &str, now: i64) -> Result<Arc<HostSlot>, HostError> {
        if let Some(digest) = NodeKey::digest_of(key) {
            if let Some(slot) = self.inner.by_key.get(digest.as_str()) {
                return Ok(slot.clone());
            }
            if !self.inner.relay.is_local()
                && let Some(slot) = self
                    .lookup_key(KeyKind::Osquery, digest.as_str(), now)
                    .await?
            {
                return Ok(slot);
            }
        }
        self.inner.ctx.counters.unknown_node_keys.incr();
        Err(HostError::UnknownNodeKey)
    }

    /// The index of one kind of key.
    fn index(&self, kind: KeyKind, key: &str) -> Option<Arc<HostSlot>> {
        match kind {
            KeyKind::Osquery => self.inner.by_key.get(key).map(|s| s.clone()),
            KeyKind::Orbit => self.inner.by_orbit_key.get(key).map(|s| s.clone()),
            KeyKind::Device => self.inner.by_device_token.get(key).map(|s| s.clone()),
        }
    }

    /// A key this node does not know may belong to a host that enrolled (or set its device
    /// token) on another node a moment ago: ask the store (once per key per few seconds).
    async fn lookup_key(
        &self,
        kind: KeyKind,
        key: &str,
        now: i64,
    ) -> Result<Option<Arc<HostSlot>>, HostError> {
        let unknown = &self.inner.unknown_keys[kind as usize];
        if unknown
            .get(key)
            .is_some_and(|at| now - *at < UNKNOWN_KEY_TTL_SECS)
        {
            return Ok(None);
        }
        let store = &self.inner.store;
        let stored = match kind {
            KeyKind::Osquery => store.host_by_node_key(key).await,
            KeyKind::Orbit => store.host_by_orbit_node_key(key).await,
            KeyKind::Device => store.host_by_device_token(key).await,
        }
        .map_err(|_| HostError::Busy("the store is unavailable"))?;
        let Some(stored) = stored else {
            if unknown.len() >= UNKNOWN_KEYS_MAX {
                unknown.clear();
            }
            unknown.insert(key.into(), now);
            return Ok(None);
        };
        self.install_stored(&stored);
        unknown.remove(key);
        Ok(self.index(kind, key))
    }

    /// A slot for a host the registry does not hold yet, registered by id.
    /// Its orbit key and device tokens are indexed too; its osquery node key is the caller's.
    fn new_slot(&self, host: &StoredHost) -> Arc<HostSlot> {
        let slot = Arc::new(HostSlot::new(HostRecord::from_stored(host), host.seen_time));
        {
            let mut state = slot.lock();
            state.orbit_key = host.orbit_node_key.clone();
            state.device = host.device.clone();
        }
        if let Some(key) = host.orbit_node_key.clone() {
            self.inner.by_orbit_key.insert(key, slot.clone());
        }
        self.swap_device_tokens(&slot, None, host.device.as_ref());
        self.inner.by_id.insert(host.id, slot.clone());
        slot
    }

    /// Registers a host as the store has it (another node enrolled or changed it), keeping
    /// what this node knows of its check-ins: its keys and device token are made those of the
    /// store.
    fn install_stored(&self, host: &StoredHost) {
        let existing = self.inner.by_id.get(&host.id).map(|s| s.clone());
        let slot = existing.unwrap_or_else(|| self.new_slot(host));
        let (old_key, old_orbit, old_device) = {
            let mut state = slot.lock();
            if state.record.team != host.team {
                // Another team's policies apply now: they are due at once.
                state.record.policy_updated_at = 0;
            }
            state.record.team = host.team;
            if !host.hostname.is_empty() {
                state.record.hostname = host.hostname.as_str().into();
            }
            if !host.platform.is_empty() {
                state.record.platform = host.platform.as_str().into();
            }
            state.record.refetch_requested |= host.refetch_requested;
            (
                std::mem::replace(&mut state.record.node_key, host.node_key.clone()),
                std::mem::replace(&mut state.orbit_key, host.orbit_node_key.clone()),
                std::mem::replace(&mut state.device, host.device.clone()),
            )
        };
        let id = host.id;
        if let Some(old) = old_key.filter(|k| host.node_key.as_ref() != Some(k)) {
            self.inner.by_key.remove_if(&old, |_, s| s.id == id);
        }
        if let Some(old) = old_orbit.filter(|k| host.orbit_node_key.as_ref() != Some(k)) {
            self.inner.by_orbit_key.remove_if(&old, |_, s| s.id == id);
        }
        self.swap_device_tokens(&slot, old_device.as_ref(), host.device.as_ref());
        if let Some(key) = host.node_key.clone() {
            self.inner.unknown_keys[KeyKind::Osquery as usize].remove(key.as_str());
            self.inner.by_key.insert(key, slot.clone());
        }
        if let Some(key) = host.orbit_node_key.clone() {
            self.inner.unknown_keys[KeyKind::Orbit as usize].remove(key.as_str());
            self.inner.by_orbit_key.insert(key, slot.clone());
        }
    }

    /// Makes the device-token index point at `slot` for the tokens of `new` and no longer for
    /// those of `old` that `new` does not keep.
    fn swap_device_tokens(
        &self,
        slot: &Arc<HostSlot>,
        old: Option<&DeviceAuth>,
        new: Option<&DeviceAuth>,
    ) {
        let kept: Vec<&str> = new.into_iter().flat_map(device_tokens).collect();
        for token in old.into_iter().flat_map(device_tokens) {
            if !kept.contains(&token) {
                self.inner
                    .by_device_token
                    .remove_if(token, |_, s| s.id == slot.id);
            }
        }
        for token in kept {
            self.inner.unknown_keys[KeyKind::Device as usize].remove(token);
            self.inner
                .by_device_token
                .insert(token.into(), slot.clone());
        }
    }

    /// Enrolls orbit on a host, or re-keys orbit on a known one. The host orbit enrolls and
    /// the one osqueryd enrolls into later are the same row: both are found by the same
    /// identifier (orbit's `osquery_identifier`, else the hardware UUID, which is what
    /// osqueryd started by orbit sends as its host identifier).
    pub async fn enroll_orbit(
        &self,
        request: OrbitEnrollRequest,
        now: i64,
    ) -> Result<NodeKey, EnrollError> {
        let team = self
            .inner
            .secrets
            .verify(&request.enroll_secret)
            .ok_or(EnrollError::InvalidSecret)?;
        if request.hardware_uuid.trim().is_empty() {
            return Err(EnrollError::MissingHardwareUuid);
        }
        let identifier = clip(
            request
                .identifier()
                .ok_or(EnrollError::MissingHardwareUuid)?,
        )
        .to_owned();
        let key = NodeKey::generate();
        // The same stripe as osqueryd's enrollment of this identifier: the two agents of one
        // machine enrolling at once are serialised, so neither overwrites the other's key.
        let _stripe = self.enroll_stripe(&identifier).await;
        let enrolled = self
            .inner
            .store
            .enroll_orbit(&OrbitEnrollment {
                identifier,
                hardware_uuid: clip(&request.hardware_uuid).to_owned(),
                hardware_serial: clip_owned(request.hardware_serial),
                hostname: clip_owned(request.hostname),
                computer_name: clip_owned(request.computer_name),
                hardware_model: clip_owned(request.hardware_model),
                platform: clip_owned(request.platform),
                platform_like: clip_owned(request.platform_like),
                orbit_node_key: key.digest(),
                team,
                now,
            })
            .await
            .map_err(|e| self.enroll_failed(e))?;
        self.install_stored(&enrolled.host);
        if enrolled.created {
            self.inner.ctx.counters.orbit_enrollments.incr();
        } else {
            self.inner.ctx.counters.orbit_reenrollments.incr();
        }
        self.announce(RelayEvent::HostChanged(enrolled.host.id));
        Ok(key)
    }

    /// The host presenting orbit node key `key`. Orbit's requests do not count as check-ins
    /// (a host's online status is osquery's).
    pub async fn authenticate_orbit(&self, key: &str, now: i64) -> Result<HostRecord, HostError> {
        let digest = NodeKey::digest_of(key);
        let slot = match digest {
            None => None,
            Some(digest) => match self.index(KeyKind::Orbit, digest.as_str()) {
                Some(slot) => Some(slot),
                None if !self.inner.relay.is_local() => {
                    self.lookup_key(KeyKind::Orbit, digest.as_str(), now)
                        .await?
                }
                None => None,
            },
        };
        match slot {
            Some(slot) => Ok(slot.lock().record.clone()),
            None => {
                self.inner.ctx.counters.unknown_orbit_keys.incr();
                Err(HostError::UnknownOrbitKey)
            }
        }
    }

    /// The host whose device token `token` is valid at `now` (the current token, or the one it
    /// replaced, for an hour after it was set).
    pub async fn authenticate_device(
        &self,
        token: &str,
        now: i64,
    ) -> Result<HostRecord, HostError> {
        let accepted = |slot: &Arc<HostSlot>| {
            let state = slot.lock();
            let valid = state.device.as_ref().is_some_and(|d| d.accepts(token, now));
            valid.then(|| state.record.clone())
        };
        if let Some(slot) = self.index(KeyKind::Device, token)
            && let Some(record) = accepted(&slot)
        {
            return Ok(record);
        }
        if !self.inner.relay.is_local()
            && crate::device::check_token(token).is_ok()
            && let Some(slot) = self.lookup_key(KeyKind::Device, token, now).await?
            && let Some(record) = accepted(&slot)
        {
            return Ok(record);
        }
        self.inner.ctx.counters.device_auth_failures.incr();
        Err(HostError::UnknownDeviceToken)
    }

    /// Sets the host's device token (orbit's `POST /api/fleet/orbit/device_token`): written
    /// to the store first — where a token another host holds is refused — then to the
    /// registry, then announced to the other nodes.
    pub async fn set_device_token(
        &self,
        host: HostId,
        token: &str,
        now: i64,
    ) -> Result<(), DeviceTokenError> {
        crate::device::check_token(token)?;
        let slot = self
            .inner
            .by_id
            .get(&host)
            .map(|s| s.clone())
            .ok_or(DeviceTokenError::UnknownHost)?;
        let auth = match self.inner.store.set_device_token(host, token, now).await? {
            DeviceTokenWrite::Conflict => return Err(DeviceTokenError::Conflict),
            DeviceTokenWrite::Set(auth) => auth,
        };
        let old = slot.lock().device.replace(auth.clone());
        self.swap_device_tokens(&slot, old.as_ref(), Some(&auth));
        if old.as_ref() != Some(&auth) {
            self.announce(RelayEvent::HostChanged(host));
        }
        Ok(())
    }

    /// Records the end-user email orbit reports for the host.
    pub async fn set_device_mapping(
        &self,
        host: HostId,
        email: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.store.set_device_mapping(host, email, now).await
    }

    /// Has the host run its detail queries again at its next check-in (admin's
    /// `POST /hosts/{id}/refetch`, the My Device page's refetch button). False when no such
    /// host is registered.
    pub async fn refetch(&self, host: HostId) -> Result<bool, StoreError> {
        let Some(slot) = self.inner.by_id.get(&host).map(|s| s.clone()) else {
            return Ok(false);
        };
        self.inner.store.request_refetch(host).await?;
        slot.lock().record.refetch_requested = true;
        self.announce(RelayEvent::HostChanged(host));
        Ok(true)
    }

    /// The slot's actor, spawning one if the host has none.
    async fn activate(&self, slot: &Arc<HostSlot>) -> Result<ActorRef<HostMsg>, HostError> {
        {
            let mut state = slot.lock();
            match &state.actor {
                Some(actor)
                    if matches!(
                        actor.get_status(),
                        ActorStatus::Unstarted | ActorStatus::Starting | ActorStatus::Running
                    ) =>
                {
                    return Ok(actor.clone());
                }
                Some(_) => state.actor = None,
                None => {}
            }
        }
        let args = HostArgs {
            slot: slot.clone(),
            ctx: self.inner.ctx.clone(),
        };
        let (actor, _) = Actor::spawn(None, HostActor, args)
            .await
            .map_err(|_| HostError::Busy("host actor failed to start"))?;
        let mut state = slot.lock();
        if let Some(existing) = &state.actor {
            // Another request activated the host meanwhile; use that actor.
            let existing = existing.clone();
            drop(state);
            actor.stop(None);
            return Ok(existing);
        }
        state.actor = Some(actor.clone());
        self.inner.ctx.counters.activations.incr();
        Ok(actor)
    }

    /// One call into the host's actor. A call that meets an actor which stopped in the
    /// meantime (idle deactivation) is repeated against a fresh activation.
    async fn ask<R: Send + 'static>(
        &self,
        slot: &Arc<HostSlot>,
        message: impl Fn(RpcReplyPort<R>) -> HostMsg,
    ) -> Result<R, HostError> {
        const ATTEMPTS: usize = 3;
        let timeout = self.inner.ctx.config.actor_call_timeout;
        for _ in 0..ATTEMPTS {
            let actor = self.activate(slot).await?;
            match actor.call(&message, Some(timeout)).await {
                Ok(CallResult::Success(reply)) => return Ok(reply),
                Ok(CallResult::Timeout) => return Err(HostError::Busy("host actor timed out")),
                Ok(CallResult::SenderError) | Err(_) => slot.detach(&actor),
            }
        }
        Err(HostError::Busy("host actor kept stopping"))
    }
}

/// The tokens a device auth holds: the current one and, if any, the one it replaced.
fn device_tokens(auth: &DeviceAuth) -> impl Iterator<Item = &str> {
    std::iter::once(auth.token.as_str()).chain(auth.previous.as_deref())
}

fn stripe_of(identifier: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    identifier.hash(&mut hasher);
    (hasher.finish() % ENROLL_STRIPES as u64) as usize
}

/// The vitals an enroll request's `host_details` give.
pub fn vitals_from_details(request: &EnrollRequest) -> Vitals {
    let mut vitals = Vitals::default();
    if let Some(row) = &request.os_version {
        vitals.ingest_os_version(row);
    }
    if let Some(row) = &request.osquery_info {
        vitals.ingest_osquery_info(row);
    }
    if let Some(row) = &request.system_info {
        vitals.ingest_system_info(row);
    }
    vitals
}

/// The host's identity: the agent's own `host_identifier`, else osquery's instance UUID, else
/// the hardware UUID.
pub fn identifier_for(request: &EnrollRequest, vitals: &Vitals) -> Option<String> {
    let provided = clip(&request.host_identifier);
    if !provided.is_empty() {
        return Some(provided.to_owned());
    }
    let osquery_uuid = request
        .osquery_info
        .as_ref()
        .and_then(|r: &Row| r.get("uuid"))
        .map(|s| clip(s))
        .filter(|s| !s.is_empty());
    osquery_uuid
        .map(str::to_owned)
        .or_else(|| vitals.uuid.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_counts_by_platform_and_bounds_the_platforms() {
        let mut census = Census::default();
        census.count("ubuntu", true);
        census.count("ubuntu", false);
        census.count("", true);
        for i in 0..CENSUS_MAX_PLATFORMS + 5 {
            census.count(&format!("made-up-{i}"), false);
        }
        assert_eq!(census.platforms.len(), CENSUS_MAX_PLATFORMS);
        let get = |name: &str| census.platforms.iter().find(|p| &*p.platform == name);
        let ubuntu = get("ubuntu").unwrap();
        assert_eq!((ubuntu.enrolled, ubuntu.online), (2, 1));
        assert_eq!(get("unknown").unwrap().online, 1);
        // ubuntu and unknown, then 29 made-up platforms; the last place is `other`.
        let other = get("other").unwrap();
        assert_eq!(other.enrolled, (CENSUS_MAX_PLATFORMS + 5 - 29) as u64);
        let total: u64 = census.platforms.iter().map(|p| p.enrolled).sum();
        assert_eq!(total, 3 + (CENSUS_MAX_PLATFORMS + 5) as u64);
    }
}
