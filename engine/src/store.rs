//! The durability traits. The engine says what must survive; `flotilla-storage` implements it
//! for SQLite and MySQL. Nothing here is called on the check-in path: hosts are loaded once at
//! start, enrollment writes through, and check-ins reach the store only through the batched
//! [`HostWriter`](crate::writer::HostWriter).

use async_trait::async_trait;

use crate::ids::{HostId, NodeKey, TeamId};
use crate::vitals::{Intervals, Vitals};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or failed; the operation may succeed if retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered, but the data broke an invariant.
    #[error("store data error: {0}")]
    Data(String),
}

/// What the registry needs of a stored host to answer its check-ins.
#[derive(Clone, Debug)]
pub struct StoredHost {
    pub id: HostId,
    pub node_key: Option<NodeKey>,
    pub identifier: String,
    pub hostname: String,
    pub platform: String,
    pub team: Option<TeamId>,
    pub intervals: Intervals,
    /// Unix seconds of the last check-in the store knows of; 0 if never.
    pub seen_time: i64,
    /// Unix seconds when detail queries last filled the vitals; 0 if never.
    pub detail_updated_at: i64,
    /// Unix seconds when the host last answered the dynamic-label queries; 0 if never.
    pub label_updated_at: i64,
    /// Unix seconds when the host last answered its policies; 0 if never.
    pub policy_updated_at: i64,
    pub refetch_requested: bool,
    /// The key orbit (the agent manager) authenticates with, once orbit has enrolled.
    pub orbit_node_key: Option<NodeKey>,
    /// Fleet Desktop's device token, once orbit has set one.
    pub device: Option<DeviceAuth>,
    /// Display name of the OS with its version (`Ubuntu 22.04.4 LTS`); empty if not known.
    pub os_version: String,
    /// [`Inventory::fingerprint`](crate::software::Inventory) of the software set last
    /// stored; 0 if none.
    pub software_fingerprint: u64,
}

/// A host's Fleet Desktop device token as stored: valid for
/// [`DEVICE_TOKEN_TTL_SECS`](crate::device::DEVICE_TOKEN_TTL_SECS) after `updated_at`, and so
/// is the token it replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuth {
    pub token: String,
    pub previous: Option<String>,
    /// Unix seconds when `token` was set.
    pub updated_at: i64,
}

/// What orbit's enroll request says of the host, as the store must record it.
#[derive(Clone, Debug)]
pub struct OrbitEnrollment {
    /// `hosts.osquery_host_id`: orbit's `osquery_identifier`, else the hardware UUID. osqueryd,
    /// started by orbit with `--host_identifier=uuid`, enrolls under the same value later.
    pub identifier: String,
    pub hardware_uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub hardware_model: String,
    pub platform: String,
    pub platform_like: String,
    pub orbit_node_key: NodeKey,
    pub team: Option<TeamId>,
    /// Unix seconds.
    pub now: i64,
}

/// Outcome of [`HostStore::set_device_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceTokenWrite {
    /// The host's token is now this (unchanged when it was already the host's token).
    Set(DeviceAuth),
    /// Another host holds the token.
    Conflict,
}

/// One enrollment, as the store must record it.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// `hosts.osquery_host_id`: the agent's `host_identifier`.
    pub identifier: String,
    /// Hardware UUID from `system_info`, used to recognise a host whose identifier changed.
    pub hardware_uuid: Option<String>,
    pub node_key: NodeKey,
    pub team: Option<TeamId>,
    pub vitals: Vitals,
    /// Unix seconds.
    pub now: i64,
}

/// Outcome of [`HostStore::enroll_host`].
#[derive(Clone, Debug)]
pub struct EnrolledHost {
    pub host: StoredHost,
    /// The key the host held before this enrollment, now invalid: its osquery node key for an
    /// osquery enrollment, its orbit node key for an orbit one.
    pub previous_node_key: Option<NodeKey>,
    /// False when an existing host re-enrolled.
    pub created: bool,
}

/// An enroll secret and the team it enrolls hosts into (`None`: global).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollSecret {
    pub secret: String,
    pub team: Option<TeamId>,
}

/// One host's changes since the last flush.
#[derive(Clone, Debug, Default)]
pub struct HostUpdate {
    pub seen_time: Option<i64>,
    pub vitals: Option<Vitals>,
    pub detail_updated_at: Option<i64>,
    /// Dynamic-label answers: label id and whether the host is a member.
    pub labels: Option<Vec<(u64, bool)>>,
    pub label_updated_at: Option<i64>,
    /// Policy answers: policy id and the response (`Some(true)` pass, `Some(false)` fail,
    /// `None` unknown). Only policies the host was handed.
    pub policies: Option<Vec<(u64, Option<bool>)>>,
    /// When the host last answered its policies (or was found to have none to run).
    pub policy_updated_at: Option<i64>,
    /// The host's new software set, when it changed; written with its fingerprint.
    pub software: Option<std::sync::Arc<crate::software::Inventory>>,
    pub software_updated_at: Option<i64>,
}

