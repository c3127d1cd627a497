//! The software inventory of the simulated hosts: what they answer to Fleet's software detail
//! queries, and the OSV feed that matches it (see [`fixture`]).
//!
//! Fleet asks for software with four detail queries: `fleet_detail_query_software_linux`,
//! `_macos` and `_windows` (each behind a discovery query on `os_version.platform`) and
//! `fleet_detail_query_software_vscode_extensions` (behind a discovery query asking whether
//! osquery has the `vscode_extensions` table). Their SQL is a large `WITH cached_users AS (...)
//! SELECT ... UNION SELECT ...` the template answerer's small SQL evaluator cannot run, so they
//! are recognised by name, as Fleet's own osquery-perf does, and answered from the host's
//! package list.
//!
//! # Which packages a host has
//!
//! Each OS has a [`pool::Pool`] of titles (package names with versions): packages pinned at a
//! known-vulnerable or a fixed version, the real names of `catalog.txt`, and a synthetic tail.
//! A host takes every pinned title, then `per_host` titles in all (400 on Linux and 150 on
//! macOS and Windows unless `--software-per-host` says otherwise): about three quarters from
//! the real titles and the rest from the tail, each at one of the title's versions. All of it
//! is drawn from the host's seed, so a host reports the same list every round, and two runs
//! with the same `--seed` report the same fleet.
//!
//! A pinned package is at its vulnerable version on a host when the host's draw for the
//! package's group falls under [`pool::VULNERABLE_PER_MILLE`] (30 %). That draw depends on the
//! host's identity alone (not on the pool size or the number of packages), so
//! [`vulnerable_hosts`] can say exactly which host of a run carries which vulnerable package.

mod catalog;
pub mod fixture;
pub mod pool;

use std::sync::{Arc, OnceLock};

use rand::RngExt;

use crate::answer::{AnswerContext, QueryAnswer, QueryKind};
use crate::host::{HostProfile, SeedStream, fnv1a, host_identifier};
use crate::sql::Row;
use crate::template::OsTemplate;
use catalog::{Catalog, CatalogEntry};
use pool::{KNOWN_VULNERABLE, KnownVulnerable, Pool, Title, VULNERABLE_PER_MILLE};

/// Fleet's software detail query for Linux hosts.
pub const SOFTWARE_QUERY_LINUX: &str = "fleet_detail_query_software_linux";
/// Fleet's software detail query for macOS hosts.
pub const SOFTWARE_QUERY_MACOS: &str = "fleet_detail_query_software_macos";
/// Fleet's software detail query for Windows hosts.
pub const SOFTWARE_QUERY_WINDOWS: &str = "fleet_detail_query_software_windows";
/// Fleet's VS Code extensions query (all platforms, where the table exists).
pub const SOFTWARE_QUERY_VSCODE: &str = "fleet_detail_query_software_vscode_extensions";

/// Distinct (name, version) pairs per OS pool unless `--software-pool` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 10_000;
/// Packages per Linux host unless `--software-per-host` says otherwise.
pub const DEFAULT_PER_HOST_LINUX: usize = 400;
/// Packages per macOS or Windows host unless `--software-per-host` says otherwise.
pub const DEFAULT_PER_HOST_DESKTOP: usize = 150;

/// The error text of a failed software query: SQLite's message for an interrupted statement,
/// which osquery reports when its watchdog or a timeout stops a query.
pub const SOFTWARE_QUERY_ERROR: &str = "interrupted";

/// The osquery table a package is reported from (the row's `source` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `deb_packages` (Ubuntu).
    Deb,
    /// `rpm_packages` (Rocky Linux).
    Rpm,
    /// `python_packages`.
    Python,
    /// `npm_packages`.
    Npm,
    /// `apps` (macOS).
    Apps,
    /// `homebrew_packages` (macOS).
    Homebrew,
    /// `programs` (Windows).
    Programs,
    /// `chocolatey_packages` (Windows).
    Chocolatey,
    /// `vscode_extensions`.
    VscodeExtensions,
}

