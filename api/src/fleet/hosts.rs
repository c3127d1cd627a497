//! Hosts: lists with Fleet's filters, count, one host by id or identifier, deletion, transfer
//! between teams, and `host_summary`.
//!
//! The database's copy of a host's last check-in is minute-accurate (the engine writes it in
//! batches), so `seen_time`, `status` and the `online`/`offline` filters use the registry's
//! exact time instead. `new` and `missing` use the stored times, which are exact enough at
//! 24 hours and 30 days.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use flotilla_engine::{HostId, TeamId};
use flotilla_storage::admin::{
    HOST_ORDER_KEYS, Host, HostFilter, HostScope, Label, LabelId, LabelType, PolicyId,
    StatusFilter, TeamFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{FleetError, FleetJson, FleetPath, FleetQuery, ok};
use super::labels::{self, LabelJson};
use super::{ListParams, rfc3339};
use crate::service::Viewer;
use crate::state::{AppState, SharedState};

/// A host is `new` for a day after it enrolled.
const NEW_FOR: i64 = 24 * 3600;
/// A host not seen for 30 days is `missing` (Fleet's `mia`).
const MISSING_AFTER: i64 = 30 * 24 * 3600;

/// A host on the wire, with Fleet's field names.
#[derive(Serialize)]
pub struct HostJson {
    created_at: String,
    updated_at: String,
    id: u64,
    detail_updated_at: String,
    label_updated_at: String,
    policy_updated_at: String,
    last_enrolled_at: String,
    software_updated_at: String,
    seen_time: String,
    refetch_requested: bool,
    hostname: String,
    uuid: String,
    osquery_host_id: String,
    platform: String,
    osquery_version: String,
    os_version: String,
    build: String,
    platform_like: String,
    code_name: String,
    /// Nanoseconds, as Go's `time.Duration`.
    uptime: i64,
    memory: i64,
    cpu_type: String,
    cpu_subtype: String,
    cpu_brand: String,
    cpu_physical_cores: i64,
    cpu_logical_cores: i64,
    hardware_vendor: String,
    hardware_model: String,
    hardware_version: String,
    hardware_serial: String,
    computer_name: String,
    display_name: String,
    display_text: String,
    public_ip: String,
    primary_ip: String,
    primary_mac: String,
    distributed_interval: i64,
    config_tls_refresh: i64,
    logger_tls_period: i64,
    team_id: Option<u64>,
    team_name: Option<String>,
    gigs_disk_space_available: f64,
    percent_disk_space_available: f64,
    gigs_total_disk_space: f64,
    pack_stats: Option<()>,
    issues: serde_json::Value,
    status: &'static str,
    /// What orbit's `orbit_info` table reported; `null` on hosts without orbit.
    orbit_version: Option<String>,
    fleet_desktop_version: Option<String>,
    scripts_enabled: Option<bool>,
}

/// The exact last-seen time and status of a host, from the registry.
fn live_status(state: &AppState, host: &Host, now: i64) -> (i64, &'static str) {
    match state.hosts.presence(host.id, now) {
        Some(presence) => (
            presence.last_seen.max(host.seen_time),
            if presence.online { "online" } else { "offline" },
        ),
        None => (host.seen_time, "offline"),
    }
}

impl HostJson {
    pub fn new(state: &AppState, host: &Host, now: i64) -> HostJson {
        let (seen, status) = live_status(state, host, now);
        let display_name = if host.computer_name.is_empty() {
            host.hostname.clone()
        } else {
            host.computer_name.clone()
        };
        HostJson {
            created_at: rfc3339(host.created_at),
            updated_at: rfc3339(host.updated_at),
            id: host.id.0,
            detail_updated_at: rfc3339(host.detail_updated_at),
            label_updated_at: rfc3339(host.detail_updated_at),
            policy_updated_at: rfc3339(0),
            last_enrolled_at: rfc3339(host.last_enrolled_at),
            software_updated_at: rfc3339(host.software_updated_at),
            seen_time: rfc3339(seen),
            refetch_requested: host.refetch_requested,
            hostname: host.hostname.clone(),
            uuid: host.uuid.clone(),
            osquery_host_id: host.osquery_host_id.clone(),
            platform: host.platform.clone(),
            osquery_version: host.osquery_version.clone(),
            os_version: host.os_version.clone(),
            build: host.build.clone(),
            platform_like: host.platform_like.clone(),
            code_name: host.code_name.clone(),
            uptime: host.uptime_seconds.saturating_mul(1_000_000_000),
            memory: host.memory,
            cpu_type: host.cpu_type.clone(),
            cpu_subtype: String::new(),
            cpu_brand: host.cpu_brand.clone(),
            cpu_physical_cores: host.cpu_physical_cores,
            cpu_logical_cores: host.cpu_logical_cores,
            hardware_vendor: host.hardware_vendor.clone(),
            hardware_model: host.hardware_model.clone(),
            hardware_version: host.hardware_version.clone(),
            hardware_serial: host.hardware_serial.clone(),
            computer_name: host.computer_name.clone(),
            display_text: host.hostname.clone(),
            display_name,
            public_ip: String::new(),
            primary_ip: host.primary_ip.clone(),
            primary_mac: host.primary_mac.clone(),
            distributed_interval: host.distributed_interval,
            config_tls_refresh: host.config_tls_refresh,
            logger_tls_period: host.logger_tls_period,
            team_id: host.team.map(|t| t.0),
            team_name: host.team_name.clone(),
            gigs_disk_space_available: 0.0,
            percent_disk_space_available: 0.0,
            gigs_total_disk_space: 0.0,
            pack_stats: None,
            issues: json!({
                "failing_policies_count": host.failing_policies_count,
                "total_issues_count": host.failing_policies_count,
            }),
            status,
            orbit_version: host.orbit_version.clone(),
            fleet_desktop_version: host.fleet_desktop_version.clone(),
            scripts_enabled: host.scripts_enabled,
        }
    }
}

/// Ids of the hosts online right now, by the registry.
fn online_ids(state: &AppState, now: i64) -> Vec<HostId> {
    state
        .hosts
        .ids()
        .into_iter()
        .filter(|&id| state.hosts.is_online(id, now))
        .collect()
}

/// The `team_id` parameter (0: hosts in no team), if the viewer may read that team.
fn team_filter(viewer: &Viewer, team_id: Option<u64>) -> Result<Option<TeamFilter>, FleetError> {
    match team_id {
        None => Ok(None),
        Some(0) => {
            Viewer::require(viewer.can_read(None))?;
            Ok(Some(TeamFilter::NoTeam))
        }
        Some(team) => {
            Viewer::require(viewer.can_read(Some(TeamId(team))))?;
            Ok(Some(TeamFilter::Team(TeamId(team))))
        }
    }
}

/// The store filter for Fleet's host-list parameters, as `viewer` sees hosts.
pub fn host_filter(
    state: &AppState,
    viewer: &Viewer,
    params: &ListParams,
    label: Option<LabelId>,
    now: i64,
) -> Result<HostFilter, FleetError> {
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some("online") => Some(StatusFilter::IdsIn(online_ids(state, now))),
        Some("offline") => Some(StatusFilter::IdsNotIn(online_ids(state, now))),
        Some("new") => Some(StatusFilter::CreatedSince(now - NEW_FOR)),
        Some("missing") | Some("mia") => Some(StatusFilter::NotSeenSince(now - MISSING_AFTER)),
        Some(other) => {
            return Err(FleetError::BadRequest(format!(
                "invalid status `{other}`; use online, offline, new, missing or mia"
            )));
        }
    };
    let policy = match (params.policy_id, params.policy_response.as_deref()) {
        (None, None) => None,
        (Some(id), Some("passing")) => Some((PolicyId(id), true)),
        (Some(id), Some("failing")) => Some((PolicyId(id), false)),
        (Some(_), None) => {
            return Err(FleetError::BadRequest(
                "policy_id needs policy_response (passing or failing)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(FleetError::BadRequest(
                "policy_response needs policy_id".into(),
            ));
        }
        (Some(_), Some(other)) => {
            return Err(FleetError::BadRequest(format!(
                "invalid policy_response `{other}`; use passing or failing"
            )));
        }
    };
    Ok(HostFilter {
        scope: viewer.host_scope(),
        team: team_filter(viewer, params.team_id)?,
        label: label.or(params.label_id.map(LabelId)),
        search: params.query.clone().filter(|q| !q.trim().is_empty()),
        status,
        policy,
        software: None,
        os: None,
    })
}

