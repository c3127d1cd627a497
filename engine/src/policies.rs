//! Policies: the yes/no queries hosts run (`fleet_policy_query_<id>`), handed out like dynamic
//! labels — on the same hourly-with-jitter cadence, at once after a change or a refetch — and
//! shared by every host actor, replaced as a whole when policies change.
//!
//! A host runs the global policies and its own team's, those whose platform list matches its
//! platform. Its answer is a pass (rows), a fail (no rows) or unknown (the query failed on the
//! host); only answers to policies the host was handed are taken in.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::ids::TeamId;

/// Prefix of a policy's query name in distributed reads and writes.
pub const POLICY_PREFIX: &str = "fleet_policy_query_";

/// Fleet's policy platform names (`platform` is a comma-separated list of them).
pub const POLICY_PLATFORMS: &[&str] = &["darwin", "windows", "linux", "chrome"];

/// A policy's query, as hosts are handed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyQuery {
    pub id: u64,
    /// `fleet_policy_query_<id>`.
    pub name: Arc<str>,
    pub sql: Arc<str>,
    /// Fleet's platform names the policy is for; empty means every platform.
    pub platforms: Box<[Box<str>]>,
    /// `None`: a global policy, run by every host; else only hosts of this team run it.
    pub team: Option<TeamId>,
}

impl PolicyQuery {
    /// `platform` is Fleet's comma-separated list (`darwin,linux`); empty means all.
    pub fn new(id: u64, sql: &str, platform: &str, team: Option<TeamId>) -> PolicyQuery {
        PolicyQuery {
            id,
            name: format!("{POLICY_PREFIX}{id}").into(),
            sql: sql.into(),
            platforms: platform_list(platform).map(Into::into).collect(),
            team,
        }
    }

    /// Whether a host of `team` on `platform` (osquery's name: `ubuntu`, `darwin`, …) runs
    /// this policy.
    pub fn applies_to(&self, team: Option<TeamId>, platform: &str) -> bool {
        if self.team.is_some() && self.team != team {
            return false;
        }
        self.platforms.is_empty()
            || self
                .platforms
                .iter()
                .any(|wanted| **wanted == *platform_family(platform))
    }
}

/// The names in Fleet's comma-separated platform list, trimmed, empty ones skipped.
fn platform_list(platform: &str) -> impl Iterator<Item = &str> {
    platform.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// The Fleet platform an osquery platform belongs to: `linux` for every Linux family
/// (`ubuntu`, `centos`, `rhel`, `debian`, …), else the platform itself.
pub fn platform_family(platform: &str) -> &str {
    match platform {
        "darwin" | "windows" | "chrome" | "freebsd" | "" => platform,
        _ => "linux",
    }
}

/// Whether a policy whose platform list is `policy_platform` (Fleet's comma-separated list,
/// empty: all) applies to a host on `host_platform`. What [`PolicyQuery::applies_to`] decides,
/// for a policy as the store holds it.
pub fn platform_matches(policy_platform: &str, host_platform: &str) -> bool {
    let family = platform_family(host_platform);
    let mut wanted = platform_list(policy_platform).peekable();
    wanted.peek().is_none() || wanted.any(|p| p == family)
}

/// What a host's answer to a policy means: `Some(true)` pass (rows), `Some(false)` fail (no
/// rows), `None` unknown (the query failed on the host, whatever it sent).
pub fn response(failed: bool, row_count: usize) -> Option<bool> {
    (!failed).then_some(row_count > 0)
}

/// The current set of policy queries and its version; a host whose last policy round saw an
/// older version runs its policies again at its next check-in.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub version: u64,
    pub queries: Vec<PolicyQuery>,
}

impl PolicySet {
    /// The policies a host of `team` on `platform` runs.
    pub fn for_host<'a>(
        &'a self,
        team: Option<TeamId>,
        platform: &'a str,
    ) -> impl Iterator<Item = &'a PolicyQuery> + 'a {
        self.queries
            .iter()
            .filter(move |q| q.applies_to(team, platform))
    }

    /// Whether policy `id` is in this set and applies to a host of `team` on `platform`: the
    /// only answers a host may give.
    pub fn applies(&self, id: u64, team: Option<TeamId>, platform: &str) -> bool {
        self.queries
            .iter()
            .any(|q| q.id == id && q.applies_to(team, platform))
    }
}