impl Source {
    /// Number of sources.
    pub const COUNT: usize = 9;

    /// The `source` column value: the osquery table name.
    pub fn table(self) -> &'static str {
        match self {
            Source::Deb => "deb_packages",
            Source::Rpm => "rpm_packages",
            Source::Python => "python_packages",
            Source::Npm => "npm_packages",
            Source::Apps => "apps",
            Source::Homebrew => "homebrew_packages",
            Source::Programs => "programs",
            Source::Chocolatey => "chocolatey_packages",
            Source::VscodeExtensions => "vscode_extensions",
        }
    }
}

/// How the simulated hosts' software behaves (`--software-per-host`, `--software-pool`,
/// `--software-fail-prob`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftwareOptions {
    /// Packages per host; `None`: 400 on Linux, 150 on macOS and Windows.
    pub per_host: Option<usize>,
    /// Distinct (name, version) pairs in each OS's pool.
    pub pool_size: usize,
    /// Probability that a platform software query fails in a round (status 1).
    pub fail_prob: f64,
}

impl Default for SoftwareOptions {
    fn default() -> Self {
        SoftwareOptions {
            per_host: None,
            pool_size: DEFAULT_POOL_SIZE,
            fail_prob: 0.0,
        }
    }
}

impl SoftwareOptions {
    /// Packages a host of `template` carries.
    pub fn per_host_for(&self, template: OsTemplate) -> usize {
        self.per_host.unwrap_or(if template.is_linux() {
            DEFAULT_PER_HOST_LINUX
        } else {
            DEFAULT_PER_HOST_DESKTOP
        })
    }
}

/// One installed package of a host: a title of the pool at one of its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package<'a> {
    /// The title (source, name, architecture / bundle id / publisher).
    pub title: &'a Title,
    /// The installed version (`version-release` for rpm).
    pub version: &'a str,
}

impl Package<'_> {
    /// The `version` column: for rpm the part before the release.
    pub fn version_column(&self) -> &str {
        split_rpm(self.title.source, self.version).0
    }

    /// The `release` column: the rpm release, `""` for other sources.
    pub fn release_column(&self) -> &str {
        split_rpm(self.title.source, self.version).1
    }
}

fn split_rpm(source: Source, version: &str) -> (&str, &str) {
    match (source, version.rsplit_once('-')) {
        (Source::Rpm, Some((v, r))) => (v, r),
        _ => (version, ""),
    }
}

/// The per-OS pools and the options; shared by every host of a run.
#[derive(Debug)]
pub struct Software {
    options: SoftwareOptions,
    /// Built on first use, one per [`OsTemplate::ALL`] entry.
    pools: [OnceLock<Pool>; 4],
}

fn template_index(t: OsTemplate) -> usize {
    OsTemplate::ALL
        .iter()
        .position(|&x| x == t)
        .expect("every template is in ALL")
}

/// `k` distinct indices of `0..n` in increasing order (Knuth's selection sampling).
fn choose(s: &mut SeedStream, n: usize, k: usize) -> Vec<usize> {
    let k = k.min(n);
    let mut out = Vec::with_capacity(k);
    for i in 0..n {
        let left = (n - i) as u64;
        let wanted = (k - out.len()) as u64;
        if wanted == 0 {
            break;
        }
        if s.below(left) < wanted {
            out.push(i);
        }
    }
    out
}

impl Software {
    /// Software with `options`.
    pub fn new(options: SoftwareOptions) -> Self {
        Software {
            options,
            pools: Default::default(),
        }
    }