/// A page of hosts as Fleet lists them, of all hosts or of a label's.
pub async fn list_response(
    state: &AppState,
    viewer: &Viewer,
    params: &ListParams,
    label: Option<LabelId>,
) -> Result<Response, FleetError> {
    let now = flotilla_engine::unix_now();
    let mut filter = host_filter(state, viewer, params, label, now)?;
    let (software, extra) = super::software::host_list_extras(state, params).await?;
    filter.software = software;
    filter.os = os_filter(state, viewer, params).await?;
    let order = params.order("hostname", false, HOST_ORDER_KEYS)?;
    let page = params.page(100)?;
    let hosts: Vec<HostJson> = state
        .reads
        .hosts
        .list_hosts(&filter, &order, page)
        .await?
        .iter()
        .map(|h| HostJson::new(state, h, now))
        .collect();
    let mut body = json!({ "hosts": hosts });
    if let Some((key, value)) = extra {
        body[key] = value;
    }
    Ok(ok(&body))
}

/// The OS filter of `GET /hosts`: `os_version_id`, or `os_name` with `os_version`.
async fn os_filter(
    state: &AppState,
    viewer: &Viewer,
    params: &ListParams,
) -> Result<Option<(Option<String>, String)>, FleetError> {
    if let Some(id) = params.os_version_id {
        let os = super::software::os_version_by_id(state, viewer, id).await?;
        return Ok(Some((Some(os.platform), os.name)));
    }
    match (&params.os_name, &params.os_version) {
        (None, None) => Ok(None),
        (Some(name), Some(version)) => Ok(Some((None, format!("{name} {version}")))),
        _ => Err(FleetError::BadRequest(
            "os_name and os_version go together".into(),
        )),
    }
}

