//! `HostRecord`: the compact, always-resident part of a host. It answers an empty check-in
//! without waking the host's actor, and it is what the actor reads and updates while active.

use std::sync::Arc;

use crate::config::EngineConfig;
use crate::ids::{HostId, NodeKey, TeamId};
use crate::store::StoredHost;
use crate::vitals::{Intervals, Vitals};

#[derive(Clone, Debug)]
pub struct HostRecord {
    pub id: HostId,
    /// The osquery node key; `None` for a host only orbit has enrolled so far.
    pub node_key: Option<NodeKey>,
    pub identifier: Box<str>,
    /// Shared with every live-query result the host sends.
    pub hostname: Arc<str>,
    pub platform: Box<str>,
    pub team: Option<TeamId>,
    pub intervals: Intervals,
    /// Unix seconds when detail queries last filled the vitals; 0 if never.
    pub detail_updated_at: i64,
    /// Set when the details must be fetched again before the usual interval.
    pub refetch_requested: bool,
    /// Unix seconds when the host last answered the dynamic-label queries; 0 if never.
    pub label_updated_at: i64,
    /// The [`LabelSet`](crate::labels::LabelSet) version of that answer; a newer set makes the
    /// labels due again.
    pub label_version: u64,
    /// Unix seconds when the host last answered its policies (or had none to run); 0 if never.
    pub policy_updated_at: i64,
    /// The [`PolicySet`](crate::policies::PolicySet) version of that answer; a newer set makes
    /// the policies due again.
    pub policy_version: u64,
    /// Display name of the OS with its version, as the last `os_version` answer gave it.
    pub os_version: Box<str>,
    /// Fingerprint of the software set last handed to the writer; 0 if none.
    pub software_fingerprint: u64,
}

impl HostRecord {
    pub fn from_stored(host: &StoredHost) -> HostRecord {
        HostRecord {
            id: host.id,
            node_key: host.node_key.clone(),
            identifier: host.identifier.as_str().into(),
            hostname: host.hostname.as_str().into(),
            platform: host.platform.as_str().into(),
            team: host.team,
            intervals: host.intervals,
            detail_updated_at: host.detail_updated_at,
            refetch_requested: host.refetch_requested,
            label_updated_at: host.label_updated_at,
            label_version: 0,
            policy_updated_at: host.policy_updated_at,
            policy_version: 0,
            os_version: host.os_version.as_str().into(),
            software_fingerprint: host.software_fingerprint,
        }
    }

    /// Whether the policies should go out on this check-in: never answered, the policy set
    /// changed since, a refetch was asked for, or the policy interval (plus jitter) has
    /// passed. Which of them apply to this host is the actor's to work out.
    pub fn policies_due(
        &self,
        now: i64,
        set: &crate::policies::PolicySet,
        config: &EngineConfig,
    ) -> bool {
        if set.queries.is_empty() {
            return false;
        }
        if self.refetch_requested
            || self.policy_updated_at <= 0
            || self.policy_version < set.version
        {
            return true;
        }
        let interval = config.policy_update_interval.as_secs() as i64;
        now >= self.policy_updated_at + interval + detail_jitter(self.id, interval, config)
    }

    /// Whether the dynamic-label queries should go out on this check-in: never answered, the
    /// label set changed since, or the label interval (plus jitter) has passed.
    pub fn labels_due(
        &self,
        now: i64,
        set: &crate::labels::LabelSet,
        config: &EngineConfig,
    ) -> bool {
        if set.queries.is_empty() {
            return false;
        }
        if self.label_updated_at <= 0 || self.label_version < set.version {
            return true;
        }
        let interval = config.label_update_interval.as_secs() as i64;
        now >= self.label_updated_at + interval + detail_jitter(self.id, interval, config)
    }

    /// Whether the detail queries should go out on this check-in.
    pub fn detail_due(&self, now: i64, config: &EngineConfig) -> bool {
        if self.refetch_requested || self.detail_updated_at <= 0 {
            return true;
        }
        let interval = config.detail_update_interval.as_secs() as i64;
        now >= self.detail_updated_at + interval + detail_jitter(self.id, interval, config)
    }

    /// A host without hostname or platform has only just enrolled; it is asked to check in
    /// quickly so everything that depends on its platform can follow.
    pub fn is_new(&self) -> bool {
        self.hostname.is_empty() || self.platform.is_empty()
    }

    /// Online: seen within its own check-in interval plus a buffer. The interval is the shorter
    /// of `distributed_interval` and `config_refresh` that is known and non-zero.
    pub fn is_online(&self, last_seen: i64, now: i64, config: &EngineConfig) -> bool {
        let known = [self.intervals.distributed, self.intervals.config_refresh]
            .into_iter()
            .filter(|&i| i > 0)
            .min()
            .unwrap_or(0) as i64;
        last_seen > 0 && now - last_seen <= known + config.online_buffer.as_secs() as i64
    }

