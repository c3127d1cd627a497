//! The Fleet-compatible admin REST API, served under `/api/v1/fleet`, `/api/2022-04/fleet` and
//! `/api/latest/fleet` (the same handlers on all three), plus first-time setup at
//! `/api/v1/setup` and `/api/setup`.
//!
//! One file per area: [`auth`] (roles, sessions, setup, login), [`users`], [`hosts`],
//! [`labels`], [`teams`], [`queries`], [`policies`], [`activities`]; [`error`] holds Fleet's error shape and
//! the extractors that use it. Handlers extract (a [`Viewer`](crate::service::Viewer) first),
//! make one call — into a [`crate::service`] for anything that changes, or a read of the store
//! or the engine's registry — and map the answer to Fleet's JSON. Roles are checked by the
//! services and, for reads, by the handler before it reads.

pub mod activities;
pub mod auth;
pub mod carves;
pub mod config;
pub mod error;
pub mod hosts;
pub mod labels;
pub mod policies;
pub mod queries;
pub mod software;
pub mod specs;
pub mod statistics;
pub mod teams;
pub mod updates;
pub mod users;

use axum::Router;
use axum::routing::{delete, get, post};
use flotilla_storage::admin::{Order, Page};
use serde::Deserialize;

use crate::state::SharedState;
use error::FleetError;

/// Every admin route under each of Fleet's prefixes; `live` (the live-query routes, which
/// share the prefixes) is merged in.
pub fn router(live: Router<SharedState>) -> Router<SharedState> {
    let api = Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/change_password", post(users::change_password))
        .route("/users", get(users::list))
        .route("/users/admin", post(users::create))
        .route("/users/{id}/sessions", delete(users::delete_sessions))
        .route(
            "/users/{id}",
            get(users::get).patch(users::modify).delete(users::delete),
        )
        .route("/hosts", get(hosts::list))
        .route("/hosts/count", get(hosts::count))
        .route("/hosts/transfer", post(hosts::transfer))
        .route("/hosts/identifier/{identifier}", get(hosts::by_identifier))
        .route("/hosts/{id}", get(hosts::get).delete(hosts::delete))
        .route("/hosts/{id}/refetch", post(hosts::refetch))
        .route("/hosts/{id}/software", get(software::of_host))
        .route("/software", get(software::list))
        .route("/software/versions", get(software::versions))
        .route("/software/versions/{id}", get(software::version))
        .route("/software/titles", get(software::titles))
        .route("/software/titles/{id}", get(software::title))
        .route("/os_versions", get(software::os_versions))
        .route("/os_versions/{id}", get(software::os_version))
        .route("/vulnerabilities", get(software::vulnerabilities))
        .route("/vulnerabilities/{cve}", get(software::vulnerability))
        .route("/updates", get(updates::list))
        .route("/statistics/preview", get(statistics::preview))
        .route("/carves", get(carves::list))
        .route("/carves/{id}", get(carves::get))
        .route("/carves/{id}/block/{block_id}", get(carves::block))
        .route("/host_summary", get(hosts::summary))
        .route("/labels", get(labels::list).post(labels::create))
        .route("/labels/summary", get(labels::summary))
        // GET and PATCH take an id, DELETE a name: one route, as the path shapes are equal.
        .route(
            "/labels/{id_or_name}",
            get(labels::get)
                .patch(labels::modify)
                .delete(labels::delete_by_name),
        )
        .route("/labels/id/{id}", delete(labels::delete_by_id))
        .route("/labels/{id_or_name}/hosts", get(hosts::of_label))
        .route("/teams", get(teams::list).post(teams::create))
        .route(
            "/teams/{id}",
            get(teams::get).patch(teams::modify).delete(teams::delete),
        )
        .route(
            "/teams/{id}/secrets",
            get(teams::secrets).patch(teams::replace_secrets),
        )
        .route(
            "/spec/enroll_secret",
            get(teams::global_secrets).post(teams::replace_global_secrets),
        )
        .route("/queries", get(queries::list).post(queries::create))
        .route("/queries/delete", post(queries::delete_many))
        .route("/queries/id/{id}", delete(queries::delete_by_id))
        .route(
            "/queries/{id_or_name}",
            get(queries::get)
                .patch(queries::modify)
                .delete(queries::delete_by_name),
        )
        .route(
            "/global/policies",
            get(policies::list_global).post(policies::create_global),
        )
        .route("/global/policies/delete", post(policies::delete_global))
        .route("/global/policies/count", get(policies::count_global))
        .route("/policies/count", get(policies::count_global))
        .route(
            "/global/policies/{policy_id}",
            get(policies::get_global).patch(policies::modify_global),
        )
        .route(
            "/teams/{id}/policies",
            get(policies::list_team).post(policies::create_team),
        )
        .route("/teams/{id}/policies/delete", post(policies::delete_team))
        .route("/teams/{id}/policies/count", get(policies::count_team))
        .route(
            "/teams/{id}/policies/{policy_id}",
            get(policies::get_team).patch(policies::modify_team),
        )
        .route("/spec/policies", post(specs::apply_policies))
        .route("/activities", get(activities::list))
        .route("/config", get(config::get).patch(config::modify))
        .route(
            "/teams/{id}/agent_options",
            post(config::team_agent_options),
        )
        .route("/queries/{id}/report", get(config::query_report))
        .route(
            "/hosts/{id}/queries/{query_id}",
            get(config::host_query_report),
        )
        .route(
            "/spec/queries",
            get(specs::get_queries).post(specs::apply_queries),
        )
        .route("/spec/queries/{name}", get(specs::get_query))
        .route(
            "/spec/labels",
            get(specs::get_labels).post(specs::apply_labels),
        )
        .route("/spec/labels/{name}", get(specs::get_label))
        .route(
            "/spec/teams",
            get(specs::get_teams).post(specs::apply_teams),
        )
        .merge(live)
        .fallback(not_found);
    Router::new()
        .route("/api/v1/setup", post(auth::setup))
        .route("/api/setup", post(auth::setup))
        .nest("/api/v1/fleet", api.clone())
        .nest("/api/2022-04/fleet", api.clone())
        .nest("/api/latest/fleet", api)
}

