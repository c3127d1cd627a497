//! What the admin API (users, sessions, hosts, labels, teams, saved queries, activities) and
//! the campaign code need from the database: one store trait per area, `AdminStore` for all
//! of them, and the model types they use. The implementations for [`SqlStore`](crate::SqlStore)
//! are in `admin/`, one file per area.
//!
//! Times are Unix seconds. Roles are kept as Fleet's role names (`admin`, `maintainer`,
//! `observer`, `observer_plus`); what each may do is decided by the API. Every backend
//! implements this trait; SQL lives only in the implementations.

mod activities;
mod config;
mod hosts;
pub(crate) mod labels;
pub(crate) mod policies;
mod queries;
mod software;
mod teams;
mod usage;
mod users;

use std::fmt;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

/// A user's primary key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub u64);

/// A label's primary key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelId(pub u64);

/// A saved query's primary key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// A policy's primary key; the suffix of `fleet_policy_query_<id>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u64);

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for LabelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why an admin write was refused. Reads that cannot conflict return [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A unique name or email is taken.
    #[error("{0}")]
    Conflict(String),
    /// The object to change is not there.
    #[error("{0}")]
    NotFound(String),
    /// The change refers to something that does not exist (a team id, say).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failed write: a taken unique name becomes [`AdminError::Conflict`] (`what` says which),
/// a reference to a missing row becomes [`AdminError::Invalid`].
pub(crate) fn write_error(error: sqlx::Error, what: &str) -> AdminError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return AdminError::Conflict(format!("{what} already exists"));
        }
        if db.is_foreign_key_violation() {
            return AdminError::Invalid(format!("{what} refers to something that does not exist"));
        }
        // SQLSTATE 22001: a value longer than its column (MySQL's VARCHAR limits).
        if db.code().as_deref() == Some("22001") {
            return AdminError::Invalid(format!("{what}: a value is too long"));
        }
    }
    AdminError::Store(crate::common::store_error(error))
}

// ---------------------------------------------------------------------------------------------
// Users and sessions

/// A user as the API shows it (never with the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    /// `None` when the user's roles are per team.
    pub global_role: Option<String>,
    /// The user's per-team roles, ordered by team name.
    pub teams: Vec<UserTeam>,
    /// API-only users log in for scripts; their sessions never expire.
    pub api_only: bool,
    pub enabled: bool,
    pub force_password_reset: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserTeam {
    pub team: TeamId,
    pub team_name: String,
    pub role: String,
}

/// A user's roles: a global role, or roles on some teams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roles {
    Global(String),
    Teams(Vec<(TeamId, String)>),
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    /// An argon2 PHC string.
    pub password_hash: String,
    pub roles: Roles,
    pub api_only: bool,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub roles: Option<Roles>,
}

// ---------------------------------------------------------------------------------------------
// Hosts

/// A host with the columns the admin API shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub id: HostId,
    /// The agent's `host_identifier`.
    pub osquery_host_id: String,
    pub uuid: String,
    pub hostname: String,
    pub computer_name: String,
    pub platform: String,
    pub platform_like: String,
    pub os_version: String,
    pub build: String,
    pub code_name: String,
    pub osquery_version: String,
    pub cpu_type: String,
    pub cpu_brand: String,
    pub cpu_physical_cores: i64,
    pub cpu_logical_cores: i64,
    /// Bytes.
    pub memory: i64,
    pub hardware_vendor: String,
    pub hardware_model: String,
    pub hardware_version: String,
    pub hardware_serial: String,
    pub primary_ip: String,
    pub primary_mac: String,
    pub uptime_seconds: i64,
    pub distributed_interval: i64,
    pub config_tls_refresh: i64,
    pub logger_tls_period: i64,
    pub team: Option<TeamId>,
    pub team_name: Option<String>,
    /// Minute-accurate (the engine writes last-seen times in batches); the registry has the
    /// exact time.
    pub seen_time: i64,
    pub detail_updated_at: i64,
    pub refetch_requested: bool,
    pub created_at: i64,
    pub last_enrolled_at: i64,
    /// When the host's software set last changed (Unix seconds; 0: never reported).
    pub software_updated_at: i64,
    pub updated_at: i64,
    /// What the `orbit_info` detail query reported; `None` until orbit answered it.
    pub orbit_version: Option<String>,
    pub fleet_desktop_version: Option<String>,
    pub scripts_enabled: Option<bool>,
    /// The end-user email orbit set (`PUT /api/fleet/orbit/device_mapping`).
    pub custom_email: Option<String>,
    /// Policies of the host's (global ones and its team's) whose latest answer failed.
    pub failing_policies_count: u64,
}

