//! Software, vulnerabilities and OS versions: what the vulnerability dashboard and the console
//! read. `GET /software/versions[/{id}]`, `GET /software` (the older list the dashboard still
//! calls), `GET /software/titles[/{id}]`, `GET /hosts/{id}/software`, `GET /os_versions[/{id}]`,
//! `GET /vulnerabilities[/{cve}]`.
//!
//! Host counts come from the counts job, never from a count at read time; every list says
//! when they were made (`counts_updated_at`, `null` before the first count). Every
//! vulnerability carries all of Fleet's fields (`cvss_score`, `epss_probability`,
//! `cisa_known_exploit`, `cve_published`, `cve_description`), `null` where the feed says
//! nothing: Flotilla has no tier wall.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_engine::{HostId, TeamId};
use flotilla_storage::admin::{
    CveMeta, OsVersion, Page, SOFTWARE_ORDER_KEYS, SoftwareListFilter, SoftwareTitle,
    SoftwareVersion, SoftwareVulnerability, VULNERABILITY_ORDER_KEYS, Vulnerability,
    VulnerabilityFilter,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::{FleetError, FleetPath, FleetQuery, ok};
use super::{ListParams, rfc3339};
use crate::service::Viewer;
use crate::service::software::split_os_version;
use crate::state::{AppState, SharedState};

/// The software lists' parameters (Fleet's names).
#[derive(Debug, Default, Deserialize)]
pub struct SoftwareParams {
    page: Option<u64>,
    per_page: Option<u64>,
    order_key: Option<String>,
    order_direction: Option<String>,
    query: Option<String>,
    team_id: Option<u64>,
    #[serde(default)]
    vulnerable: bool,
    min_cvss_score: Option<f64>,
    max_cvss_score: Option<f64>,
    #[serde(default)]
    exploit: bool,
}

impl SoftwareParams {
    /// The store's filter for these parameters, counts in `team`'s scope.
    fn filter(&self, team: Option<TeamId>) -> SoftwareListFilter {
        SoftwareListFilter {
            team,
            search: self.query.clone(),
            vulnerable: self.vulnerable,
            min_cvss: self.min_cvss_score,
            max_cvss: self.max_cvss_score,
            exploit: self.exploit,
        }
    }

    fn list(&self) -> ListParams {
        ListParams {
            page: self.page,
            per_page: self.per_page,
            order_key: self.order_key.clone(),
            order_direction: self.order_direction.clone(),
            ..ListParams::default()
        }
    }
}

/// The team whose counts a list shows, if the viewer may read it. Without `team_id` the
/// list covers every host, which only a global role may read.
fn team_scope(viewer: &Viewer, team_id: Option<u64>) -> Result<Option<TeamId>, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    match team_id {
        None | Some(0) => {
            Viewer::require(viewer.can_read(None))?;
            Ok(None)
        }
        Some(team) => {
            Viewer::require(viewer.can_read(Some(TeamId(team))))?;
            Ok(Some(TeamId(team)))
        }
    }
}

/// Where a CVE (or an advisory without one) is described.
fn details_link(id: &str) -> String {
    if id.starts_with("CVE-") {
        format!("https://nvd.nist.gov/vuln/detail/{id}")
    } else {
        format!("https://osv.dev/vulnerability/{id}")
    }
}

fn meta_fields(map: &mut Map<String, Value>, meta: &CveMeta) {
    map.insert("cvss_score".into(), json!(meta.cvss_score));
    map.insert("epss_probability".into(), json!(meta.epss_probability));
    map.insert("cisa_known_exploit".into(), json!(meta.cisa_known_exploit));
    map.insert("cve_published".into(), json!(meta.published.map(rfc3339)));
    map.insert("cve_description".into(), json!(meta.description));
}

fn vulnerability_of_software(v: &SoftwareVulnerability) -> Value {
    let mut map = Map::new();
    map.insert("cve".into(), json!(v.cve));
    map.insert("details_link".into(), json!(details_link(&v.cve)));
    meta_fields(&mut map, &v.meta);
    map.insert("resolved_in_version".into(), json!(v.resolved_in_version));
    Value::Object(map)
}

