//! `MemoryStore`: a [`HostStore`] in a mutex, for unit tests of engine logic and for benches.
//! The server never uses it; it runs on SQLite or MySQL.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::ids::{CampaignId, HostId, TeamId};
use crate::store::*;
use crate::vitals::Vitals;

#[derive(Default)]
pub struct MemoryStore {
    pub hosts: Mutex<Vec<(StoredHost, Vitals)>>,
    pub secrets: Mutex<Vec<EnrollSecret>>,
    pub flushes: Mutex<Vec<Vec<(HostId, HostUpdate)>>>,
    /// When set, every call fails as if the database were down.
    pub down: AtomicBool,
    pub campaigns: Mutex<Vec<(CampaignRecord, Option<CampaignOutcome>)>>,
    /// Running campaigns' last recorded counts, by campaign id.
    pub campaign_counts: Mutex<std::collections::HashMap<CampaignId, CampaignCounts>>,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("memory store is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl HostStore for MemoryStore {
    async fn load_hosts(&self) -> Result<Vec<StoredHost>, StoreError> {
        self.check()?;
        Ok(self.hosts.lock().iter().map(|(h, _)| h.clone()).collect())
    }

    async fn load_host(&self, id: HostId) -> Result<Option<StoredHost>, StoreError> {
        self.check()?;
        Ok(self
            .hosts
            .lock()
            .iter()
            .find(|(h, _)| h.id == id)
            .map(|(h, _)| h.clone()))
    }

    async fn host_by_node_key(&self, key: &str) -> Result<Option<StoredHost>, StoreError> {
        self.check()?;
        Ok(self
            .hosts
            .lock()
            .iter()
            .find(|(h, _)| h.node_key.as_ref().is_some_and(|k| k.as_str() == key))
            .map(|(h, _)| h.clone()))
    }

    async fn enroll_host(&self, e: &Enrollment) -> Result<EnrolledHost, StoreError> {
        self.check()?;
        let mut hosts = self.hosts.lock();
        let found = hosts.iter_mut().find(|(h, v)| {
            h.identifier == e.identifier || (e.hardware_uuid.is_some() && v.uuid == e.hardware_uuid)
        });
        if let Some((host, vitals)) = found {
            let previous = host.node_key.replace(e.node_key.clone());
            host.identifier = e.identifier.clone();
            host.team = e.team;
            vitals.merge(e.vitals.clone());
            return Ok(EnrolledHost {
                host: host.clone(),
                previous_node_key: previous,
                created: false,
            });
        }
        let host = StoredHost {
            id: HostId(hosts.len() as u64 + 1),
            node_key: Some(e.node_key.clone()),
            identifier: e.identifier.clone(),
            hostname: e.vitals.hostname.clone().unwrap_or_default(),
            platform: e.vitals.platform.clone().unwrap_or_default(),
            team: e.team,
            intervals: Default::default(),
            seen_time: e.now,
            detail_updated_at: 0,
            label_updated_at: 0,
            policy_updated_at: 0,
            refetch_requested: true,
            orbit_node_key: None,
            device: None,
            os_version: String::new(),
            software_fingerprint: 0,
        };
        hosts.push((host.clone(), e.vitals.clone()));
        Ok(EnrolledHost {
            host,
            previous_node_key: None,
            created: true,
        })
    }

    async fn flush_hosts(&self, updates: &[(HostId, HostUpdate)]) -> Result<(), StoreError> {
        self.check()?;
        self.flushes.lock().push(updates.to_vec());
        Ok(())
    }

    async fn enroll_orbit(&self, e: &OrbitEnrollment) -> Result<EnrolledHost, StoreError> {
        self.check()?;
        let mut hosts = self.hosts.lock();
        if let Some((host, _)) = hosts.iter_mut().find(|(h, _)| h.identifier == e.identifier) {
            let previous = host.orbit_node_key.replace(e.orbit_node_key.clone());
            host.team = e.team;
            return Ok(EnrolledHost {
                host: host.clone(),
                previous_node_key: previous,
                created: false,
            });
        }
        let host = StoredHost {
            id: HostId(hosts.len() as u64 + 1),
            node_key: None,
            identifier: e.identifier.clone(),
            hostname: e.hostname.clone(),
            platform: e.platform.clone(),
            team: e.team,
            intervals: Default::default(),
            seen_time: 0,
            detail_updated_at: 0,
            label_updated_at: 0,
            policy_updated_at: 0,
            refetch_requested: true,
            orbit_node_key: Some(e.orbit_node_key.clone()),
            device: None,
            os_version: String::new(),
            software_fingerprint: 0,
        };
        let vitals = Vitals {
            uuid: Some(e.hardware_uuid.clone()),
            ..Vitals::default()
        };
        hosts.push((host.clone(), vitals));
        Ok(EnrolledHost {
            host,
            previous_node_key: None,
            created: true,
        })
    }

    async fn host_by_orbit_node_key(&self, key: &str) -> Result<Option<StoredHost>, StoreError> {
        self.check()?;
        let hosts = self.hosts.lock();
        let found = hosts
            .iter()
            .find(|(h, _)| h.orbit_node_key.as_ref().is_some_and(|k| k.as_str() == key));
        Ok(found.map(|(h, _)| h.clone()))
    }

    async fn host_by_device_token(&self, token: &str) -> Result<Option<StoredHost>, StoreError> {
        self.check()?;
        let hosts = self.hosts.lock();
        let found = hosts.iter().find(|(h, _)| {
            h.device
                .as_ref()
                .is_some_and(|d| d.token == token || d.previous.as_deref() == Some(token))
        });
        Ok(found.map(|(h, _)| h.clone()))
    }

    async fn set_device_token(
        &self,
        host: HostId,
        token: &str,
        now: i64,
    ) -> Result<DeviceTokenWrite, StoreError> {
        self.check()?;
        let mut hosts = self.hosts.lock();
        let taken = hosts
            .iter()
            .any(|(h, _)| h.id != host && h.device.as_ref().is_some_and(|d| d.token == token));
        if taken {
            return Ok(DeviceTokenWrite::Conflict);
        }
        let Some((stored, _)) = hosts.iter_mut().find(|(h, _)| h.id == host) else {
            return Err(StoreError::Data(format!("no host {host}")));
        };
        let auth = match &stored.device {
            Some(d) if d.token == token => d.clone(),
            previous => DeviceAuth {
                token: token.to_owned(),
                previous: previous.as_ref().map(|d| d.token.clone()),
                updated_at: now,
            },
        };
        stored.device = Some(auth.clone());
        Ok(DeviceTokenWrite::Set(auth))
    }

    async fn set_device_mapping(
        &self,
        _host: HostId,
        _email: &str,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.check()
    }

    async fn request_refetch(&self, host: HostId) -> Result<(), StoreError> {
        self.check()?;
        if let Some((h, _)) = self.hosts.lock().iter_mut().find(|(h, _)| h.id == host) {
            h.refetch_requested = true;
        }
        Ok(())
    }

    async fn enroll_secrets(&self) -> Result<Vec<EnrollSecret>, StoreError> {
        self.check()?;
        Ok(self.secrets.lock().clone())
    }

    async fn ensure_enroll_secret(
        &self,
        secret: &str,
        team: Option<TeamId>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        let mut secrets = self.secrets.lock();
        if secrets.iter().any(|s| s.secret == secret) {
            return Ok(false);
        }
        secrets.push(EnrollSecret {
            secret: secret.into(),
            team,
        });
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.check()
    }
}

#[async_trait]
impl CampaignStore for MemoryStore {
    async fn create_campaign(&self, campaign: &CampaignRecord) -> Result<CampaignId, StoreError> {
        self.check()?;
        let mut campaigns = self.campaigns.lock();
        campaigns.push((campaign.clone(), None));
        Ok(CampaignId(campaigns.len() as u64))
    }