/// Which hosts a viewer may see at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostScope {
    All,
    /// Only hosts in these teams (hosts without a team are not among them).
    Teams(Vec<TeamId>),
}

/// The `team_id` filter of the host lists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TeamFilter {
    /// Hosts in no team (Fleet's `team_id=0`).
    NoTeam,
    Team(TeamId),
}

/// Predicates the API derives from a host `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    /// Hosts among these ids (the online hosts, as the registry knows them).
    IdsIn(Vec<HostId>),
    /// Hosts not among these ids.
    IdsNotIn(Vec<HostId>),
    /// Hosts created at or after this time.
    CreatedSince(i64),
    /// Hosts whose last check-in is older than this time.
    NotSeenSince(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFilter {
    pub scope: HostScope,
    pub team: Option<TeamFilter>,
    pub label: Option<LabelId>,
    /// Case-insensitive substring of hostname, computer name, uuid, serial or primary IP.
    pub search: Option<String>,
    pub status: Option<StatusFilter>,
    /// Hosts whose latest answer to this policy passed (`true`) or failed (`false`).
    pub policy: Option<(PolicyId, bool)>,
    /// Hosts that have a software version, or any version of a title.
    pub software: Option<SoftwareFilter>,
    /// Hosts whose `os_version` (name and version, `Ubuntu 22.04.4 LTS`) is this, on this
    /// platform if one is given.
    pub os: Option<(Option<String>, String)>,
}

/// Which software [`HostFilter::software`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftwareFilter {
    Version(u64),
    Title(u64),
}

impl HostFilter {
    pub fn all() -> HostFilter {
        HostFilter {
            scope: HostScope::All,
            team: None,
            label: None,
            search: None,
            status: None,
            policy: None,
            software: None,
            os: None,
        }
    }
}

/// The keys hosts can be ordered by: the host object's field names.
pub const HOST_ORDER_KEYS: &[&str] = &[
    "id",
    "hostname",
    "computer_name",
    "display_name",
    "uuid",
    "osquery_host_id",
    "platform",
    "os_version",
    "osquery_version",
    "hardware_serial",
    "hardware_model",
    "primary_ip",
    "primary_mac",
    "memory",
    "uptime",
    "seen_time",
    "created_at",
    "updated_at",
    "last_enrolled_at",
    "detail_updated_at",
    "team_id",
    "team_name",
    "cpu_brand",
    "cpu_logical_cores",
    "distributed_interval",
];

/// One page of a list: `limit` rows after skipping `offset`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// One of the list's order keys (the API checks it first).
    pub key: String,
    pub descending: bool,
}

/// Host counts for `host_summary`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostTotals {
    pub total: u64,
    pub new: u64,
    pub not_seen_since: u64,
    /// `(platform, hosts)`, most hosts first.
    pub platforms: Vec<(String, u64)>,
}

// ---------------------------------------------------------------------------------------------
// Labels

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LabelType {
    Builtin,
    Regular,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LabelMembership {
    /// Members are the hosts whose answer to the label's query had rows.
    Dynamic,
    /// Members were chosen by people.
    Manual,
}

impl LabelType {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelType::Builtin => "builtin",
            LabelType::Regular => "regular",
        }
    }
}