/// A software version as Fleet's lists show it.
pub fn software_json(s: &SoftwareVersion) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "version": s.version,
        "bundle_identifier": s.bundle_identifier,
        "source": s.source,
        "browser": s.browser,
        "extension_id": s.extension_id,
        "release": s.release,
        "vendor": s.vendor,
        "arch": s.arch,
        "generated_cpe": "",
        "title_id": s.title_id,
        "hosts_count": s.hosts_count,
        // Fleet sends `null`, not `[]`, for software with no known vulnerability.
        "vulnerabilities": if s.vulnerabilities.is_empty() {
            Value::Null
        } else {
            Value::Array(s.vulnerabilities.iter().map(vulnerability_of_software).collect())
        },
    })
}

fn counts_updated_at(at: i64) -> Value {
    if at > 0 {
        json!(rfc3339(at))
    } else {
        Value::Null
    }
}

fn meta(page: Page, shown: usize, count: u64) -> Value {
    json!({
        "has_next_results": page.offset + (shown as u64) < count,
        "has_previous_results": page.offset > 0,
    })
}

async fn list_versions(
    state: &AppState,
    viewer: &Viewer,
    params: &SoftwareParams,
) -> Result<(Value, Page, usize, u64), FleetError> {
    let team = team_scope(viewer, params.team_id)?;
    let list = params.list();
    let order = list.order("hosts_count", true, SOFTWARE_ORDER_KEYS)?;
    let page = list.page(20)?;
    let filter = params.filter(team);
    let (versions, count) = state
        .reads
        .software
        .software_versions(&filter, &order, page)
        .await?;
    let shown = versions.len();
    let json = Value::Array(versions.iter().map(software_json).collect());
    Ok((json, page, shown, count))
}

/// `GET /software/versions`: software versions on hosts in the scope, with their
/// vulnerabilities and host counts.
pub async fn versions(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<SoftwareParams>,
) -> Result<Response, FleetError> {
    let (software, page, shown, count) = list_versions(&state, &viewer, &params).await?;
    let at = state
        .reads
        .software
        .software_state()
        .await?
        .counts_updated_at;
    let mut body = json!({
        "counts_updated_at": counts_updated_at(at),
        "count": count,
        "meta": meta(page, shown, count),
    });
    // Past the last page the list is left out, as Fleet does (clients loop until it is).
    if shown > 0 {
        body["software"] = software;
    }
    Ok(ok(&body))
}

/// `GET /software`: Fleet's older list, still read by the vulnerability dashboard; the same
/// versions, without the total count.
pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<SoftwareParams>,
) -> Result<Response, FleetError> {
    let (software, _, shown, _) = list_versions(&state, &viewer, &params).await?;
    let at = state
        .reads
        .software
        .software_state()
        .await?
        .counts_updated_at;
    let mut body = json!({ "counts_updated_at": counts_updated_at(at) });
    if shown > 0 {
        body["software"] = software;
    }
    Ok(ok(&body))
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamParam {
    team_id: Option<u64>,
}

/// `GET /software/versions/{id}`.
pub async fn version(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<TeamParam>,
) -> Result<Response, FleetError> {
    let team = team_scope(&viewer, params.team_id)?;
    let found = state
        .reads
        .software
        .software_version(id, team)
        .await?
        .filter(|v| team.is_none() || v.hosts_count > 0)
        .ok_or_else(|| FleetError::NotFound(format!("software version {id} not found")))?;
    Ok(ok(&json!({ "software": software_json(&found) })))
}

fn title_json(t: &SoftwareTitle) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "source": t.source,
        "browser": t.browser,
        "bundle_identifier": t.bundle_identifier,
        "hosts_count": t.hosts_count,
        "versions_count": t.versions.len(),
        "software_package": null,
        "app_store_app": null,
        "versions": t.versions.iter().map(|v| json!({
            "id": v.id,
            "version": v.version,
            "hosts_count": v.hosts_count,
            "vulnerabilities": if v.cves.is_empty() { Value::Null } else { json!(v.cves) },
        })).collect::<Vec<_>>(),
    })
}

