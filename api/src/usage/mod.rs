//! Opt-in usage statistics: once a period, one node POSTs a handful of figures about this
//! installation (Fleet's field names, the subset Flotilla has) to the receiver the operator
//! named. Nothing is sent unless both `--usage-statistics-url` is given and the app config's
//! `server_settings.enable_analytics` is true; the payload carries counts, versions and which
//! features are on — never a hostname, address, email, query text or secret.
//! `GET /api/latest/fleet/statistics/preview` answers exactly what would be sent.
//!
//! A try is recorded before the POST (by whichever node holds the relay's `usage-statistics`
//! lock), so a receiver that is down is tried again a period later, not queued or retried in a
//! loop, and two nodes never send for the same period.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use flotilla_engine::relay::Relay;
use flotilla_storage::admin::{UsageCounts, UsageStore};
use serde_json::{Value, json};

use crate::fleet::error::FleetError;
use crate::state::AppState;

const LOCK: &str = "usage-statistics";

/// How often a node looks whether a period has passed (at most; shorter periods are checked at
/// their own pace).
const CHECK_EVERY: Duration = Duration::from_secs(60 * 60);

/// What the server knows at start that the payload reports.
#[derive(Clone, Debug)]
pub struct UsageSettings {
    /// Where statistics go; `None`: nowhere, ever.
    pub url: Option<reqwest::Url>,
    pub interval: Duration,
    pub result_log_destination: String,
    pub status_log_destination: String,
    pub vulnerability_feed: bool,
}

pub struct UsageStatistics {
    settings: UsageSettings,
    store: Arc<dyn UsageStore>,
    client: reqwest::Client,
}

impl UsageStatistics {
    pub fn new(settings: UsageSettings, store: Arc<dyn UsageStore>) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(UsageStatistics {
            settings,
            store,
            client,
        })
    }

    /// The payload as it would be sent now.
    pub async fn payload(&self, state: &AppState) -> Result<Value, FleetError> {
        let now = flotilla_engine::unix_now();
        let candidate = {
            let bytes: [u8; 64] = rand::random();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        let identifier = self.store.usage_identifier(&candidate, now).await?;
        let counts = self.store.usage_counts().await?;
        let settings = state.services.settings.stored_settings().await?;
        Ok(payload(&identifier, &counts, &settings, &self.settings))
    }

    /// Runs until the process ends: every period, if statistics are on, sends them once.
    pub async fn run(self: Arc<Self>, state: Arc<AppState>, relay: Arc<dyn Relay>) {
        let Some(url) = self.settings.url.clone() else {
            return;
        };
        let every = self
            .settings
            .interval
            .min(CHECK_EVERY)
            .max(Duration::from_secs(1));
        loop {
            tokio::time::sleep(every).await;
            if let Err(error) = self.maybe_send(&state, relay.as_ref(), &url).await {
                tracing::debug!(%error, "usage statistics not sent this time");
            }
        }
    }

    async fn maybe_send(
        &self,
        state: &AppState,
        relay: &dyn Relay,
        url: &reqwest::Url,
    ) -> Result<(), FleetError> {
        let settings = state.services.settings.stored_settings().await?;
        if settings["server_settings"]["enable_analytics"] != json!(true) {
            return Ok(());
        }
        let now = flotilla_engine::unix_now();
        let due = |last: i64| now >= last + self.settings.interval.as_secs() as i64;
        if !due(self.store.usage_last_attempt().await?) {
            return Ok(());
        }
        if !matches!(
            relay.hold_lock(LOCK, Duration::from_secs(60)).await,
            Ok(true)
        ) {
            return Ok(());
        }
        // Another node may have tried between the read and the lock.
        if !due(self.store.usage_last_attempt().await?) {
            return Ok(());
        }
        self.store.record_usage_attempt(now, false).await?;
        let body = self.payload(state).await?;
        let sent = self.client.post(url.clone()).json(&body).send().await;
        match sent.map(|r| r.error_for_status()) {
            Ok(Ok(_)) => {
                self.store.record_usage_attempt(now, true).await?;
                tracing::info!(receiver = %crate::logs::redact_url(url.as_str()), "usage statistics sent");
            }
            Ok(Err(error)) | Err(error) => tracing::warn!(
                receiver = %crate::logs::redact_url(url.as_str()),
                error = %error.without_url(),
                "usage statistics could not be sent; trying again next period"
            ),
        }
        Ok(())
    }
}