    /// The default software, shared by every answerer built without one.
    pub fn shared_default() -> Arc<Software> {
        static DEFAULT: OnceLock<Arc<Software>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| Arc::new(Software::new(SoftwareOptions::default())))
            .clone()
    }

    /// The options.
    pub fn options(&self) -> SoftwareOptions {
        self.options
    }

    /// The pool of `template`.
    pub fn pool(&self, template: OsTemplate) -> &Pool {
        self.pools[template_index(template)]
            .get_or_init(|| Pool::build(template, self.options.pool_size))
    }

    /// The packages installed on the host: pinned ones first, then the rest in pool order.
    pub fn host_packages(&self, profile: &HostProfile) -> Vec<Package<'_>> {
        let pool = self.pool(profile.template);
        let per_host = self.options.per_host_for(profile.template);
        let mut s = profile.stream("software");
        let mut out = Vec::with_capacity(per_host.max(pool.pinned));
        for title in &pool.titles[..pool.pinned] {
            let k = &KNOWN_VULNERABLE[title.pinned.expect("pinned title")];
            let version = if group_is_vulnerable(profile, k.group) {
                &title.versions[0]
            } else {
                &title.versions[1]
            };
            out.push(Package { title, version });
        }
        let remaining = per_host.saturating_sub(pool.pinned);
        let real = pool.tail_start - pool.pinned;
        let tail = pool.titles.len() - pool.tail_start;
        let from_real = (remaining * 3 / 4).min(real);
        let from_tail = (remaining - from_real).min(tail);
        let picks = choose(&mut s, real, from_real)
            .into_iter()
            .map(|i| pool.pinned + i)
            .chain(
                choose(&mut s, tail, from_tail)
                    .into_iter()
                    .map(|i| pool.tail_start + i),
            )
            .collect::<Vec<_>>();
        for i in picks {
            let title = &pool.titles[i];
            // Newer versions are more common: the later of two draws.
            let n = title.versions.len() as u64;
            let v = s.below(n).max(s.below(n)) as usize;
            out.push(Package {
                title,
                version: &title.versions[v],
            });
        }
        out
    }

    /// The rows of the host's platform software query (Fleet's columns for its OS).
    pub fn software_rows(&self, profile: &HostProfile) -> Vec<Row> {
        self.host_packages(profile)
            .iter()
            .map(|p| package_row(profile, p))
            .collect()
    }

    /// The answer to a software detail query, or `None` when `name` is not one. A platform
    /// query fails (status 1) with probability `fail_prob`, in distributed reads only.
    pub fn answer(
        &self,
        name: &str,
        profile: &HostProfile,
        ctx: &AnswerContext<'_>,
    ) -> Option<QueryAnswer> {
        match name {
            SOFTWARE_QUERY_LINUX | SOFTWARE_QUERY_MACOS | SOFTWARE_QUERY_WINDOWS => {
                let p = self.options.fail_prob;
                if ctx.kind == QueryKind::Distributed
                    && p > 0.0
                    && rand::rng().random_bool(p.min(1.0))
                {
                    return Some(QueryAnswer::failed(SOFTWARE_QUERY_ERROR));
                }
                Some(QueryAnswer::rows(self.software_rows(profile)))
            }
            SOFTWARE_QUERY_VSCODE => Some(QueryAnswer::rows(vscode_software_rows(profile))),
            _ => None,
        }
    }
}

/// Whether the host carries the vulnerable versions of a [`KnownVulnerable`] group.
pub fn group_is_vulnerable(profile: &HostProfile, group: &str) -> bool {
    profile
        .stream(&format!("software-vulnerable:{group}"))
        .below(1000)
        < VULNERABLE_PER_MILLE
}

/// The known-vulnerable packages the host carries at their vulnerable version.
pub fn vulnerable_packages(profile: &HostProfile) -> Vec<&'static KnownVulnerable> {
    KNOWN_VULNERABLE
        .iter()
        .filter(|k| k.templates.contains(&profile.template))
        .filter(|k| group_is_vulnerable(profile, k.group))
        .collect()
}