    /// Folds freshly ingested vitals into the fields this record keeps.
    pub fn absorb(&mut self, vitals: &Vitals) {
        if let Some(hostname) = &vitals.hostname
            && **hostname != *self.hostname
        {
            self.hostname = hostname.as_str().into();
        }
        if let Some(platform) = &vitals.platform {
            self.platform = platform.as_str().into();
        }
        if let Some(os_version) = &vitals.os_version {
            self.os_version = os_version.as_str().into();
        }
        self.intervals = vitals.intervals_or(self.intervals);
    }
}

/// A stable per-host offset in `[0, interval * max_jitter_percent / 100]` seconds.
fn detail_jitter(id: HostId, interval: i64, config: &EngineConfig) -> i64 {
    let spread = interval * i64::from(config.max_jitter_percent) / 100;
    if spread <= 0 {
        return 0;
    }
    // Fibonacci hashing spreads consecutive ids evenly.
    let hash = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (hash % (spread as u64 + 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64) -> HostRecord {
        HostRecord {
            id: HostId(id),
            node_key: Some(NodeKey::generate()),
            identifier: "h".into(),
            hostname: "h".into(),
            platform: "ubuntu".into(),
            team: None,
            intervals: Intervals::default(),
            detail_updated_at: 0,
            refetch_requested: false,
            label_updated_at: 0,
            label_version: 0,
            policy_updated_at: 0,
            policy_version: 0,
            os_version: "".into(),
            software_fingerprint: 0,
        }
    }

    #[test]
    fn policies_are_due_when_never_run_changed_refetched_or_stale() {
        use crate::policies::{PolicyQuery, PolicySet};
        let config = EngineConfig::default();
        let mut r = record(3);
        assert!(!r.policies_due(1_000, &PolicySet::default(), &config));
        let set = PolicySet {
            version: 2,
            queries: vec![PolicyQuery::new(1, "SELECT 1", "", None)],
        };
        assert!(r.policies_due(1_000, &set, &config), "never run");
        r.policy_updated_at = 1_000;
        r.policy_version = 2;
        assert!(!r.policies_due(1_500, &set, &config));
        assert!(r.policies_due(1_000 + 3600 + 360, &set, &config), "stale");
        r.refetch_requested = true;
        assert!(r.policies_due(1_500, &set, &config), "refetch");
        r.refetch_requested = false;
        r.policy_version = 1;
        assert!(
            r.policies_due(1_500, &set, &config),
            "a new set is run at once"
        );
    }

    #[test]
    fn labels_are_due_when_never_run_changed_or_stale() {
        use crate::labels::{LabelQuery, LabelSet};
        let config = EngineConfig::default();
        let mut r = record(3);
        let empty = LabelSet::default();
        assert!(
            !r.labels_due(1_000, &empty, &config),
            "no labels, nothing to run"
        );
        let set = LabelSet {
            version: 0,
            queries: vec![LabelQuery::new(1, "SELECT 1", "")],
        };
        assert!(r.labels_due(1_000, &set, &config), "never run");
        r.label_updated_at = 1_000;
        assert!(!r.labels_due(1_500, &set, &config));
        assert!(r.labels_due(1_000 + 3600 + 360, &set, &config));
        let changed = LabelSet {
            version: 1,
            queries: set.queries.clone(),
        };
        assert!(
            r.labels_due(1_500, &changed, &config),
            "a new label set is run at once"
        );
    }

    #[test]
    fn details_are_due_first_then_hourly_with_bounded_jitter() {
        let config = EngineConfig::default();
        let mut r = record(7);
        assert!(r.detail_due(1_000, &config));
        r.detail_updated_at = 1_000;
        assert!(!r.detail_due(1_000 + 3599, &config));
        assert!(r.detail_due(1_000 + 3600 + 360, &config));
        r.refetch_requested = true;
        assert!(r.detail_due(1_001, &config));
    }

    #[test]
    fn jitter_spreads_hosts() {
        let config = EngineConfig::default();
        let offsets: std::collections::HashSet<i64> = (1..200)
            .map(|id| detail_jitter(HostId(id), 3600, &config))
            .collect();
        assert!(offsets.iter().all(|&o| (0..=360).contains(&o)));
        assert!(offsets.len() > 100, "jitter should differ between hosts");
    }

    #[test]
    fn online_uses_the_hosts_own_intervals() {
        let config = EngineConfig::default();
        let mut r = record(1);
        r.intervals = Intervals {
            distributed: 10,
            config_refresh: 0,
            logger: 10,
        };
        assert!(r.is_online(1_000, 1_070, &config));
        assert!(!r.is_online(1_000, 1_071, &config));
        r.intervals.config_refresh = 300;
        r.intervals.distributed = 600;
        assert!(r.is_online(1_000, 1_360, &config));
        assert!(!r.is_online(0, 10, &config), "never seen is offline");
    }
}
