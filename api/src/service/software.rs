//! The software jobs: keeping host counts and vulnerability findings current.
//!
//! - **The feed.** With `--vulnerability-feed DIR`, every OSV file in the directory (and the
//!   optional KEV and EPSS files) is read at start and again whenever a file in it changes
//!   (polled every tick: name, size, modification time). A file that fails to parse is
//!   named in the log and in `/metrics` and skipped; the rest loads. No network is used.
//! - **The match** runs per distinct package, not per host: each `software` row of a matched
//!   source against its ecosystem (for distribution packages, the ecosystem of each OS
//!   release it was seen on), when the feed changed or new software reached the store since
//!   the last match. Findings are written as a difference, and the counts recomputed.
//! - **The counts** (hosts per version, title and CVE, per team) are recomputed when host
//!   software changed since the last count, at most once per `counts_interval` (at 100,000
//!   hosts a recount reads for about ten seconds), and after every match. New software is
//!   matched on the same schedule; a changed feed at once.
//! - **One node at a time.** Each tick first takes (or renews) the relay's `software` lock;
//!   a node that does not hold it only keeps its own copy of the feed fresh (for
//!   `GET /vulnerabilities/{cve}` of CVEs nothing is affected by). Nothing here runs on the
//!   check-in path: the work is reads plus a few short write transactions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flotilla_engine::relay::Relay;
use flotilla_storage::admin::{CveMeta, MatchableSoftware, SoftwareCve, SoftwareStore};
use flotilla_vulns::{Ecosystem, Feed, LoadReport, Package};
use parking_lot::RwLock;

/// The sources whose packages have advisories to match against.
pub const MATCHED_SOURCES: &[&str] = &[
    "deb_packages",
    "rpm_packages",
    "python_packages",
    "npm_packages",
    "homebrew_packages",
];

/// Splits a host's `os_version` (`Ubuntu 22.04.4 LTS`, `Rocky Linux 9.3 (Blue Onyx)`) into
/// the OS name and its version: the version starts at the first word that starts with a
/// digit.
pub fn split_os_version(full: &str) -> (&str, &str) {
    let mut at = None;
    for (i, _) in full.match_indices(' ') {
        if full[i + 1..].starts_with(|c: char| c.is_ascii_digit()) {
            at = Some(i);
            break;
        }
    }
    match at {
        Some(i) => (full[..i].trim(), full[i + 1..].trim()),
        None if full.starts_with(|c: char| c.is_ascii_digit()) => ("", full.trim()),
        None => (full.trim(), ""),
    }
}

/// The loaded feed and what loading it found.
#[derive(Default)]
struct FeedState {
    feed: Option<Arc<Feed>>,
    report: Option<Arc<LoadReport>>,
    /// Digest of the files' names, sizes and times, to see a change.
    fingerprint: String,
}

/// What `/metrics` shows of the jobs.
#[derive(Default)]
pub struct SoftwareJobStats {
    pub matches: AtomicU64,
    pub match_failures: AtomicU64,
    /// Milliseconds the last match took, reading and writing included.
    pub last_match_ms: AtomicU64,
    pub counts: AtomicU64,
    pub last_counts_ms: AtomicU64,
    pub feed_loads: AtomicU64,
}

/// The feed, the schedule and the stores the jobs use.
pub struct SoftwareJobs {
    store: Arc<dyn SoftwareStore>,
    relay: Arc<dyn Relay>,
    feed_dir: Option<PathBuf>,
    feed: RwLock<FeedState>,
    tick: Duration,
    counts_interval: Duration,
    last_counts: parking_lot::Mutex<Option<Instant>>,
    pub stats: SoftwareJobStats,
}

/// What one tick did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub held_lock: bool,
    pub feed_reloaded: bool,
    pub matched: bool,
    pub counted: bool,
}

impl SoftwareJobs {
    pub fn new(
        store: Arc<dyn SoftwareStore>,
        relay: Arc<dyn Relay>,
        feed_dir: Option<PathBuf>,
        tick: Duration,
        counts_interval: Duration,
    ) -> Arc<SoftwareJobs> {
        Arc::new(SoftwareJobs {
            store,
            relay,
            feed_dir,
            feed: RwLock::new(FeedState::default()),
            tick,
            counts_interval,
            last_counts: parking_lot::Mutex::new(None),
            stats: SoftwareJobStats::default(),
        })
    }

    /// The feed as last loaded, if one is configured and loaded.
    pub fn feed(&self) -> Option<Arc<Feed>> {
        self.feed.read().feed.clone()
    }

