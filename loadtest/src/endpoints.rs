//! The remote endpoints an agent talks to and their paths.

use serde::Serialize;

/// One kind of request, used to key counters and select paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `enroll_tls_endpoint`
    Enroll,
    /// `config_tls_endpoint`
    Config,
    /// `distributed_tls_read_endpoint`
    DistributedRead,
    /// `distributed_tls_write_endpoint`
    DistributedWrite,
    /// `logger_tls_endpoint`
    Log,
    /// `carver_start_endpoint`
    CarveBegin,
    /// `carver_continue_endpoint`
    CarveBlock,
    /// orbit's `POST /api/fleet/orbit/enroll`
    OrbitEnroll,
    /// orbit's `POST /api/fleet/orbit/config`
    OrbitConfig,
    /// orbit's `HEAD /api/fleet/orbit/ping`
    OrbitPing,
    /// orbit's `POST /api/fleet/orbit/device_token`
    OrbitDeviceToken,
    /// orbit's remote check of the device token (`HEAD /api/latest/fleet/device/{token}/ping`)
    DeviceTokenCheck,
    /// Fleet Desktop's `GET /api/latest/fleet/device/{token}/desktop`
    Desktop,
}

impl Endpoint {
    /// Every endpoint, in a fixed order (the order of counter arrays).
    pub const ALL: [Endpoint; 13] = [
        Endpoint::Enroll,
        Endpoint::Config,
        Endpoint::DistributedRead,
        Endpoint::DistributedWrite,
        Endpoint::Log,
        Endpoint::CarveBegin,
        Endpoint::CarveBlock,
        Endpoint::OrbitEnroll,
        Endpoint::OrbitConfig,
        Endpoint::OrbitPing,
        Endpoint::OrbitDeviceToken,
        Endpoint::DeviceTokenCheck,
        Endpoint::Desktop,
    ];

    /// osqueryd's endpoints, the first of [`Endpoint::ALL`]; the rest are fleetd's (orbit and
    /// Fleet Desktop).
    pub const OSQUERY: [Endpoint; 7] = [
        Endpoint::Enroll,
        Endpoint::Config,
        Endpoint::DistributedRead,
        Endpoint::DistributedWrite,
        Endpoint::Log,
        Endpoint::CarveBegin,
        Endpoint::CarveBlock,
    ];

    /// Whether fleetd (orbit, Desktop) calls this endpoint rather than osqueryd.
    pub fn is_fleetd(self) -> bool {
        !Endpoint::OSQUERY.contains(&self)
    }

    /// Position in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// snake_case name, as used in JSON summaries.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Enroll => "enroll",
            Endpoint::Config => "config",
            Endpoint::DistributedRead => "distributed_read",
            Endpoint::DistributedWrite => "distributed_write",
            Endpoint::Log => "log",
            Endpoint::CarveBegin => "carve_begin",
            Endpoint::CarveBlock => "carve_block",
            Endpoint::OrbitEnroll => "orbit_enroll",
            Endpoint::OrbitConfig => "orbit_config",
            Endpoint::OrbitPing => "orbit_ping",
            Endpoint::OrbitDeviceToken => "orbit_device_token",
            Endpoint::DeviceTokenCheck => "device_token_check",
            Endpoint::Desktop => "desktop",
        }
    }
}

/// Request paths (osquery's `*_tls_endpoint` / `carver_*_endpoint` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPaths {
    /// e.g. `/api/v1/osquery/enroll`
    pub enroll: String,
    /// e.g. `/api/v1/osquery/config`
    pub config: String,
    /// e.g. `/api/v1/osquery/distributed/read`
    pub distributed_read: String,
    /// e.g. `/api/v1/osquery/distributed/write`
    pub distributed_write: String,
    /// e.g. `/api/v1/osquery/log`
    pub log: String,
    /// e.g. `/api/v1/osquery/carve/begin`
    pub carve_begin: String,
    /// e.g. `/api/v1/osquery/carve/block`
    pub carve_block: String,
}

impl EndpointPaths {
    /// Fleet-style layout under `prefix` (`/api/v1/osquery` or `/api/osquery`):
    /// `enroll`, `config`, `distributed/read`, `distributed/write`, `log`, `carve/begin`, `carve/block`.
    pub fn with_prefix(prefix: &str) -> Self {
        let p = prefix.trim_end_matches('/');
        EndpointPaths {
            enroll: format!("{p}/enroll"),
            config: format!("{p}/config"),
            distributed_read: format!("{p}/distributed/read"),
            distributed_write: format!("{p}/distributed/write"),
            log: format!("{p}/log"),
            carve_begin: format!("{p}/carve/begin"),
            carve_block: format!("{p}/carve/block"),
        }
    }

    /// The path of `endpoint`.
    pub fn path(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Enroll => &self.enroll,
            Endpoint::Config => &self.config,
            Endpoint::DistributedRead => &self.distributed_read,
            Endpoint::DistributedWrite => &self.distributed_write,
            Endpoint::Log => &self.log,
            Endpoint::CarveBegin => &self.carve_begin,
            Endpoint::CarveBlock => &self.carve_block,
            Endpoint::OrbitEnroll => "/api/fleet/orbit/enroll",
            Endpoint::OrbitConfig => "/api/fleet/orbit/config",
            Endpoint::OrbitPing => "/api/fleet/orbit/ping",
            Endpoint::OrbitDeviceToken => "/api/fleet/orbit/device_token",
            Endpoint::DeviceTokenCheck => "/api/latest/fleet/device/{token}/ping",
            Endpoint::Desktop => "/api/latest/fleet/device/{token}/desktop",
        }
    }
}

impl Default for EndpointPaths {
    /// The versioned alias `/api/v1/osquery/*` that typical osquery flag files use.
    fn default() -> Self {
        EndpointPaths::with_prefix("/api/v1/osquery")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_layout() {
        let p = EndpointPaths::with_prefix("/api/osquery/");
        assert_eq!(p.distributed_read, "/api/osquery/distributed/read");
        assert_eq!(
            EndpointPaths::default().path(Endpoint::CarveBlock),
            "/api/v1/osquery/carve/block"
        );
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