/// The known-vulnerable packages, as (name, installed version), of host number `host_index`
/// of a `flotilla-loadtest` run with `--seed seed`, when that host runs `template` (with
/// `--os a,b,c` host `i` runs the `i % 3`-th). For rpm packages the version is
/// `version-release`, as the OSV ranges compare it.
///
/// This depends on nothing else (not on `--hosts`, `--software-pool` or
/// `--software-per-host`), so a test can predict exactly how many hosts a vulnerability of the
/// fixture (`write-osv-fixture`) affects. The padded synthetic records hit tail packages; for
/// those, compare [`Software::host_packages`] with the feed.
pub fn vulnerable_hosts(
    template: OsTemplate,
    host_index: usize,
    seed: u64,
) -> Vec<(String, String)> {
    let profile = HostProfile::new(template, &host_identifier(seed, host_index), "5.23.1");
    vulnerable_packages(&profile)
        .into_iter()
        .map(|k| (k.name.to_string(), k.vulnerable.to_string()))
        .collect()
}

/// Where python packages live on each OS.
fn python_path(t: OsTemplate) -> &'static str {
    match t {
        OsTemplate::Ubuntu => "/usr/lib/python3/dist-packages",
        OsTemplate::Rocky => "/usr/lib/python3.9/site-packages",
        OsTemplate::MacOs => "/opt/homebrew/lib/python3.12/site-packages",
        OsTemplate::Windows => "C:\\Program Files\\Python311\\Lib\\site-packages",
    }
}

fn installed_path(profile: &HostProfile, p: &Package<'_>) -> String {
    let t = profile.template;
    let name = &p.title.name;
    match p.title.source {
        Source::Deb | Source::Rpm => String::new(),
        Source::Python => python_path(t).to_string(),
        Source::Npm => match t {
            OsTemplate::MacOs => format!("/opt/homebrew/lib/node_modules/{name}"),
            OsTemplate::Windows => format!("C:\\Program Files\\nodejs\\node_modules\\{name}"),
            _ => format!("/usr/lib/node_modules/{name}"),
        },
        Source::Apps => format!("/Applications/{name}"),
        Source::Homebrew => format!("/opt/homebrew/Cellar/{name}/{}", p.version),
        Source::Programs => {
            let dir = name
                .split([' ', '('])
                .next()
                .filter(|d| !d.is_empty())
                .unwrap_or(name);
            format!("C:\\Program Files\\{dir}")
        }
        Source::Chocolatey => format!("C:\\ProgramData\\chocolatey\\lib\\{name}"),
        Source::VscodeExtensions => String::new(),
    }
}

/// When the host last opened an app: within the 30 days before it booted, as osquery's
/// `apps.last_opened_time` (a float of seconds).
fn last_opened_at(profile: &HostProfile, name: &str) -> String {
    let mut s = profile.stream(name);
    let t = profile.boot_time.saturating_sub(s.below(30 * 86_400));
    format!("{t}.{:06}", s.below(1_000_000))
}

fn row_of<const N: usize>(pairs: [(&str, String); N]) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One row of the platform software query, with Fleet's columns for the host's OS.
fn package_row(profile: &HostProfile, p: &Package<'_>) -> Row {
    let t = &p.title;
    let source = t.source.table().to_string();
    let name = t.name.clone();
    let version = p.version_column().to_string();
    let path = installed_path(profile, p);
    match profile.template {
        OsTemplate::Ubuntu | OsTemplate::Rocky => {
            let (arch, vendor) = match t.source {
                Source::Deb => (t.extra.clone(), String::new()),
                Source::Rpm => (
                    t.extra.clone(),
                    "Rocky Enterprise Software Foundation".to_string(),
                ),
                _ => (String::new(), String::new()),
            };
            row_of([
                ("name", name),
                ("version", version),
                ("source", source),
                ("release", p.release_column().to_string()),
                ("vendor", vendor),
                ("arch", arch),
                ("extension_id", String::new()),
                ("browser", String::new()),
                ("installed_path", path),
            ])
        }
        OsTemplate::MacOs => {
            let (bundle, opened) = match t.source {
                Source::Apps => (t.extra.clone(), last_opened_at(profile, &t.name)),
                _ => (String::new(), String::new()),
            };
            row_of([
                ("name", name),
                ("version", version),
                ("bundle_identifier", bundle),
                ("source", source),
                ("vendor", String::new()),
                ("last_opened_at", opened),
                ("installed_path", path),
                ("extension_id", String::new()),
                ("browser", String::new()),
            ])
        }
        OsTemplate::Windows => {
            let vendor = match t.source {
                Source::Programs => t.extra.clone(),
                _ => String::new(),
            };
            row_of([
                ("name", name),
                ("version", version),
                ("source", source),
                ("vendor", vendor),
                ("installed_path", path),
                ("extension_id", String::new()),
                ("browser", String::new()),
            ])
        }
    }
}

