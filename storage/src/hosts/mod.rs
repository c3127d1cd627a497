//! The engine's [`HostStore`] for [`SqlStore`]: the hosts the registry loads at start,
//! enrollment (`enroll.rs`), the batched flush of check-in updates (`flush.rs`), enroll
//! secrets.

pub(crate) mod enroll;
mod flush;
pub(crate) mod keys;
mod orbit;
pub(crate) mod software;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::{
    DeviceTokenWrite, EnrollSecret, EnrolledHost, Enrollment, HostStore, HostUpdate,
    OrbitEnrollment, StoreError, StoredHost,
};
use flotilla_engine::vitals::Vitals;

use crate::SqlStore;
use crate::common::{is_unique_violation, store_error};
use crate::sql::{Dialect, IntoArg, Query, query};

/// `SET` clause for every vitals column: a `NULL` parameter keeps the stored value. Bound by
/// [`bind_vitals`].
macro_rules! vitals_set {
    () => {
        "hostname = COALESCE(?, hostname), computer_name = COALESCE(?, computer_name), \
         uuid = COALESCE(?, uuid), platform = COALESCE(?, platform), \
         platform_like = COALESCE(?, platform_like), os_version = COALESCE(?, os_version), \
         build = COALESCE(?, build), code_name = COALESCE(?, code_name), \
         osquery_version = COALESCE(?, osquery_version), cpu_type = COALESCE(?, cpu_type), \
         cpu_brand = COALESCE(?, cpu_brand), \
         cpu_physical_cores = COALESCE(?, cpu_physical_cores), \
         cpu_logical_cores = COALESCE(?, cpu_logical_cores), memory = COALESCE(?, memory), \
         hardware_vendor = COALESCE(?, hardware_vendor), \
         hardware_model = COALESCE(?, hardware_model), \
         hardware_version = COALESCE(?, hardware_version), \
         hardware_serial = COALESCE(?, hardware_serial), primary_ip = COALESCE(?, primary_ip), \
         primary_mac = COALESCE(?, primary_mac), uptime = COALESCE(?, uptime), \
         distributed_interval = COALESCE(?, distributed_interval), \
         config_tls_refresh = COALESCE(?, config_tls_refresh), \
         logger_tls_period = COALESCE(?, logger_tls_period)"
    };
}
pub(crate) use vitals_set;

/// `SELECT … FROM` of the columns [`crate::rows::stored_host`] reads: a host and its device
/// token; conditions follow on `hosts.…`.
macro_rules! select_stored_host {
    () => {
        "SELECT hosts.id, hosts.node_key, hosts.osquery_host_id, hosts.hostname, \
         hosts.platform, hosts.team_id, hosts.distributed_interval, hosts.config_tls_refresh, \
         hosts.logger_tls_period, hosts.seen_time, hosts.detail_updated_at, \
         hosts.label_updated_at, hosts.policy_updated_at, hosts.refetch_requested, \
         hosts.orbit_node_key, hosts.os_version, hosts.software_fingerprint, \
         da.token AS device_token, da.previous_token AS device_previous_token, \
         da.updated_at AS device_updated_at \
         FROM hosts LEFT JOIN host_device_auth da ON da.host_id = hosts.id"
    };
}
pub(crate) use select_stored_host;

/// Binds the parameters of [`vitals_set!`] in order, text cut to what the columns hold.
fn bind_vitals<'q>(query: Query<'q>, v: &'q Vitals, d: Dialect) -> Query<'q> {
    let text = |value: &'q Option<String>| value.as_deref().map(|t| d.fit(t));
    query
        .bind(text(&v.hostname))
        .bind(text(&v.computer_name))
        .bind(text(&v.uuid))
        .bind(text(&v.platform))
        .bind(text(&v.platform_like))
        .bind(text(&v.os_version))
        .bind(text(&v.build))
        .bind(text(&v.code_name))
        .bind(text(&v.osquery_version))
        .bind(text(&v.cpu_type))
        .bind(text(&v.cpu_brand))
        .bind(v.cpu_physical_cores)
        .bind(v.cpu_logical_cores)
        .bind(v.memory)
        .bind(text(&v.hardware_vendor))
        .bind(text(&v.hardware_model))
        .bind(text(&v.hardware_version))
        .bind(text(&v.hardware_serial))
        .bind(text(&v.primary_ip))
        .bind(text(&v.primary_mac))
        .bind(v.uptime_seconds)
        .bind(v.distributed_interval)
        .bind(v.config_tls_refresh)
        .bind(v.logger_tls_period)
}

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl SqlStore {
    /// The host `WHERE` selects (one at most), as the registry needs it.
    async fn one_host(
        &self,
        condition: &'static str,
        value: crate::sql::Arg<'_>,
    ) -> Result<Option<StoredHost>, StoreError> {
        let mut select = query(concat!(select_stored_host!(), " WHERE "));
        select.push(condition);
        let row = select
            .bind(value)
            .fetch_optional(&self.db)
            .await
            .map_err(unavailable)?;
        row.as_ref()
            .map(crate::rows::stored_host)
            .transpose()
            .map_err(store_error)
    }
}