impl LabelMembership {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelMembership::Dynamic => "dynamic",
            LabelMembership::Manual => "manual",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub id: LabelId,
    pub name: String,
    pub description: String,
    pub query: String,
    pub platform: String,
    pub label_type: LabelType,
    pub membership: LabelMembership,
    /// Members among the hosts of the scope the label was read with.
    pub host_count: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewLabel {
    pub name: String,
    pub description: String,
    /// Empty for a manual label.
    pub query: String,
    pub platform: String,
    pub membership: LabelMembership,
    /// The members of a manual label.
    pub hosts: Vec<HostId>,
}

#[derive(Clone, Debug, Default)]
pub struct LabelChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The new members of a manual label (replaces the old ones).
    pub hosts: Option<Vec<HostId>>,
}

/// A dynamic label's query, for the engine to send to hosts as `fleet_label_query_<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelQuery {
    pub id: LabelId,
    pub query: String,
    /// Empty: every platform.
    pub platform: String,
}

// ---------------------------------------------------------------------------------------------
// Teams and enroll secrets

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub description: String,
    pub user_count: u64,
    pub host_count: u64,
    pub secrets: Vec<TeamSecret>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An enroll secret with the team it enrolls into (`None`: global).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamSecret {
    pub secret: String,
    pub team: Option<TeamId>,
    pub created_at: i64,
}

#[derive(Clone, Debug, Default)]
pub struct TeamChanges {
    pub name: Option<String>,
    pub description: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Saved queries

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedQuery {
    pub id: QueryId,
    pub team: Option<TeamId>,
    pub fields: QueryFields,
    pub author: Option<UserId>,
    pub author_name: String,
    pub author_email: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a person sets on a saved query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryFields {
    pub name: String,
    pub description: String,
    pub query: String,
    /// Seconds between scheduled runs; 0: not scheduled.
    pub interval: u32,
    /// Comma-separated `darwin,linux,windows,chrome`; empty: all.
    pub platform: String,
    pub min_osquery_version: String,
    pub automations_enabled: bool,
    /// `snapshot`, `differential` or `differential_ignore_removals`.
    pub logging: String,
    pub observer_can_run: bool,
    pub discard_data: bool,
}

// ---------------------------------------------------------------------------------------------
// Policies

/// A policy with its author and its current pass/fail counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    /// `None`: a global policy, run by every host.
    pub team: Option<TeamId>,
    pub fields: PolicyFields,
    pub author: Option<UserId>,
    pub author_name: String,
    pub author_email: String,
    /// Hosts whose latest answer passed / failed, counted when read: current once the host
    /// writer has flushed the answers.
    pub passing_host_count: u64,
    pub failing_host_count: u64,
    /// The newest answer counted, Unix seconds; `None` if no host has answered yet.
    pub counts_updated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a person sets on a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub name: String,
    /// Passes when it returns rows, fails when it returns none.
    pub query: String,
    pub description: String,
    /// What to do about a failing host.
    pub resolution: String,
    /// Comma-separated `darwin,windows,linux,chrome`; empty: every platform.
    pub platform: String,
    pub critical: bool,
}

/// A `kind: policy` spec: a policy by name within its team, created or replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    /// `None`: global.
    pub team: Option<TeamId>,
    pub fields: PolicyFields,
}

/// A policy as it applies to one host, with that host's latest answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    pub id: PolicyId,
    pub team: Option<TeamId>,
    pub fields: PolicyFields,
    /// `Some(true)` pass, `Some(false)` fail, `None` no answer yet or the query failed.
    pub response: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Query reports

/// One host's latest answer to a scheduled query: what its query report shows for that host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRows {
    pub query: QueryId,
    pub host: HostId,
    /// Unix seconds when the server received the answer.
    pub last_fetched: i64,
    /// Each row as a JSON object's text; empty when the query returned no rows.
    pub rows: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Activities

#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    pub id: u64,
    pub actor: Option<UserId>,
    pub actor_full_name: Option<String>,
    pub actor_email: Option<String>,
    /// Fleet's activity type, e.g. `created_saved_query`.
    pub kind: String,
    pub details: serde_json::Value,
    pub created_at: i64,
}

/// The keys activities can be ordered by.
pub const ACTIVITY_ORDER_KEYS: &[&str] = &["created_at", "id", "type"];

// ---------------------------------------------------------------------------------------------