    /// What the last load of the feed found.
    pub fn feed_report(&self) -> Option<Arc<LoadReport>> {
        self.feed.read().report.clone()
    }

    /// Runs the jobs every tick until the process ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(jobs.tick);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = jobs.run_once().await {
                    tracing::warn!(%error, "software jobs failed; will retry");
                }
            }
        })
    }

    /// Reloads the feed if its files changed. True if it was (re)loaded.
    pub async fn refresh_feed(&self) -> bool {
        let Some(dir) = self.feed_dir.clone() else {
            return false;
        };
        let listing = dir.clone();
        let fingerprint = tokio::task::spawn_blocking(move || {
            let files = flotilla_vulns::fingerprint(&listing);
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            for (path, len, modified) in &files {
                hasher.update(path.to_string_lossy().as_bytes());
                hasher.update(&len.to_le_bytes());
                let nanos = modified
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                hasher.update(&nanos.to_le_bytes());
            }
            format!("{:016x}", hasher.digest())
        })
        .await
        .unwrap_or_default();
        if fingerprint == self.feed.read().fingerprint && self.feed.read().feed.is_some() {
            return false;
        }
        let started = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || Feed::load_dir(&dir)).await;
        let Ok((feed, report)) = loaded else {
            tracing::error!("loading the vulnerability feed panicked");
            return false;
        };
        for bad in report.errors() {
            tracing::warn!(
                file = %bad.name,
                entry = bad.entry.as_deref().unwrap_or(""),
                error = bad.error.as_deref().unwrap_or(""),
                "vulnerability feed file skipped"
            );
        }
        tracing::info!(
            records = report.records,
            withdrawn = report.withdrawn,
            cves = feed.cve_count(),
            kev = report.kev,
            epss = report.epss,
            unknown_ecosystems = report.unknown_ecosystems.values().sum::<usize>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vulnerability feed loaded"
        );
        self.stats.feed_loads.fetch_add(1, Ordering::Relaxed);
        *self.feed.write() = FeedState {
            feed: Some(Arc::new(feed)),
            report: Some(Arc::new(report)),
            fingerprint,
        };
        true
    }

    /// One tick: the feed, then (holding the lock) the match and the counts as needed.
    pub async fn run_once(&self) -> anyhow::Result<TickReport> {
        let mut report = TickReport {
            feed_reloaded: self.refresh_feed().await,
            ..TickReport::default()
        };
        // Held for several ticks: a node that stalls loses it to another.
        let ttl = self.tick * 3 + Duration::from_secs(30);
        report.held_lock = self.relay.hold_lock("software", ttl).await?;
        if !report.held_lock {
            return Ok(report);
        }
        let state = self.store.software_state().await?;
        let (feed, fingerprint) = {
            let feed = self.feed.read();
            (feed.feed.clone(), feed.fingerprint.clone())
        };
        // New software waits for the counts' interval, as the counts do (a match recounts):
        // during a rollout, one match and one recount per interval, not one per tick. A new
        // feed is matched at once.
        let due = self
            .last_counts
            .lock()
            .is_none_or(|at| at.elapsed() >= self.counts_interval);
        if let Some(feed) = feed
            && (fingerprint != state.feed_fingerprint
                || (state.generation > state.matched_generation && due))
        {
            let started = Instant::now();
            match self.match_all(feed, &fingerprint, state.generation).await {
                Ok(()) => {
                    self.stats.matches.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .last_match_ms
                        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    report.matched = true;
                }
                Err(error) => {
                    self.stats.match_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        if report.matched || (state.generation > state.counted_generation && due) {
            let started = Instant::now();
            self.store
                .refresh_software_counts(state.generation, flotilla_engine::unix_now())
                .await?;
            *self.last_counts.lock() = Some(Instant::now());
            self.stats.counts.fetch_add(1, Ordering::Relaxed);
            self.stats
                .last_counts_ms
                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            report.counted = true;
        }
        Ok(report)
    }

    async fn match_all(
        &self,
        feed: Arc<Feed>,
        fingerprint: &str,
        generation: i64,
    ) -> anyhow::Result<()> {
        let software = self.store.matchable_software(MATCHED_SOURCES).await?;
        let matched = software.len();
        let started = Instant::now();
        let (found, meta) =
            tokio::task::spawn_blocking(move || match_software(&feed, &software)).await?;
        let matching_ms = started.elapsed().as_millis() as u64;
        let written = self
            .store
            .replace_software_cves(
                &found,
                &meta,
                fingerprint,
                generation,
                flotilla_engine::unix_now(),
            )
            .await?;
        tracing::info!(
            packages = matched,
            findings = found.len(),
            cves = meta.len(),
            added = written.added,
            removed = written.removed,
            matching_ms,
            "vulnerability match done"
        );
        Ok(())
    }
}

/// The ecosystems a stored package is matched in.
fn ecosystems(software: &MatchableSoftware) -> Vec<Ecosystem> {
    let mut found: Vec<Ecosystem> = if software.os.is_empty() {
        Ecosystem::for_software(&software.source, "", "", "")
            .into_iter()
            .collect()
    } else {
        software
            .os
            .iter()
            .filter_map(|(platform, os_version)| {
                let (name, version) = split_os_version(os_version);
                Ecosystem::for_software(&software.source, platform, name, version)
            })
            .collect()
    };
    found.sort_by_key(Ecosystem::key);
    found.dedup();
    found
}

/// Every finding for `software` in `feed`, and the metadata of each CVE found.
pub fn match_software(
    feed: &Feed,
    software: &[MatchableSoftware],
) -> (Vec<SoftwareCve>, Vec<(String, CveMeta)>) {
    let mut found: BTreeMap<(u64, String), SoftwareCve> = BTreeMap::new();
    for s in software {
        for ecosystem in ecosystems(s) {
            let version = flotilla_vulns::host_version(&ecosystem, &s.version, &s.release, None);
            let package = Package {
                ecosystem: &ecosystem,
                name: &s.name,
                version: &version,
            };
            for hit in feed.matches(&package) {
                found
                    .entry((s.id, hit.cve.clone()))
                    .or_insert_with(|| SoftwareCve {
                        software_id: s.id,
                        cve: hit.cve,
                        osv_id: hit.osv_id,
                        resolved_in_version: hit.resolved_in_version,
                    });
            }
        }
    }
    let mut meta: BTreeMap<String, CveMeta> = BTreeMap::new();
    for finding in found.values() {
        meta.entry(finding.cve.clone()).or_insert_with(|| {
            feed.cve(&finding.cve)
                .map(|m| CveMeta {
                    cvss_score: m.cvss_score,
                    epss_probability: m.epss_probability,
                    cisa_known_exploit: m.cisa_known_exploit,
                    published: m.published.map(|p| p.timestamp()),
                    description: m.description.clone(),
                })
                .unwrap_or_default()
        });
    }
    (found.into_values().collect(), meta.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_versions_split_into_name_and_version() {
        assert_eq!(
            split_os_version("Ubuntu 22.04.4 LTS"),
            ("Ubuntu", "22.04.4 LTS")
        );
        assert_eq!(
            split_os_version("Rocky Linux 9.3 (Blue Onyx)"),
            ("Rocky Linux", "9.3 (Blue Onyx)")
        );
        assert_eq!(
            split_os_version("Debian GNU/Linux 12 (bookworm)"),
            ("Debian GNU/Linux", "12 (bookworm)")
        );
        assert_eq!(split_os_version("macOS 14.4.1"), ("macOS", "14.4.1"));
        assert_eq!(split_os_version("Arch Linux"), ("Arch Linux", ""));
    }

    #[test]
    fn the_fixture_feed_matches_distribution_and_language_packages() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vulns/tests/fixtures/feed");
        let (feed, _) = Feed::load_dir(&dir);
        let ubuntu = ("ubuntu".to_owned(), "Ubuntu 22.04.4 LTS".to_owned());
        let software = |id, name: &str, version: &str, source: &str, os: Vec<(String, String)>| {
            MatchableSoftware {
                id,
                name: name.into(),
                version: version.into(),
                release: String::new(),
                source: source.into(),
                os,
            }
        };
        let (found, meta) = match_software(
            &feed,
            &[
                software(
                    1,
                    "curl",
                    "7.81.0-1ubuntu1.13",
                    "deb_packages",
                    vec![ubuntu.clone()],
                ),
                software(2, "Jinja2", "3.1.2", "python_packages", vec![]),
                // Not on any OS the feed covers: nothing to match it against.
                software(3, "curl", "7.81.0-1ubuntu1.13", "deb_packages", vec![]),
            ],
        );
        assert!(found.iter().any(|f| f.software_id == 1));
        assert!(found.iter().any(|f| f.software_id == 2));
        assert!(!found.iter().any(|f| f.software_id == 3));
        assert!(found.iter().all(|f| f.cve.starts_with("CVE-")));
        assert_eq!(
            meta.len(),
            found
                .iter()
                .map(|f| &f.cve)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
    }
}
