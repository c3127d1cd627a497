//! [`UsageStore`] for [`SqlStore`]: the figures usage statistics report, and their state in
//! `app_config` (`usage_statistics`: the anonymous identifier; `usage_statistics_attempt`: the
//! last try).

use async_trait::async_trait;
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::{USAGE_BREAKDOWN_MAX, UsageCounts, UsageStore};
use crate::common::store_error;
use crate::rows::ModelRow;
use crate::sql::{query, sql};

const IDENTITY: &str = "usage_statistics";
const ATTEMPT: &str = "usage_statistics_attempt";

impl SqlStore {
    async fn count(&self, sql: &'static str) -> Result<u64, StoreError> {
        let row = query(sql).fetch_one(&self.db).await.map_err(store_error)?;
        Ok(row.int("n").map_err(store_error)?.max(0) as u64)
    }

    /// `(value, hosts)` of `sql` (which selects `value` and `n`), largest first.
    async fn breakdown(&self, sql: &'static str) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = query(sql)
            .bind(USAGE_BREAKDOWN_MAX as i64)
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.text("value").map_err(store_error)?,
                    row.int("n").map_err(store_error)?.max(0) as u64,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl UsageStore for SqlStore {
    async fn usage_counts(&self) -> Result<UsageCounts, StoreError> {
        let by_os = query(
            "SELECT platform, os_version, COUNT(*) AS n FROM hosts \
             GROUP BY platform, os_version ORDER BY n DESC, platform, os_version LIMIT ?",
        )
        .bind(USAGE_BREAKDOWN_MAX as i64)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?
        .iter()
        .map(|row| {
            Ok((
                row.text("platform").map_err(store_error)?,
                row.text("os_version").map_err(store_error)?,
                row.int("n").map_err(store_error)?.max(0) as u64,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(UsageCounts {
            hosts: self.count("SELECT COUNT(*) AS n FROM hosts").await?,
            users: self.count("SELECT COUNT(*) AS n FROM users").await?,
            teams: self.count("SELECT COUNT(*) AS n FROM teams").await?,
            labels: self.count("SELECT COUNT(*) AS n FROM labels").await?,
            policies: self.count("SELECT COUNT(*) AS n FROM policies").await?,
            queries: self.count("SELECT COUNT(*) AS n FROM queries").await?,
            software_versions: self.count("SELECT COUNT(*) AS n FROM software").await?,
            host_software: self
                .count("SELECT COUNT(*) AS n FROM host_software")
                .await?,
            software_titles: self
                .count("SELECT COUNT(*) AS n FROM software_titles")
                .await?,
            software_cves: self.count("SELECT COUNT(*) AS n FROM software_cve").await?,
            hosts_with_desktop: self
                .count(
                    "SELECT COUNT(*) AS n FROM host_orbit_info \
                     WHERE desktop_version IS NOT NULL AND desktop_version <> ''",
                )
                .await?,
            by_os,
            by_osquery_version: self
                .breakdown(
                    "SELECT osquery_version AS value, COUNT(*) AS n FROM hosts \
                     GROUP BY osquery_version ORDER BY n DESC, osquery_version LIMIT ?",
                )
                .await?,
            by_orbit_version: self
                .breakdown(
                    "SELECT version AS value, COUNT(*) AS n FROM host_orbit_info \
                     GROUP BY version ORDER BY n DESC, version LIMIT ?",
                )
                .await?,
        })
    }

    async fn usage_identifier(&self, candidate: &str, now: i64) -> Result<String, StoreError> {
        let d = self.db.dialect();
        let value = serde_json::json!({ "anonymous_identifier": candidate }).to_string();
        // Keeps what is stored: the first node to store an identifier wins.
        query(sql!(
            d,
            "INSERT INTO app_config (name, value, updated_at) VALUES (?, ?, ?) ",
            UPSERT("name"),
            " value = value"
        ))
        .bind(IDENTITY)
        .bind(value)
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(store_error)?;
        let stored = self.app_config(IDENTITY).await?;
        stored
            .as_ref()
            .and_then(|v| v["anonymous_identifier"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Data("usage_statistics holds no identifier".into()))
    }

    async fn usage_last_attempt(&self) -> Result<i64, StoreError> {
        Ok(self
            .app_config(ATTEMPT)
            .await?
            .and_then(|v| v["attempted_at"].as_i64())
            .unwrap_or(0))
    }

    async fn record_usage_attempt(&self, now: i64, delivered: bool) -> Result<(), StoreError> {
        let value = serde_json::json!({ "attempted_at": now, "delivered": delivered }).to_string();
        self.set_app_config(ATTEMPT, value, now)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