/// Users and their sessions.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn user_count(&self) -> Result<u64, StoreError>;
    /// Users with the global `admin` role.
    async fn global_admin_count(&self) -> Result<u64, StoreError>;
    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, AdminError>;
    /// Creates `user` only if there is no user at all (first-time setup); `None` otherwise.
    async fn create_first_user(&self, user: &NewUser, now: i64)
    -> Result<Option<User>, AdminError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The user with this email (case-insensitive) and their password hash.
    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError>;
    /// The password hash of a user.
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError>;
    /// Every user, ordered by name.
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    async fn update_user(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: i64,
    ) -> Result<User, AdminError>;
    /// Deletes a user and their sessions; `None` if there was no such user.
    async fn delete_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Records a session whose token hashes to `token_hash`.
    async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The session's user and the time the session was last used.
    async fn session(&self, token_hash: &str) -> Result<Option<(User, i64)>, StoreError>;
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError>;
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Ends every session of `user` but the one whose token hashes to `keep`; returns how many
    /// ended.
    async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError>;
}

/// Hosts as the admin API lists, filters, deletes and moves them, and target resolution for live queries.
#[async_trait]
pub trait HostDirectory: Send + Sync + 'static {
    async fn list_hosts(
        &self,
        filter: &HostFilter,
        order: &Order,
        page: Page,
    ) -> Result<Vec<Host>, StoreError>;
    async fn count_hosts(&self, filter: &HostFilter) -> Result<u64, StoreError>;
    async fn host(&self, id: HostId) -> Result<Option<Host>, StoreError>;
    /// The host whose hostname, uuid, hardware serial or osquery host id is `identifier`.
    async fn host_by_identifier(&self, identifier: &str) -> Result<Option<Host>, StoreError>;
    /// Deletes a host, its label memberships and its policy answers; `None` if there was no such host.
    async fn delete_host(&self, id: HostId) -> Result<Option<Host>, StoreError>;
    /// Moves hosts to a team (or to none). Unknown host ids are skipped; returns those moved.
    async fn transfer_hosts(
        &self,
        team: Option<TeamId>,
        hosts: &[HostId],
        now: i64,
    ) -> Result<Vec<HostId>, AdminError>;
    /// Counts for `host_summary`: hosts created since `new_since`, not seen since
    /// `not_seen_since`, and per platform.
    async fn host_totals(
        &self,
        scope: &HostScope,
        team: Option<TeamFilter>,
        new_since: i64,
        not_seen_since: i64,
    ) -> Result<HostTotals, StoreError>;

    /// Hosts in any of `labels` (builtin labels resolved by platform), for campaign targets.
    async fn host_ids_in_labels(&self, labels: &[LabelId]) -> Result<Vec<HostId>, StoreError>;
    async fn host_ids_in_teams(&self, teams: &[TeamId]) -> Result<Vec<HostId>, StoreError>;
    /// Hosts whose hostname, uuid, hardware serial or osquery host id is one of `identifiers`.
    async fn host_ids_by_identifiers(
        &self,
        identifiers: &[String],
    ) -> Result<Vec<HostId>, StoreError>;
}

/// Labels and their members.
#[async_trait]
pub trait LabelStore: Send + Sync + 'static {
    async fn create_label(&self, label: &NewLabel, now: i64) -> Result<Label, AdminError>;
    /// Every label, with host counts among the hosts of `scope`.
    async fn labels(&self, scope: &HostScope) -> Result<Vec<Label>, StoreError>;
    async fn label(&self, id: LabelId, scope: &HostScope) -> Result<Option<Label>, StoreError>;
    async fn label_ids_by_names(&self, names: &[String]) -> Result<Vec<LabelId>, StoreError>;
    /// The members of a manual label (empty for other labels).
    async fn manual_label_hosts(&self, id: LabelId) -> Result<Vec<HostId>, StoreError>;
    async fn update_label(
        &self,
        id: LabelId,
        changes: &LabelChanges,
        now: i64,
    ) -> Result<Label, AdminError>;
    /// Deletes a label that is not builtin; `None` if there was no such label.
    async fn delete_label(&self, id: LabelId) -> Result<Option<Label>, AdminError>;
    async fn label_by_name(&self, name: &str) -> Result<Option<Label>, StoreError>;
    /// The labels a host belongs to.
    async fn host_labels(&self, host: HostId) -> Result<Vec<Label>, StoreError>;
    /// Every dynamic, non-builtin label's query.
    async fn dynamic_label_queries(&self) -> Result<Vec<LabelQuery>, StoreError>;
}