/// `GET /hosts`.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ListParams>,
) -> Result<Response, FleetError> {
    list_response(&state, &viewer, &params, None).await
}

/// `GET /labels/{id}/hosts`: the label's members, with the filters and paging of `/hosts`.
pub async fn of_label(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<String>,
    FleetQuery(params): FleetQuery<ListParams>,
) -> Result<Response, FleetError> {
    let label = state
        .services
        .labels
        .visible(&viewer, labels::parse_id(&id)?)
        .await?;
    list_response(&state, &viewer, &params, Some(label.id)).await
}

/// `GET /hosts/count`: the number of hosts `GET /hosts` would list over all pages.
pub async fn count(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<ListParams>,
) -> Result<Response, FleetError> {
    let now = flotilla_engine::unix_now();
    let mut filter = host_filter(&state, &viewer, &params, None, now)?;
    filter.software = super::software::host_list_extras(&state, &params).await?.0;
    filter.os = os_filter(&state, &viewer, &params).await?;
    let count = state.reads.hosts.count_hosts(&filter).await?;
    Ok(ok(&json!({ "count": count })))
}

/// A host as its detail shows it, with its labels and end-user email: what `GET /hosts/{id}`
/// and the My Device page (`device/`) both start from.
pub async fn host_with_labels(state: &AppState, host: &Host) -> Result<Value, FleetError> {
    let labels: Vec<LabelJson> = state
        .reads
        .labels
        .host_labels(host.id)
        .await?
        .iter()
        .map(LabelJson::from)
        .collect();
    let now = flotilla_engine::unix_now();
    let mut body = serde_json::to_value(HostJson::new(state, host, now))
        .map_err(|e| FleetError::Internal(e.to_string()))?;
    body["labels"] = json!(labels);
    body["device_mapping"] = device_mapping_json(host.custom_email.as_deref());
    Ok(body)
}

/// Fleet's `device_mapping`: the end-user email orbit set, or `null`.
pub fn device_mapping_json(email: Option<&str>) -> Value {
    match email {
        Some(email) => json!([{"email": email, "source": "custom"}]),
        None => Value::Null,
    }
}

async fn detail_response(
    state: &AppState,
    viewer: &Viewer,
    host: Host,
) -> Result<Response, FleetError> {
    Viewer::require(viewer.can_read(host.team))?;
    let mut body = host_with_labels(state, &host).await?;
    body["packs"] = json!([]);
    let policies = state.reads.policies.host_policies(host.id).await?;
    let failing = policies
        .iter()
        .filter(|p| p.response == Some(false))
        .count();
    let policies: Vec<super::policies::HostPolicyJson> = policies
        .iter()
        .map(super::policies::HostPolicyJson::from)
        .collect();
    body["policies"] = json!(policies);
    body["software"] = super::software::host_software_json(state, host.id).await?;
    body["issues"] = json!({
        "failing_policies_count": failing,
        "total_issues_count": failing,
    });
    Ok(ok(&json!({ "host": body })))
}

/// `GET /hosts/{id}`: the host with its labels and its policies (with its answers).
pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    let host = state
        .reads
        .hosts
        .host(HostId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("host {id} not found")))?;
    detail_response(&state, &viewer, host).await
}

/// `GET /hosts/identifier/{identifier}`: by hostname, uuid, hardware serial or osquery host id.
pub async fn by_identifier(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(identifier): FleetPath<String>,
) -> Result<Response, FleetError> {
    let host = state
        .reads
        .hosts
        .host_by_identifier(&identifier)
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("host {identifier} not found")))?;
    detail_response(&state, &viewer, host).await
}