/// The policy queries every host actor reads; replaced as a whole.
#[derive(Default)]
pub struct Policies {
    current: RwLock<Arc<PolicySet>>,
    /// When [`replace`](Policies::replace) last ran (Unix seconds; 0: not since start). An
    /// answer another node took before then was to an older set.
    replaced_at: std::sync::atomic::AtomicI64,
}

impl Policies {
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.read().clone()
    }

    /// The current set, borrowed for a moment (no reference count touched).
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Arc<PolicySet>> {
        self.current.read()
    }

    /// Sets the policies as loaded at start, without making any host re-run them: hosts
    /// follow their own policy interval, so a restart causes no thundering herd.
    pub fn initialize(&self, queries: Vec<PolicyQuery>) {
        *self.current.write() = Arc::new(PolicySet {
            version: 0,
            queries,
        });
    }

    /// Replaces the policies; every host runs its policies again at its next check-in.
    pub fn replace(&self, queries: Vec<PolicyQuery>) {
        let mut current = self.current.write();
        let version = current.version + 1;
        *current = Arc::new(PolicySet { version, queries });
        self.replaced_at
            .store(crate::unix_now(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn replaced_at(&self) -> i64 {
        self.replaced_at.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_runs_global_policies_and_its_teams_on_its_platform() {
        let global = PolicyQuery::new(1, "SELECT 1", "", None);
        let linux = PolicyQuery::new(2, "SELECT 1", "linux", None);
        let mac_or_windows = PolicyQuery::new(3, "SELECT 1", "darwin, windows", None);
        let team = PolicyQuery::new(4, "SELECT 1", "", Some(TeamId(7)));
        assert!(global.applies_to(None, "ubuntu"));
        assert!(global.applies_to(Some(TeamId(7)), "windows"));
        assert!(linux.applies_to(None, "ubuntu") && linux.applies_to(None, "rhel"));
        assert!(!linux.applies_to(None, "darwin"));
        assert!(mac_or_windows.applies_to(None, "windows"));
        assert!(!mac_or_windows.applies_to(None, "centos"));
        assert!(team.applies_to(Some(TeamId(7)), "darwin"));
        assert!(
            !team.applies_to(None, "darwin"),
            "no team: global ones only"
        );
        assert!(!team.applies_to(Some(TeamId(8)), "darwin"));
        assert_eq!(&*team.name, "fleet_policy_query_4");
        let set = PolicySet {
            version: 1,
            queries: vec![global, linux, mac_or_windows, team],
        };
        let ids: Vec<u64> = set
            .for_host(Some(TeamId(7)), "ubuntu")
            .map(|q| q.id)
            .collect();
        assert_eq!(ids, vec![1, 2, 4]);
        assert!(set.applies(4, Some(TeamId(7)), "ubuntu"));
        assert!(!set.applies(3, Some(TeamId(7)), "ubuntu"), "not for linux");
        assert!(!set.applies(4, None, "ubuntu"), "not the host's team");
        assert!(!set.applies(9, None, "ubuntu"), "no such policy");
    }

    #[test]
    fn platform_lists_as_the_store_holds_them() {
        assert!(platform_matches("", "windows"));
        assert!(platform_matches("linux", "debian"));
        assert!(platform_matches("darwin,linux", "darwin"));
        assert!(!platform_matches("windows", "darwin"));
        assert!(!platform_matches("linux", "chrome"));
        assert!(platform_matches(" chrome ", "chrome"));
    }

    #[test]
    fn rows_pass_no_rows_fail_errors_are_unknown() {
        assert_eq!(response(false, 1), Some(true));
        assert_eq!(response(false, 0), Some(false));
        assert_eq!(response(true, 0), None);
        assert_eq!(response(true, 3), None);
    }

    #[test]
    fn replacing_bumps_the_version() {
        let policies = Policies::default();
        policies.initialize(vec![PolicyQuery::new(1, "SELECT 1", "", None)]);
        assert_eq!(policies.current().version, 0);
        policies.replace(vec![]);
        let set = policies.current();
        assert_eq!((set.version, set.queries.len()), (1, 0));
    }
}