/// Teams and enroll secrets.
#[async_trait]
pub trait TeamStore: Send + Sync + 'static {
    /// Creates a team with one enroll secret.
    async fn create_team(
        &self,
        name: &str,
        description: &str,
        secret: &str,
        now: i64,
    ) -> Result<Team, AdminError>;
    async fn teams(&self) -> Result<Vec<Team>, StoreError>;
    async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError>;
    async fn update_team(
        &self,
        id: TeamId,
        changes: &TeamChanges,
        now: i64,
    ) -> Result<Team, AdminError>;
    /// Deletes a team, its secrets, its saved queries and its users' roles on it; its hosts
    /// move to no team. Returns the team and the hosts that moved, `None` if there was none.
    async fn delete_team(&self, id: TeamId) -> Result<Option<(Team, Vec<HostId>)>, StoreError>;
    /// The enroll secrets of a team (`None`: the global ones).
    async fn enroll_secrets_of(&self, team: Option<TeamId>) -> Result<Vec<TeamSecret>, StoreError>;
    /// Replaces the enroll secrets of a team (`None`: the global ones).
    async fn replace_enroll_secrets(
        &self,
        team: Option<TeamId>,
        secrets: &[String],
        now: i64,
    ) -> Result<Vec<TeamSecret>, AdminError>;
}

/// Saved queries, the schedule they make, and their reports.
#[async_trait]
pub trait QueryStore: Send + Sync + 'static {
    async fn create_query(
        &self,
        team: Option<TeamId>,
        fields: &QueryFields,
        author: Option<UserId>,
        now: i64,
    ) -> Result<SavedQuery, AdminError>;
    /// The saved queries of a team (`None`: the global ones), optionally only those whose
    /// name or SQL contains `search`; ordered by name.
    async fn queries(
        &self,
        team: Option<TeamId>,
        search: Option<&str>,
    ) -> Result<Vec<SavedQuery>, StoreError>;
    async fn get_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError>;
    async fn update_query(
        &self,
        id: QueryId,
        fields: &QueryFields,
        now: i64,
    ) -> Result<SavedQuery, AdminError>;
    async fn delete_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError>;
    /// Deletes the queries among `ids` that exist; returns how many.
    async fn delete_queries(&self, ids: &[QueryId]) -> Result<u64, StoreError>;
    async fn query_by_name(
        &self,
        team: Option<TeamId>,
        name: &str,
    ) -> Result<Option<SavedQuery>, StoreError>;

    /// Replaces, for each entry, the rows stored for that (query, host). Entries whose query is
    /// gone are skipped.
    async fn write_reports(&self, reports: &[ReportRows]) -> Result<(), StoreError>;
    /// Every stored report entry (at most the report cap per query), to load at start.
    async fn reports(&self) -> Result<Vec<ReportRows>, StoreError>;
    /// Forgets a query's report (its SQL changed, or it stopped keeping snapshots).
    async fn delete_report(&self, query: QueryId) -> Result<(), StoreError>;

    /// Every saved query with an interval above 0, of every team and the global ones.
    async fn scheduled_queries(&self) -> Result<Vec<SavedQuery>, StoreError>;
}