/// `POST /hosts/{id}/refetch`: the host runs its detail queries (and labels and policies)
/// again at its next check-in.
pub async fn refetch(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state.services.hosts.refetch(&viewer, HostId(id)).await?;
    Ok(ok(&json!({})))
}

/// `DELETE /hosts/{id}`: forgets the host; its node key stops working at once, so the agent
/// is told `node_invalid` and enrolls again as a new host.
pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
) -> Result<Response, FleetError> {
    state.services.hosts.delete(&viewer, HostId(id)).await?;
    Ok(ok(&json!({})))
}

#[derive(Deserialize)]
pub struct TransferBody {
    /// `null`: no team.
    team_id: Option<u64>,
    #[serde(default)]
    hosts: Vec<u64>,
}

/// `POST /hosts/transfer`: moves hosts to a team (or to none), in the database and in the
/// registry. Needs write access to the target team and to every host's current team.
pub async fn transfer(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetJson(body): FleetJson<TransferBody>,
) -> Result<Response, FleetError> {
    let team = body.team_id.filter(|&t| t != 0).map(TeamId);
    let ids: Vec<HostId> = body.hosts.iter().copied().map(HostId).collect();
    state.services.hosts.transfer(&viewer, team, ids).await?;
    Ok(ok(&json!({})))
}

#[derive(Deserialize)]
pub struct SummaryParams {
    team_id: Option<u64>,
}

#[derive(Serialize)]
struct PlatformCount {
    platform: String,
    hosts_count: u64,
}

#[derive(Serialize)]
struct BuiltinLabel {
    id: u64,
    name: String,
    description: String,
    label_type: &'static str,
}

/// `GET /host_summary` (`team_id`): totals, online/offline/new/missing counts, platforms and
/// the builtin labels.
pub async fn summary(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<SummaryParams>,
) -> Result<Response, FleetError> {
    let now = flotilla_engine::unix_now();
    let scope = viewer.host_scope();
    let team = team_filter(&viewer, params.team_id)?;
    let totals = state
        .reads
        .hosts
        .host_totals(&scope, team, now - NEW_FOR, now - MISSING_AFTER)
        .await?;
    let visible = |host_team: Option<TeamId>| {
        let in_scope = match &scope {
            HostScope::All => true,
            HostScope::Teams(teams) => host_team.is_some_and(|t| teams.contains(&t)),
        };
        let in_team = match team {
            None => true,
            Some(TeamFilter::NoTeam) => host_team.is_none(),
            Some(TeamFilter::Team(t)) => host_team == Some(t),
        };
        in_scope && in_team
    };
    let online = state
        .hosts
        .ids()
        .into_iter()
        .filter_map(|id| state.hosts.presence(id, now))
        .filter(|presence| visible(presence.team) && presence.online)
        .count() as u64;
    let builtin: Vec<BuiltinLabel> = state
        .reads
        .labels
        .labels(&scope)
        .await?
        .into_iter()
        .filter(|l: &Label| l.label_type == LabelType::Builtin)
        .map(|l| BuiltinLabel {
            id: l.id.0,
            name: l.name,
            description: l.description,
            label_type: "builtin",
        })
        .collect();
    let platforms: Vec<PlatformCount> = totals
        .platforms
        .iter()
        .filter(|(platform, _)| !platform.is_empty())
        .map(|(platform, n)| PlatformCount {
            platform: platform.clone(),
            hosts_count: *n,
        })
        .collect();
    let online = online.min(totals.total);
    Ok(ok(&json!({
        "team_id": params.team_id,
        "totals_hosts_count": totals.total,
        "online_count": online,
        "offline_count": totals.total - online,
        "mia_count": totals.not_seen_since,
        "missing_30_days_count": totals.not_seen_since,
        "new_count": totals.new,
        "all_linux_count": linux_count(&totals.platforms),
        "platforms": platforms,
        "builtin_labels": builtin,
    })))
}

/// Hosts on Linux distributions (Fleet's `all_linux_count`).
fn linux_count(platforms: &[(String, u64)]) -> u64 {
    const LINUX: &[&str] = &[
        "linux", "ubuntu", "debian", "rhel", "centos", "fedora", "amzn", "arch", "manjaro",
        "gentoo", "opensuse", "sles", "pop", "nixos", "kali",
    ];
    let by_platform: HashMap<&str, u64> = platforms
        .iter()
        .map(|(platform, n)| (platform.as_str(), *n))
        .collect();
    LINUX.iter().filter_map(|p| by_platform.get(p)).sum()
}