#[async_trait]
pub trait HostStore: Send + Sync + 'static {
    /// Every enrolled host, for the registry at start.
    async fn load_hosts(&self) -> Result<Vec<StoredHost>, StoreError>;

    /// One host, as [`load_hosts`](HostStore::load_hosts) has it; `None` if it was deleted.
    /// Used when another node changed it.
    async fn load_host(&self, id: HostId) -> Result<Option<StoredHost>, StoreError>;

    /// The host holding `node_key`, if any: a node that does not know a key asks here, since
    /// the host may have enrolled on another node.
    async fn host_by_node_key(&self, node_key: &str) -> Result<Option<StoredHost>, StoreError>;

    /// Records an enrollment: an existing host (same identifier, else same hardware UUID) gets
    /// the new node key; otherwise a host is created. Never creates a duplicate.
    async fn enroll_host(&self, enrollment: &Enrollment) -> Result<EnrolledHost, StoreError>;

    /// Applies a batch of check-in updates in one round trip where the backend allows.
    async fn flush_hosts(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), StoreError>;

    /// Records an orbit enrollment: the host with the same identifier (osquery's or orbit's)
    /// gets the new orbit node key, and its empty identity columns are filled in; otherwise a
    /// host is created, without an osquery node key until osqueryd enrolls into it.
    async fn enroll_orbit(&self, enrollment: &OrbitEnrollment) -> Result<EnrolledHost, StoreError>;

    /// The host holding orbit node key `key`, if any (asked by a node that does not know it).
    async fn host_by_orbit_node_key(&self, key: &str) -> Result<Option<StoredHost>, StoreError>;

    /// The host whose current or previous device token is `token`, if any.
    async fn host_by_device_token(&self, token: &str) -> Result<Option<StoredHost>, StoreError>;

    /// Makes `token` the host's device token; the one it replaces becomes the previous token.
    /// Setting the token the host already holds changes nothing (its time included).
    async fn set_device_token(
        &self,
        host: HostId,
        token: &str,
        now: i64,
    ) -> Result<DeviceTokenWrite, StoreError>;

    /// Records the end-user email orbit reports (`PUT /api/fleet/orbit/device_mapping`).
    async fn set_device_mapping(
        &self,
        host: HostId,
        email: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Marks the host's details to be fetched again at its next check-in.
    async fn request_refetch(&self, host: HostId) -> Result<(), StoreError>;

    async fn enroll_secrets(&self) -> Result<Vec<EnrollSecret>, StoreError>;

    /// Makes `secret` valid for `team`; returns false if it already was.
    async fn ensure_enroll_secret(
        &self,
        secret: &str,
        team: Option<TeamId>,
    ) -> Result<bool, StoreError>;

    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What a campaign selected, as the admin gave it; kept with the campaign for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Label,
    Host,
    Team,
}

/// A campaign as the store records it when it starts.
#[derive(Clone, Debug)]
pub struct CampaignRecord {
    pub sql: String,
    /// The saved query it runs, if any.
    pub query_id: Option<u64>,
    /// The user who started it.
    pub user_id: Option<u64>,
    pub selected: Vec<(TargetKind, u64)>,
    pub created_at: i64,
}

/// How a campaign ended, for the record.
#[derive(Clone, Debug)]
pub struct CampaignOutcome {
    pub reason: &'static str,
    pub targets: u64,
    pub online: u64,
    pub responded: u64,
    pub finished_at: i64,
}

/// A running campaign's counts so far, recorded every few seconds so that a campaign closed
/// after a crash still shows how far it got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub targets: u64,
    pub online: u64,
    pub responded: u64,
}

#[async_trait]
pub trait CampaignStore: Send + Sync + 'static {
    /// Records a new campaign and returns its id (never reused).
    async fn create_campaign(
        &self,
        campaign: &CampaignRecord,
    ) -> Result<crate::ids::CampaignId, StoreError>;

    /// Records a running campaign's counts (never lowering `responded`, which nodes sharing
    /// a campaign may report out of order); a finished campaign is left as it is.
    async fn record_campaign_counts(
        &self,
        id: crate::ids::CampaignId,
        counts: CampaignCounts,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Marks a campaign complete.
    async fn finish_campaign(
        &self,
        id: crate::ids::CampaignId,
        outcome: &CampaignOutcome,
    ) -> Result<(), StoreError>;

    /// Completes campaigns left running by a previous process (it stopped before they did),
    /// except those in `keep`: still running on other nodes that share a relay. Their last
    /// recorded counts stay.
    async fn finish_abandoned_campaigns(
        &self,
        now: i64,
        keep: &[crate::ids::CampaignId],
    ) -> Result<u64, StoreError>;
}