/// `GET /software/titles`: products with their installed versions.
pub async fn titles(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<SoftwareParams>,
) -> Result<Response, FleetError> {
    let team = team_scope(&viewer, params.team_id)?;
    let list = params.list();
    let order = list.order("hosts_count", true, &["name", "hosts_count", "id"])?;
    let page = list.page(20)?;
    let filter = params.filter(team);
    let (titles, count) = state
        .reads
        .software
        .software_titles(&filter, &order, page)
        .await?;
    let at = state
        .reads
        .software
        .software_state()
        .await?
        .counts_updated_at;
    let mut body = json!({
        "counts_updated_at": counts_updated_at(at),
        "count": count,
        "meta": meta(page, titles.len(), count),
    });
    if !titles.is_empty() {
        body["software_titles"] = Value::Array(titles.iter().map(title_json).collect());
    }
    Ok(ok(&body))
}

/// `GET /software/titles/{id}`.
pub async fn title(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<TeamParam>,
) -> Result<Response, FleetError> {
    let team = team_scope(&viewer, params.team_id)?;
    let found = state
        .reads
        .software
        .software_title(id, team)
        .await?
        .filter(|t| team.is_none() || t.hosts_count > 0)
        .ok_or_else(|| FleetError::NotFound(format!("software title {id} not found")))?;
    Ok(ok(&json!({ "software_title": title_json(&found) })))
}