#[async_trait]
impl HostStore for SqlStore {
    async fn load_hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        let rows = query(concat!(select_stored_host!(), " ORDER BY hosts.id"))
            .fetch_all(&self.db)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(crate::rows::stored_host)
            .collect::<Result<_, _>>()
            .map_err(store_error)
    }

    async fn load_host(&self, id: HostId) -> Result<Option<StoredHost>, StoreError> {
        self.one_host("hosts.id = ?", IntoArg::into_arg(id)).await
    }

    async fn host_by_node_key(&self, node_key: &str) -> Result<Option<StoredHost>, StoreError> {
        self.one_host("hosts.node_key = ?", IntoArg::into_arg(node_key))
            .await
    }

    async fn enroll_host(&self, enrollment: &Enrollment) -> Result<EnrolledHost, StoreError> {
        self.enroller
            .enroll(
                &self.db,
                enroll::Agent::Osquery(Box::new(enrollment.clone())),
            )
            .await
            .map_err(unavailable)
    }

    async fn flush_hosts(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), StoreError> {
        flush::flush(&self.db, &self.software, updates)
            .await
            .map_err(unavailable)
    }

    async fn enroll_orbit(&self, e: &OrbitEnrollment) -> Result<EnrolledHost, StoreError> {
        self.enroller
            .enroll(&self.db, enroll::Agent::Orbit(Box::new(e.clone())))
            .await
            .map_err(unavailable)
    }

    async fn host_by_orbit_node_key(&self, key: &str) -> Result<Option<StoredHost>, StoreError> {
        self.one_host("hosts.orbit_node_key = ?", IntoArg::into_arg(key))
            .await
    }

    async fn host_by_device_token(&self, token: &str) -> Result<Option<StoredHost>, StoreError> {
        let current = self
            .one_host("da.token = ?", IntoArg::into_arg(token))
            .await?;
        match current {
            Some(host) => Ok(Some(host)),
            None => {
                self.one_host("da.previous_token = ?", IntoArg::into_arg(token))
                    .await
            }
        }
    }

    async fn set_device_token(
        &self,
        host: HostId,
        token: &str,
        now: i64,
    ) -> Result<DeviceTokenWrite, StoreError> {
        orbit::set_device_token(&self.db, host, token, now)
            .await
            .map_err(unavailable)
    }

    async fn set_device_mapping(
        &self,
        host: HostId,
        email: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        orbit::set_device_mapping(&self.db, host, email, now)
            .await
            .map_err(unavailable)
    }

    async fn request_refetch(&self, host: HostId) -> Result<(), StoreError> {
        query("UPDATE hosts SET refetch_requested = 1 WHERE id = ?")
            .bind(host)
            .execute(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn enroll_secrets(&self) -> Result<Vec<EnrollSecret>, StoreError> {
        let rows = query("SELECT secret, team_id FROM enroll_secrets ORDER BY created_at")
            .fetch_all(&self.db)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(crate::rows::enroll_secret)
            .collect::<Result<Vec<EnrollSecret>, sqlx::Error>>()
            .map_err(store_error)
    }

    async fn ensure_enroll_secret(
        &self,
        secret: &str,
        team: Option<TeamId>,
    ) -> Result<bool, StoreError> {
        let inserted =
            query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES (?, ?, ?)")
                .bind(secret)
                .bind(team)
                .bind(flotilla_engine::unix_now())
                .execute(&self.db)
                .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => Ok(false),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1")
            .execute(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