/// Global and team policies, and each host's answers to them (written by the host flush).
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// A new policy of `team` (`None`: global). A name taken in that team is `Conflict`, an
    /// unknown team `Invalid`.
    async fn create_policy(
        &self,
        team: Option<TeamId>,
        fields: &PolicyFields,
        author: Option<UserId>,
        now: i64,
    ) -> Result<Policy, AdminError>;
    /// The policies of a team (`None`: the global ones), with their counts, ordered by name.
    async fn policies(&self, team: Option<TeamId>) -> Result<Vec<Policy>, StoreError>;
    /// How many policies a team has (`None`: how many global ones).
    async fn policy_count(&self, team: Option<TeamId>) -> Result<u64, StoreError>;
    /// Every policy, global and of every team: the set the engine hands out.
    async fn all_policies(&self) -> Result<Vec<Policy>, StoreError>;
    async fn policy(&self, id: PolicyId) -> Result<Option<Policy>, StoreError>;
    /// Replaces a policy's fields. A changed query or platform forgets every host's answer,
    /// since the answers no longer answer it.
    async fn update_policy(
        &self,
        id: PolicyId,
        fields: &PolicyFields,
        now: i64,
    ) -> Result<Policy, AdminError>;
    /// Deletes the policies among `ids` that exist, with their hosts' answers; returns them.
    async fn delete_policies(&self, ids: &[PolicyId]) -> Result<Vec<Policy>, StoreError>;
    /// Creates or replaces each spec's policy (by team and name), in one transaction; answers
    /// are forgotten where the query or platform changed. Returns the policies as stored.
    async fn apply_policy_specs(
        &self,
        specs: &[PolicySpec],
        author: Option<UserId>,
        now: i64,
    ) -> Result<Vec<Policy>, AdminError>;

    /// The policies that apply to a host — the global ones and its team's, those whose
    /// platform list covers the host's platform — each with the host's latest answer, ordered
    /// by name. Empty for an unknown host. For `GET /hosts/{id}` and Fleet Desktop.
    async fn host_policies(&self, host: HostId) -> Result<Vec<HostPolicy>, StoreError>;
    /// How many of [`host_policies`](PolicyStore::host_policies) the host fails (`Some(false)`).
    async fn failing_policy_count(&self, host: HostId) -> Result<u64, StoreError>;
}

/// Agent options and the organisation settings.
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    /// The stored agent options of a team (`None`: the global ones); `None` if never set.
    async fn agent_options(
        &self,
        team: Option<TeamId>,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    /// Stores the agent options of a team (`None`: the global ones). `Value::Null` for a team
    /// removes its own options, so the global ones apply again. An unknown team is `NotFound`.
    async fn set_agent_options(
        &self,
        team: Option<TeamId>,
        options: &serde_json::Value,
        now: i64,
    ) -> Result<(), AdminError>;
    /// The organisation settings other than agent options (`org_info`, `server_settings`,
    /// `features`, …) as one JSON object; `None` if never set.
    async fn app_settings(&self) -> Result<Option<serde_json::Value>, StoreError>;
    async fn set_app_settings(
        &self,
        settings: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Every team that has agent options of its own, with them.
    async fn team_agent_options(&self) -> Result<Vec<(TeamId, serde_json::Value)>, StoreError>;
}

/// The activity log.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    async fn record_activity(
        &self,
        actor: Option<UserId>,
        kind: &str,
        details: serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError>;
    async fn activities(&self, order: &Order, page: Page) -> Result<Vec<Activity>, StoreError>;
}

/// A vulnerability of a software version, with what the feed says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftwareVulnerability {
    pub cve: String,
    pub resolved_in_version: Option<String>,
    pub meta: CveMeta,
}

/// What the vulnerability feed says of a CVE.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CveMeta {
    pub cvss_score: Option<f64>,
    pub epss_probability: Option<f64>,
    pub cisa_known_exploit: bool,
    /// Unix seconds.
    pub published: Option<i64>,
    pub description: Option<String>,
}

/// One software version, as the software lists show it.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftwareVersion {
    pub id: u64,
    pub title_id: u64,
    pub name: String,
    pub version: String,
    pub source: String,
    pub bundle_identifier: String,
    pub extension_id: String,
    pub browser: String,
    pub release: String,
    pub vendor: String,
    pub arch: String,
    /// Hosts with it in the list's scope, as of the last count.
    pub hosts_count: u64,
    pub vulnerabilities: Vec<SoftwareVulnerability>,
}

/// The versions of one product.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftwareTitle {
    pub id: u64,
    pub name: String,
    pub source: String,
    pub browser: String,
    pub bundle_identifier: String,
    pub hosts_count: u64,
    pub versions: Vec<TitleVersion>,
}