async fn not_found() -> FleetError {
    FleetError::NotFound("no such endpoint".into())
}

/// Unix seconds as RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The most rows one page may ask for: a million-row `per_page` would build every host's JSON
/// in one answer.
pub const MAX_PER_PAGE: u64 = 10_000;

/// The query parameters Fleet's list endpoints share.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// 0-based.
    pub page: Option<u64>,
    pub per_page: Option<u64>,
    pub order_key: Option<String>,
    /// `asc` or `desc`.
    pub order_direction: Option<String>,
    /// Free-text search.
    pub query: Option<String>,
    pub status: Option<String>,
    pub team_id: Option<u64>,
    pub label_id: Option<u64>,
    /// With `policy_response`: hosts by their answer to this policy.
    pub policy_id: Option<u64>,
    /// `passing` or `failing`.
    pub policy_response: Option<String>,
    /// Hosts with this software version (`software_id` is Fleet's older name for it).
    pub software_id: Option<u64>,
    pub software_version_id: Option<u64>,
    /// Hosts with any version of this software title.
    pub software_title_id: Option<u64>,
    /// Hosts on this OS version: by id (`GET /os_versions`), or by name and version.
    pub os_version_id: Option<u64>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
}

impl ListParams {
    /// The page asked for; `per_page` 0 or absent means `default_per_page`, and more than
    /// [`MAX_PER_PAGE`] is refused.
    pub fn page(&self, default_per_page: u64) -> Result<Page, FleetError> {
        let limit = self.per_page.filter(|&n| n > 0).unwrap_or(default_per_page);
        if limit > MAX_PER_PAGE {
            return Err(FleetError::BadRequest(format!(
                "per_page must be at most {MAX_PER_PAGE}"
            )));
        }
        let offset = self
            .page
            .unwrap_or(0)
            .checked_mul(limit)
            .filter(|&offset| offset <= i64::MAX as u64)
            .ok_or_else(|| FleetError::BadRequest("page is too large".into()))?;
        Ok(Page { limit, offset })
    }

    /// The order asked for, checked against `keys`.
    pub fn order(
        &self,
        default_key: &str,
        default_descending: bool,
        keys: &[&str],
    ) -> Result<Order, FleetError> {
        let key = self.order_key.as_deref().unwrap_or(default_key);
        if !keys.contains(&key) {
            return Err(FleetError::BadRequest(format!(
                "invalid order_key `{key}`; use one of: {}",
                keys.join(", ")
            )));
        }
        let descending = match self.order_direction.as_deref() {
            None => default_descending,
            Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(FleetError::BadRequest(format!(
                    "invalid order_direction `{other}`; use asc or desc"
                )));
            }
        };
        Ok(Order {
            key: key.to_owned(),
            descending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_math() {
        let params = |page, per_page| ListParams {
            page,
            per_page,
            ..ListParams::default()
        };
        assert_eq!(
            params(None, None).page(100).unwrap(),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(
            params(Some(3), Some(25)).page(100).unwrap(),
            Page {
                limit: 25,
                offset: 75
            }
        );
        assert_eq!(params(Some(2), Some(0)).page(10).unwrap().offset, 20);
        assert!(params(Some(u64::MAX), Some(2)).page(100).is_err());
        assert!(params(Some(u64::MAX / 2), Some(2)).page(100).is_err());
        assert_eq!(params(None, Some(10_000)).page(100).unwrap().limit, 10_000);
        assert!(params(None, Some(10_001)).page(100).is_err());
        assert!(params(None, Some(1_000_000)).page(100).is_err());
    }

    #[test]
    fn order_keys_and_directions_are_checked() {
        let mut params = ListParams::default();
        let order = params
            .order("created_at", true, &["created_at", "id"])
            .unwrap();
        assert_eq!((order.key.as_str(), order.descending), ("created_at", true));
        params.order_key = Some("id".into());
        params.order_direction = Some("asc".into());
        let order = params
            .order("created_at", true, &["created_at", "id"])
            .unwrap();
        assert_eq!((order.key.as_str(), order.descending), ("id", false));
        params.order_direction = Some("sideways".into());
        assert!(params.order("id", false, &["id"]).is_err());
        params.order_direction = None;
        params.order_key = Some("password_hash".into());
        assert!(params.order("id", false, &["id"]).is_err());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_785_837_600), "2026-08-04T10:00:00Z");
    }
}