/// A host's software as `GET /hosts/{id}` lists it: each version with its vulnerabilities,
/// paths and last open time.
pub async fn host_software_json(state: &AppState, host: HostId) -> Result<Value, FleetError> {
    let installed = state.reads.software.host_software(host).await?;
    Ok(Value::Array(
        installed
            .iter()
            .map(|item| {
                let mut entry = software_json(&item.software);
                entry["installed_paths"] = json!(item.installed_paths);
                entry["last_opened_at"] = json!(item.last_opened_at.map(rfc3339));
                entry
            })
            .collect(),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct HostSoftwareParams {
    page: Option<u64>,
    per_page: Option<u64>,
    query: Option<String>,
    #[serde(default)]
    vulnerable: bool,
}

/// `GET /hosts/{id}/software`: the host's software by title, each with the versions
/// installed, as Fleet's host software tab reads it.
pub async fn of_host(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<HostSoftwareParams>,
) -> Result<Response, FleetError> {
    let host = state
        .reads
        .hosts
        .host(HostId(id))
        .await?
        .ok_or_else(|| FleetError::NotFound(format!("host {id} not found")))?;
    Viewer::require(viewer.can_read(host.team))?;
    Ok(ok(&host_software_page(&state, host.id, &params).await?))
}

/// A page of a host's software by title, each with the versions installed: the host
/// software tab's list and Fleet Desktop's (`GET /device/{token}/software`).
pub async fn host_software_page(
    state: &AppState,
    host: HostId,
    params: &HostSoftwareParams,
) -> Result<Value, FleetError> {
    let installed = state.reads.software.host_software(host).await?;
    let needle = params.query.as_deref().map(str::to_lowercase);
    let mut by_title: Vec<(u64, Value, Vec<Value>)> = Vec::new();
    for item in installed.iter().filter(|i| {
        (!params.vulnerable || !i.software.vulnerabilities.is_empty())
            && needle.as_deref().is_none_or(|n| {
                i.software.name.to_lowercase().contains(n)
                    || i.software.version.to_lowercase().contains(n)
            })
    }) {
        let s = &item.software;
        let version = json!({
            "version": s.version,
            "bundle_identifier": s.bundle_identifier,
            "last_opened_at": item.last_opened_at.map(rfc3339),
            "vulnerabilities": s.vulnerabilities.iter().map(|v| v.cve.clone()).collect::<Vec<_>>(),
            "installed_paths": item.installed_paths,
        });
        match by_title
            .iter_mut()
            .find(|(title, _, _)| *title == s.title_id)
        {
            Some((_, _, versions)) => versions.push(version),
            None => by_title.push((
                s.title_id,
                json!({
                    "id": s.title_id,
                    "name": s.name,
                    "source": s.source,
                    "status": null,
                    "software_package": null,
                    "app_store_app": null,
                }),
                vec![version],
            )),
        }
    }
    let list = ListParams {
        page: params.page,
        per_page: params.per_page,
        ..ListParams::default()
    };
    let page = list.page(20)?;
    let count = by_title.len() as u64;
    let shown: Vec<Value> = by_title
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .map(|(_, mut title, versions)| {
            title["installed_versions"] = json!(versions);
            title
        })
        .collect();
    Ok(json!({
        "count": count,
        "meta": meta(page, shown.len(), count),
        "software": shown,
    }))
}

fn os_json(os: &OsVersion) -> Value {
    let (name_only, version) = split_os_version(&os.name);
    json!({
        "os_version_id": os.id,
        "hosts_count": os.hosts_count,
        "name": os.name,
        "name_only": name_only,
        "version": version,
        "platform": os.platform,
        "generated_cpes": [],
        // OS-level vulnerabilities (Windows and macOS builds) are not matched.
        "vulnerabilities": [],
    })
}

/// The OS versions in the scope, as the viewer may see hosts.
async fn os_versions_in(
    state: &AppState,
    viewer: &Viewer,
    team_id: Option<u64>,
) -> Result<Vec<OsVersion>, FleetError> {
    Viewer::require(viewer.has_any_role())?;
    let team = match team_id {
        None | Some(0) => None,
        Some(team) => {
            Viewer::require(viewer.can_read(Some(TeamId(team))))?;
            Some(TeamId(team))
        }
    };
    let scope = viewer.host_scope();
    Ok(state.reads.software.os_versions(team, &scope).await?)
}

#[derive(Debug, Default, Deserialize)]
pub struct OsParams {
    team_id: Option<u64>,
    platform: Option<String>,
    os_name: Option<String>,
    os_version: Option<String>,
}

/// `GET /os_versions`: every OS version hosts run, with its host count.
pub async fn os_versions(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<OsParams>,
) -> Result<Response, FleetError> {
    let all = os_versions_in(&state, &viewer, params.team_id).await?;
    let shown: Vec<Value> = all
        .iter()
        .filter(|os| params.platform.as_deref().is_none_or(|p| os.platform == p))
        .map(os_json)
        .filter(|os| {
            params
                .os_name
                .as_deref()
                .is_none_or(|n| os["name_only"] == n)
                && params
                    .os_version
                    .as_deref()
                    .is_none_or(|v| os["version"] == v)
        })
        .collect();
    let count = shown.len();
    Ok(ok(&json!({
        "counts_updated_at": rfc3339(flotilla_engine::unix_now()),
        "count": count,
        "os_versions": shown,
        "meta": {"has_next_results": false, "has_previous_results": false},
    })))
}

/// `GET /os_versions/{id}`.
pub async fn os_version(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(id): FleetPath<u64>,
    FleetQuery(params): FleetQuery<OsParams>,
) -> Result<Response, FleetError> {
    let all = os_versions_in(&state, &viewer, params.team_id).await?;
    let found = all
        .iter()
        .find(|os| os.id == id)
        .ok_or_else(|| FleetError::NotFound(format!("OS version {id} not found")))?;
    Ok(ok(&json!({
        "counts_updated_at": rfc3339(flotilla_engine::unix_now()),
        "os_version": os_json(found),
    })))
}

/// The OS version with this id, for `GET /hosts?os_version_id=`.
pub async fn os_version_by_id(
    state: &AppState,
    viewer: &Viewer,
    id: u64,
) -> Result<OsVersion, FleetError> {
    os_versions_in(state, viewer, None)
        .await?
        .into_iter()
        .find(|os| os.id == id)
        .ok_or_else(|| FleetError::NotFound(format!("OS version {id} not found")))
}

fn vulnerability_json(v: &Vulnerability) -> Value {
    let mut map = Map::new();
    map.insert("cve".into(), json!(v.cve));
    map.insert("created_at".into(), json!(rfc3339(v.created_at)));
    map.insert("hosts_count".into(), json!(v.hosts_count));
    map.insert("details_link".into(), json!(details_link(&v.cve)));
    meta_fields(&mut map, &v.meta);
    Value::Object(map)
}

#[derive(Debug, Default, Deserialize)]
pub struct VulnerabilityParams {
    page: Option<u64>,
    per_page: Option<u64>,
    order_key: Option<String>,
    order_direction: Option<String>,
    query: Option<String>,
    team_id: Option<u64>,
    #[serde(default)]
    exploit: bool,
}

/// `GET /vulnerabilities`: the CVEs installed software is affected by, with host counts.
pub async fn vulnerabilities(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetQuery(params): FleetQuery<VulnerabilityParams>,
) -> Result<Response, FleetError> {
    let team = team_scope(&viewer, params.team_id)?;
    let list = ListParams {
        page: params.page,
        per_page: params.per_page,
        order_key: params.order_key.clone(),
        order_direction: params.order_direction.clone(),
        ..ListParams::default()
    };
    let order = list.order("hosts_count", true, VULNERABILITY_ORDER_KEYS)?;
    let page = list.page(20)?;
    let filter = VulnerabilityFilter {
        team,
        search: params.query.clone(),
        exploit: params.exploit,
    };
    let (found, count) = state
        .reads
        .software
        .vulnerabilities(&filter, &order, page)
        .await?;
    let at = state
        .reads
        .software
        .software_state()
        .await?
        .counts_updated_at;
    Ok(ok(&json!({
        "vulnerabilities": found.iter().map(|v| {
            let mut entry = vulnerability_json(v);
            entry["hosts_count_updated_at"] = counts_updated_at(at);
            entry
        }).collect::<Vec<_>>(),
        "count": count,
        "counts_updated_at": counts_updated_at(at),
        "meta": meta(page, found.len(), count),
    })))
}

/// A CVE id as Fleet accepts it: `CVE-YYYY-NNNN…`, any case.
fn parse_cve(raw: &str) -> Result<String, FleetError> {
    let cve = raw.trim().to_ascii_uppercase();
    let mut parts = cve.splitn(3, '-');
    let valid = parts.next() == Some("CVE")
        && parts
            .next()
            .is_some_and(|y| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|n| n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        Ok(cve)
    } else {
        Err(FleetError::BadRequest(format!(
            "invalid CVE id `{raw}`; expected CVE-YYYY-NNNN"
        )))
    }
}

/// `GET /vulnerabilities/{cve}`: the CVE with the software it affects. A CVE the feed names
/// but no installed software is affected by answers 204, as Fleet's does; one the feed does
/// not name, 404.
pub async fn vulnerability(
    State(state): State<SharedState>,
    viewer: Viewer,
    FleetPath(raw): FleetPath<String>,
    FleetQuery(params): FleetQuery<TeamParam>,
) -> Result<Response, FleetError> {
    let team = team_scope(&viewer, params.team_id)?;
    let cve = parse_cve(&raw)?;
    let found = state.reads.software.vulnerability(&cve, team).await?;
    let Some((v, software)) = found.filter(|(v, _)| team.is_none() || v.hosts_count > 0) else {
        let known = state
            .software
            .feed()
            .is_some_and(|feed| feed.cve(&cve).is_some());
        if known {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        return Err(FleetError::NotFound(format!(
            "vulnerability {cve} not found"
        )));
    };
    let mut body = vulnerability_json(&v);
    body["os_versions"] = json!([]);
    body["software"] = Value::Array(
        software
            .iter()
            .map(|s| {
                let resolved = s
                    .vulnerabilities
                    .iter()
                    .find(|x| x.cve == cve)
                    .and_then(|x| x.resolved_in_version.clone());
                json!({
                    "id": s.id,
                    "name": s.name,
                    "version": s.version,
                    "source": s.source,
                    "browser": s.browser,
                    "generated_cpe": "",
                    "hosts_count": s.hosts_count,
                    "resolved_in_version": resolved,
                })
            })
            .collect(),
    );
    Ok(ok(&json!({ "vulnerability": body })))
}

/// Hosts filters of `GET /hosts` that name software or an OS version, with the object Fleet
/// adds to the answer (`software`, `software_title`, `os_version`).
pub async fn host_list_extras(
    state: &AppState,
    params: &ListParams,
) -> Result<
    (
        Option<flotilla_storage::admin::SoftwareFilter>,
        Option<(String, Value)>,
    ),
    FleetError,
> {
    use flotilla_storage::admin::SoftwareFilter;
    let team = params.team_id.filter(|&t| t > 0).map(TeamId);
    if let Some(id) = params.software_version_id.or(params.software_id) {
        let found = state
            .reads
            .software
            .software_version(id, team)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("software {id} not found")))?;
        return Ok((
            Some(SoftwareFilter::Version(id)),
            Some(("software".into(), software_json(&found))),
        ));
    }
    if let Some(id) = params.software_title_id {
        let found = state
            .reads
            .software
            .software_title(id, team)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("software title {id} not found")))?;
        return Ok((
            Some(SoftwareFilter::Title(id)),
            Some(("software_title".into(), title_json(&found))),
        ));
    }
    Ok((None, None))
}