/// The user whose home holds the host's VS Code extensions.
fn vscode_user(profile: &HostProfile) -> &'static str {
    const USERS: [&str; 6] = ["alex", "sam", "jordan", "taylor", "morgan", "casey"];
    USERS[profile.stream("vscode-user").below(USERS.len() as u64) as usize]
}

fn extensions_dir(profile: &HostProfile) -> String {
    let user = vscode_user(profile);
    match profile.template {
        OsTemplate::MacOs => format!("/Users/{user}/.vscode/extensions"),
        OsTemplate::Windows => format!("C:\\Users\\{user}\\.vscode\\extensions"),
        _ => format!("/home/{user}/.vscode/extensions"),
    }
}

/// The host's VS Code extensions: 3 to 8 of the catalog's, none where osquery has no
/// `vscode_extensions` table.
fn vscode_extensions(profile: &HostProfile) -> Vec<(&'static CatalogEntry, &'static str)> {
    if !profile
        .template
        .has_vscode_extensions(&profile.osquery_version)
    {
        return Vec::new();
    }
    let entries = Catalog::get().entries(Source::VscodeExtensions);
    let mut s = profile.stream("vscode");
    let count = 3 + s.below(6) as usize;
    choose(&mut s, entries.len(), count)
        .into_iter()
        .map(|i| {
            let e = &entries[i];
            let v = s.below(e.versions.len() as u64) as usize;
            (e, e.versions[v].as_str())
        })
        .collect()
}

/// The marketplace id of an extension (a UUID derived from its name).
fn extension_uuid(name: &str) -> String {
    SeedStream::new(fnv1a(name)).uuid().hyphenated().to_string()
}

/// Rows of Fleet's VS Code extensions query.
pub fn vscode_software_rows(profile: &HostProfile) -> Vec<Row> {
    let dir = extensions_dir(profile);
    let sep = if profile.template == OsTemplate::Windows {
        '\\'
    } else {
        '/'
    };
    vscode_extensions(profile)
        .into_iter()
        .map(|(e, version)| {
            row_of([
                ("name", e.name.clone()),
                ("version", version.to_string()),
                ("bundle_identifier", String::new()),
                ("extension_id", extension_uuid(&e.name)),
                ("browser", String::new()),
                ("source", Source::VscodeExtensions.table().to_string()),
                ("vendor", e.extra.clone()),
                ("last_opened_at", String::new()),
                ("installed_path", format!("{dir}{sep}{}-{version}", e.name)),
            ])
        })
        .collect()
}

/// Rows of osquery's own `vscode_extensions` table on the host (for live queries).
pub fn vscode_table_rows(profile: &HostProfile) -> Vec<Row> {
    let dir = extensions_dir(profile);
    let uid = if profile.template == OsTemplate::MacOs {
        "501"
    } else {
        "1000"
    };
    vscode_extensions(profile)
        .into_iter()
        .map(|(e, version)| {
            let publisher_id = e.name.split('.').next().unwrap_or("").to_string();
            row_of([
                ("name", e.name.clone()),
                ("uuid", extension_uuid(&e.name)),
                ("version", version.to_string()),
                ("path", format!("{dir}/{}-{version}", e.name)),
                ("publisher", e.extra.clone()),
                ("publisher_id", publisher_id),
                (
                    "installed_at",
                    profile.boot_time.saturating_sub(86_400).to_string(),
                ),
                ("prerelease", "0".into()),
                ("uid", uid.into()),
                ("vscode_edition", "vscode".into()),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests;