    async fn record_campaign_counts(
        &self,
        id: CampaignId,
        counts: CampaignCounts,
        _now: i64,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut recorded = self.campaign_counts.lock();
        let entry = recorded.entry(id).or_default();
        let responded = entry.responded.max(counts.responded);
        *entry = CampaignCounts {
            responded,
            ..counts
        };
        Ok(())
    }

    async fn finish_campaign(
        &self,
        id: CampaignId,
        outcome: &CampaignOutcome,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(entry) = self.campaigns.lock().get_mut(id.0 as usize - 1) {
            entry.1 = Some(outcome.clone());
        }
        Ok(())
    }

    async fn finish_abandoned_campaigns(
        &self,
        _now: i64,
        keep: &[CampaignId],
    ) -> Result<u64, StoreError> {
        self.check()?;
        let mut finished = 0;
        let recorded = self.campaign_counts.lock();
        for (index, entry) in self.campaigns.lock().iter_mut().enumerate() {
            let id = CampaignId(index as u64 + 1);
            if entry.1.is_some() || keep.contains(&id) {
                continue;
            }
            let counts = recorded.get(&id).copied().unwrap_or_default();
            entry.1 = Some(CampaignOutcome {
                reason: "abandoned",
                targets: counts.targets,
                online: counts.online,
                responded: counts.responded,
                finished_at: 0,
            });
            finished += 1;
        }
        Ok(finished)
    }
}
