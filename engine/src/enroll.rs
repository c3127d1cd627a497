//! Enrollment inputs and the in-memory set of enroll secrets.

use parking_lot::RwLock;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::ids::TeamId;
use crate::row::Row;
use crate::store::EnrollSecret;

/// The parts of an osquery enroll request Flotilla uses.
#[derive(Clone, Debug, Default)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    pub host_identifier: String,
    /// First rows of `os_version`, `osquery_info`, `system_info` from `host_details`.
    pub os_version: Option<Row>,
    pub osquery_info: Option<Row>,
    pub system_info: Option<Row>,
}

/// The parts of orbit's enroll request (`POST /api/fleet/orbit/enroll`) Flotilla uses.
#[derive(Clone, Debug, Default)]
pub struct OrbitEnrollRequest {
    pub enroll_secret: String,
    pub hardware_uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    pub computer_name: String,
    pub hardware_model: String,
    pub platform: String,
    pub platform_like: String,
    /// osquery's `--host_identifier` value when it is not the hardware UUID (duplicated UUIDs
    /// on VMs); empty otherwise.
    pub osquery_identifier: String,
}

impl OrbitEnrollRequest {
    /// The host's identity, shared with the osqueryd orbit starts: `osquery_identifier`, else
    /// the hardware UUID.
    pub fn identifier(&self) -> Option<&str> {
        [&self.osquery_identifier, &self.hardware_uuid]
            .into_iter()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("enroll failed: no matching enroll secret")]
    InvalidSecret,
    #[error("enroll failed: no host identifier, osquery uuid or hardware uuid")]
    MissingIdentifier,
    #[error("hardware uuid is empty")]
    MissingHardwareUuid,
    /// The store did not take the enrollment; the agent should retry (it does, with backoff).
    #[error("enroll failed: {0}")]
    Unavailable(String),
}

/// The valid enroll secrets, held in memory so enrollment checks them without a query.
///
/// The check compares the presented secret with *every* known secret in constant time per
/// comparison and without stopping at a match, so response timing reveals nothing about which
/// prefix of a secret was right.
#[derive(Default)]
pub struct EnrollSecrets {
    secrets: RwLock<Arc<Vec<EnrollSecret>>>,
}

impl EnrollSecrets {
    pub fn replace(&self, secrets: Vec<EnrollSecret>) {
        *self.secrets.write() = Arc::new(secrets);
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.read().is_empty()
    }

    /// The team a secret enrolls into (`Some(None)`: global), or `None` when it is not valid.
    pub fn verify(&self, presented: &str) -> Option<Option<TeamId>> {
        let secrets = self.secrets.read().clone();
        let mut found = None;
        for secret in secrets.iter() {
            let equal: bool = secret.secret.as_bytes().ct_eq(presented.as_bytes()).into();
            if equal && found.is_none() && !presented.is_empty() {
                found = Some(secret.team);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_finds_the_team_of_the_matching_secret() {
        let secrets = EnrollSecrets::default();
        secrets.replace(vec![
            EnrollSecret {
                secret: "global".into(),
                team: None,
            },
            EnrollSecret {
                secret: "team-secret".into(),
                team: Some(TeamId(3)),
            },
        ]);
        assert_eq!(secrets.verify("global"), Some(None));
        assert_eq!(secrets.verify("team-secret"), Some(Some(TeamId(3))));
        assert_eq!(secrets.verify("glob"), None);
        assert_eq!(secrets.verify(""), None);
    }
}
