//! `GET /healthz`, `GET /readyz` and `GET /version`: unauthenticated, for load balancers,
//! orchestrators and people.
//!
//! - `/healthz` has Fleet's semantics: it runs every check (`db`, alias `mysql`: the store
//!   answers a ping; `redis`: the relay between nodes answers, when one is configured), or only
//!   those named by `?check=` (repeatable). 200 with an empty body when all pass; 500 when one
//!   fails, the failure logged at warn with the check's name. An empty or unknown check name is
//!   a 400 in the admin API's JSON error form.
//! - `/readyz` is 503 until the server has finished starting (hosts loaded into the registry,
//!   label queries published), while the store does not answer, and while a configured relay
//!   is not connected; 200 after. Its JSON body says what it is waiting for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flotilla_engine::counters::RelayCounters;
use flotilla_engine::store::HostStore;
use serde::Serialize;

use crate::fleet::error::FleetError;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Something `/healthz` can check by name: the store, the relay.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// `Err` says what is wrong, for the log.
    async fn check(&self) -> Result<(), String>;
}

/// The store's ping as a check.
struct StoreCheck(Arc<dyn HostStore>);

#[async_trait]
impl HealthCheck for StoreCheck {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|error| {
            crate::metrics::HEALTH_STORE_ERRORS.incr();
            error.to_string()
        })
    }
}

/// The named checks and the readiness state, built by the server.
pub struct Health {
    /// `(name, check)`; `db` first. Names are what `?check=` selects.
    checks: Vec<(&'static str, Arc<dyn HealthCheck>)>,
    /// Set once startup has finished: hosts loaded, labels published, listener bound.
    started: AtomicBool,
    /// The relay's counters when a relay is configured: readiness waits for it to connect.
    relay: Option<Arc<RelayCounters>>,
}

impl Health {
    /// Checks the store under the name `db` (and Fleet's `mysql`).
    pub fn new(store: Arc<dyn HostStore>) -> Health {
        Health {
            checks: vec![("db", Arc::new(StoreCheck(store)))],
            started: AtomicBool::new(false),
            relay: None,
        }
    }

    /// Adds a named check (the Redis relay adds `redis`).
    pub fn with_check(mut self, name: &'static str, check: Arc<dyn HealthCheck>) -> Health {
        self.checks.push((name, check));
        self
    }

    /// Makes readiness wait until the relay reports itself connected.
    pub fn with_relay(mut self, relay: Arc<RelayCounters>) -> Health {
        self.relay = Some(relay);
        self
    }

    /// Called by the server once it is serving with everything loaded.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    fn check_named(&self, name: &str) -> Option<(&'static str, &Arc<dyn HealthCheck>)> {
        // Fleet calls the database check `mysql`; it is the same store here.
        let name = if name == "mysql" { "db" } else { name };
        self.checks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, c)| (*n, c))
    }

    /// A check name `?check=` accepts even when nothing backs it: `redis` on a single node,
    /// whose in-process relay cannot fail.
    fn always_passes(name: &str) -> bool {
        name == "redis"
    }
}

/// `/healthz`, `/readyz`, `/version`, answering from `health`.
pub fn router<S>(health: Arc<Health>) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .with_state(health)
}

/// Runs one check with the timeout; logs a failure.
async fn run_check(name: &str, check: &Arc<dyn HealthCheck>) -> bool {
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    match outcome {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(check = name, %error, "health check failed");
            false
        }
    }
}

/// The check names in `?check=a&check=b`; `None` when none are named (run all).
fn selected_checks(query: Option<&str>) -> Result<Option<Vec<String>>, FleetError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| FleetError::BadRequest(format!("invalid query string: {e}")))?;
    let names: Vec<String> = pairs
        .into_iter()
        .filter(|(key, _)| key == "check")
        .map(|(_, value)| value)
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(FleetError::BadRequest("checks must not be empty".into()));
    }
    Ok(Some(names))
}

async fn healthz(State(health): State<Arc<Health>>, RawQuery(query): RawQuery) -> Response {
    let selected = match selected_checks(query.as_deref()) {
        Ok(selected) => selected,
        Err(error) => return error.into_response(),
    };
    let mut healthy = true;
    match selected {
        None => {
            for (name, check) in &health.checks {
                healthy &= run_check(name, check).await;
            }
        }
        Some(names) => {
            let mut checks = Vec::with_capacity(names.len());
            for name in &names {
                match health.check_named(name) {
                    Some(check) => checks.push(check),
                    None if Health::always_passes(name) => {}
                    None => {
                        return FleetError::BadRequest(format!(
                            "the provided check is not valid: {name}"
                        ))
                        .into_response();
                    }
                }
            }
            checks.dedup_by_key(|(name, _)| *name);
            for (name, check) in checks {
                healthy &= run_check(name, check).await;
            }
        }
    }
    if healthy {
        StatusCode::OK.into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    /// What is not ready yet: `startup`, `store`, `relay`.
    waiting_for: Vec<&'static str>,
}

async fn readyz(State(health): State<Arc<Health>>) -> Response {
    let mut waiting_for = Vec::new();
    if !health.started.load(Ordering::Acquire) {
        waiting_for.push("startup");
    }
    if let Some((name, check)) = health.check_named("db")
        && !run_check(name, check).await
    {
        waiting_for.push("store");
    }
    if health.relay.as_ref().is_some_and(|r| !r.is_connected()) {
        waiting_for.push("relay");
    }
    let ready = waiting_for.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(Readiness { ready, waiting_for })).into_response()
}

#[derive(Serialize)]
pub struct VersionInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub build_date: &'static str,
    pub rustc: &'static str,
}

pub const VERSION: VersionInfo = VersionInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("FLOTILLA_GIT_REVISION"),
    build_date: env!("FLOTILLA_BUILD_DATE"),
    rustc: env!("FLOTILLA_RUSTC_VERSION"),
};

async fn version() -> Response {
    axum::Json(&VERSION).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_selection_follows_fleet() {
        assert!(selected_checks(None).unwrap().is_none());
        assert!(selected_checks(Some("other=1")).unwrap().is_none());
        assert_eq!(
            selected_checks(Some("check=db&check=redis"))
                .unwrap()
                .unwrap(),
            vec!["db".to_string(), "redis".to_string()]
        );
        assert!(selected_checks(Some("check=")).is_err());
    }
}