/// A version of a title, with its hosts count and CVE ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TitleVersion {
    pub id: u64,
    pub version: String,
    pub hosts_count: u64,
    pub cves: Vec<String>,
}

/// A software version on one host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostSoftware {
    pub software: SoftwareVersion,
    pub last_opened_at: Option<i64>,
    pub installed_paths: Vec<String>,
}

/// Filters of the software lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SoftwareListFilter {
    /// Counts of this team (`None`: every host). The list holds what this scope has.
    pub team: Option<TeamId>,
    /// Substring of the name or version, or of a CVE id.
    pub search: Option<String>,
    pub vulnerable: bool,
    pub min_cvss: Option<f64>,
    pub max_cvss: Option<f64>,
    /// Only software with a CVE in CISA's known-exploited catalogue.
    pub exploit: bool,
}

/// The keys software versions can be ordered by.
pub const SOFTWARE_ORDER_KEYS: &[&str] = &[
    "name",
    "hosts_count",
    "cvss_score",
    "epss_probability",
    "cve_published",
    "cisa_known_exploit",
    "id",
];

/// A CVE with its host count.
#[derive(Clone, Debug, PartialEq)]
pub struct Vulnerability {
    pub cve: String,
    pub meta: CveMeta,
    /// When a match first found it on installed software (Unix seconds).
    pub created_at: i64,
    pub hosts_count: u64,
}

/// The keys vulnerabilities can be ordered by.
pub const VULNERABILITY_ORDER_KEYS: &[&str] = &[
    "cve",
    "cvss_score",
    "epss_probability",
    "cve_published",
    "created_at",
    "hosts_count",
];

/// Filters of the vulnerability list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VulnerabilityFilter {
    pub team: Option<TeamId>,
    /// Substring of the CVE id.
    pub search: Option<String>,
    pub exploit: bool,
}

/// An operating system version with its hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsVersion {
    /// A stable id: the same OS keeps it as long as a host runs it.
    pub id: u64,
    pub platform: String,
    /// `Ubuntu 22.04.4 LTS`: what hosts show as their `os_version`.
    pub name: String,
    pub hosts_count: u64,
}

/// When the software counts and the vulnerability match last ran (Unix seconds, 0: never),
/// and when any host's software last changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SoftwareState {
    /// Counts writes of host software: a job that saw generation N has seen every change up
    /// to it.
    pub generation: i64,
    pub counted_generation: i64,
    pub matched_generation: i64,
    pub changed_at: i64,
    pub counts_updated_at: i64,
    pub matched_at: i64,
    pub feed_fingerprint: String,
}

/// A software version the matcher looks at: identity, and the OS versions (platform,
/// `os_version`) a distribution package was seen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchableSoftware {
    pub id: u64,
    pub name: String,
    pub version: String,
    pub release: String,
    pub source: String,
    pub os: Vec<(String, String)>,
}

/// One finding of a match: a software version affected by a CVE.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SoftwareCve {
    pub software_id: u64,
    pub cve: String,
    pub osv_id: String,
    pub resolved_in_version: Option<String>,
}

/// What a store write of a match changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatchWrite {
    pub added: u64,
    pub removed: u64,
}