/// The payload: Fleet's camelCase names for what Flotilla has.
fn payload(identifier: &str, counts: &UsageCounts, app: &Value, settings: &UsageSettings) -> Value {
    let flag =
        |section: &str, name: &str, default: bool| app[section][name].as_bool().unwrap_or(default);
    let mut by_os = serde_json::Map::new();
    for (platform, version, hosts) in &counts.by_os {
        let platform = if platform.is_empty() {
            "unknown"
        } else {
            platform
        };
        let entry = by_os
            .entry(platform.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(versions) = entry {
            versions.push(json!({"version": version, "numEnrolled": hosts}));
        }
    }
    json!({
        "anonymousIdentifier": identifier,
        "fleetVersion": env!("CARGO_PKG_VERSION"),
        "licenseTier": "free",
        "organization": "unknown",
        "numHostsEnrolled": counts.hosts,
        "numUsers": counts.users,
        "numTeams": counts.teams,
        "numPolicies": counts.policies,
        "numQueries": counts.queries,
        "numLabels": counts.labels,
        "numSoftwareVersions": counts.software_versions,
        "numHostSoftwares": counts.host_software,
        "numSoftwareTitles": counts.software_titles,
        "numSoftwareCVEs": counts.software_cves,
        "numHostsFleetDesktopEnabled": counts.hosts_with_desktop,
        "softwareInventoryEnabled": flag("features", "enable_software_inventory", true),
        "systemUsersEnabled": flag("features", "enable_host_users", true),
        "vulnDetectionEnabled": settings.vulnerability_feed,
        "hostExpiryEnabled": flag("host_expiry_settings", "host_expiry_enabled", false),
        "liveQueryDisabled": flag("server_settings", "live_query_disabled", false),
        "aiFeaturesDisabled": flag("server_settings", "ai_features_disabled", false),
        "resultLogDestination": settings.result_log_destination,
        "statusLogDestination": settings.status_log_destination,
        "hostsEnrolledByOperatingSystem": by_os,
        "hostsEnrolledByOsqueryVersion": counts.by_osquery_version.iter()
            .map(|(version, hosts)| json!({"osqueryVersion": version, "numHosts": hosts}))
            .collect::<Vec<_>>(),
        "hostsEnrolledByOrbitVersion": counts.by_orbit_version.iter()
            .map(|(version, hosts)| json!({"orbitVersion": version, "numHosts": hosts}))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_fleets_fields_and_groups_os_versions_by_platform() {
        let counts = UsageCounts {
            hosts: 3,
            users: 2,
            by_os: vec![
                ("ubuntu".into(), "Ubuntu 24.04 LTS".into(), 2),
                ("darwin".into(), "macOS 15.1".into(), 1),
            ],
            by_osquery_version: vec![("5.14.1".into(), 3)],
            ..UsageCounts::default()
        };
        let settings = UsageSettings {
            url: None,
            interval: Duration::from_secs(86_400),
            result_log_destination: "s3".into(),
            status_log_destination: "filesystem".into(),
            vulnerability_feed: true,
        };
        let app = json!({"features": {"enable_software_inventory": false}});
        let body = payload("id-1", &counts, &app, &settings);
        assert_eq!(body["anonymousIdentifier"], "id-1");
        assert_eq!(body["numHostsEnrolled"], 3);
        assert_eq!(body["numUsers"], 2);
        assert_eq!(body["softwareInventoryEnabled"], false);
        assert_eq!(body["systemUsersEnabled"], true);
        assert_eq!(body["vulnDetectionEnabled"], true);
        assert_eq!(body["resultLogDestination"], "s3");
        assert_eq!(
            body["hostsEnrolledByOperatingSystem"]["ubuntu"],
            json!([{"version": "Ubuntu 24.04 LTS", "numEnrolled": 2}])
        );
        assert_eq!(
            body["hostsEnrolledByOsqueryVersion"],
            json!([{"osqueryVersion": "5.14.1", "numHosts": 3}])
        );
    }
}