/// Software inventory, vulnerabilities and operating systems, for the API and the jobs that
/// keep counts and matches.
#[async_trait]
pub trait SoftwareStore: Send + Sync + 'static {
    async fn software_versions(
        &self,
        filter: &SoftwareListFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<SoftwareVersion>, u64), StoreError>;
    /// One version; `hosts_count` in `team`'s scope (`None`: every host).
    async fn software_version(
        &self,
        id: u64,
        team: Option<TeamId>,
    ) -> Result<Option<SoftwareVersion>, StoreError>;
    async fn software_titles(
        &self,
        filter: &SoftwareListFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<SoftwareTitle>, u64), StoreError>;
    async fn software_title(
        &self,
        id: u64,
        team: Option<TeamId>,
    ) -> Result<Option<SoftwareTitle>, StoreError>;
    /// A host's software, ordered by name then version.
    async fn host_software(&self, host: HostId) -> Result<Vec<HostSoftware>, StoreError>;
    async fn vulnerabilities(
        &self,
        filter: &VulnerabilityFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<Vulnerability>, u64), StoreError>;
    /// A CVE that affects installed software, with the versions it affects (counts in
    /// `team`'s scope).
    async fn vulnerability(
        &self,
        cve: &str,
        team: Option<TeamId>,
    ) -> Result<Option<(Vulnerability, Vec<SoftwareVersion>)>, StoreError>;
    /// The OS versions hosts run, with host counts, in `team`'s scope (`None`: every host;
    /// `scope` limits a team user to their teams).
    async fn os_versions(
        &self,
        team: Option<TeamId>,
        scope: &HostScope,
    ) -> Result<Vec<OsVersion>, StoreError>;
    async fn software_state(&self) -> Result<SoftwareState, StoreError>;

    /// Recounts hosts per software version, title and CVE, per team and overall; records
    /// `generation` (read before counting) as counted.
    async fn refresh_software_counts(&self, generation: i64, now: i64) -> Result<(), StoreError>;
    /// The software of these sources, for matching.
    async fn matchable_software(
        &self,
        sources: &[&str],
    ) -> Result<Vec<MatchableSoftware>, StoreError>;
    /// Replaces what the last match found with `found`, and the metadata of the CVEs in it;
    /// records `fingerprint` as the feed matched and `generation` (read before matching) as
    /// the software matched.
    async fn replace_software_cves(
        &self,
        found: &[SoftwareCve],
        meta: &[(String, CveMeta)],
        fingerprint: &str,
        generation: i64,
        now: i64,
    ) -> Result<MatchWrite, StoreError>;
}

/// Everything the admin API stores, one trait per area; a handler or service depends on the
/// areas it uses. Every backend implements all of them.
/// Figures for the opt-in usage statistics: counts only, never a name, address or text a
/// person wrote. Breakdowns hold at most [`USAGE_BREAKDOWN_MAX`] entries, largest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageCounts {
    pub hosts: u64,
    pub users: u64,
    pub teams: u64,
    pub labels: u64,
    pub policies: u64,
    pub queries: u64,
    pub software_versions: u64,
    pub host_software: u64,
    pub software_titles: u64,
    pub software_cves: u64,
    /// Hosts whose orbit reports a Fleet Desktop version.
    pub hosts_with_desktop: u64,
    /// (platform, OS name and version, hosts).
    pub by_os: Vec<(String, String, u64)>,
    /// (osquery version, hosts).
    pub by_osquery_version: Vec<(String, u64)>,
    /// (orbit version, hosts).
    pub by_orbit_version: Vec<(String, u64)>,
}

/// Entries kept per breakdown of [`UsageCounts`].
pub const USAGE_BREAKDOWN_MAX: usize = 100;

/// The usage statistics' own state: the installation's anonymous identifier and the last try.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    async fn usage_counts(&self) -> Result<UsageCounts, StoreError>;
    /// The anonymous identifier: the stored one, or `candidate`, stored now if none was (the
    /// first node to store one wins; it never changes after).
    async fn usage_identifier(&self, candidate: &str, now: i64) -> Result<String, StoreError>;
    /// When statistics were last tried, by any node (0: never).
    async fn usage_last_attempt(&self) -> Result<i64, StoreError>;
    async fn record_usage_attempt(&self, now: i64, delivered: bool) -> Result<(), StoreError>;
}

pub trait AdminStore:
    UserStore
    + HostDirectory
    + LabelStore
    + TeamStore
    + QueryStore
    + PolicyStore
    + ConfigStore
    + ActivityStore
    + SoftwareStore
    + UsageStore
    + crate::carves::CarveStore
{
}

impl<T> AdminStore for T where
    T: UserStore
        + HostDirectory
        + LabelStore
        + TeamStore
        + QueryStore
        + PolicyStore
        + ConfigStore
        + ActivityStore
        + SoftwareStore
        + UsageStore
        + crate::carves::CarveStore
{
}

crate::sql::id_args!(UserId, LabelId, QueryId, PolicyId);
