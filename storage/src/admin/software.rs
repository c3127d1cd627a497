//! [`SoftwareStore`] for [`SqlStore`]: the software lists, a host's software, the
//! vulnerabilities and OS versions, and the two jobs' writes (counts, match results).
//!
//! Lists never count at read time: they join the count tables the counts job fills
//! (`software_host_counts`, `software_title_host_counts`, `cve_host_counts`; team 0 is every
//! host), so a page costs the same at 100 hosts as at 100,000. The counts job reads with
//! `GROUP BY` over the covering index of `host_software` and writes the results in one short
//! transaction.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::hosts::push_scope;
use crate::admin::{
    CveMeta, HostScope, HostSoftware, MatchWrite, MatchableSoftware, Order, OsVersion, Page,
    SoftwareCve, SoftwareListFilter, SoftwareState, SoftwareStore, SoftwareTitle, SoftwareVersion,
    SoftwareVulnerability, TitleVersion, Vulnerability, VulnerabilityFilter,
};
use crate::common::{like_pattern, store_error};
use crate::rows::ModelRow;
use crate::sql::{Db, Dialect, Query, Row, query};

/// Rows per multi-row `INSERT` of the jobs.
const ROWS_PER_INSERT: usize = 500;

fn release_column(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "s.\"release\"",
        Dialect::Mysql => "s.`release`",
    }
}

/// The team column value of a count row: 0 for every host.
fn team_key(team: Option<TeamId>) -> i64 {
    team.map_or(0, |t| t.0 as i64)
}

fn software_columns(d: Dialect) -> String {
    format!(
        "s.id, s.title_id, s.name, s.version, s.source, s.bundle_identifier, s.extension_id, \
         s.browser, {} AS release_name, s.vendor, s.arch",
        release_column(d)
    )
}

fn version_row(row: &Row, hosts_count: u64) -> Result<SoftwareVersion, sqlx::Error> {
    Ok(SoftwareVersion {
        id: row.id("id")?,
        title_id: row.id("title_id")?,
        name: row.text("name")?,
        version: row.text("version")?,
        source: row.text("source")?,
        bundle_identifier: row.text("bundle_identifier")?,
        extension_id: row.text("extension_id")?,
        browser: row.text("browser")?,
        release: row.text("release_name")?,
        vendor: row.text("vendor")?,
        arch: row.text("arch")?,
        hosts_count,
        vulnerabilities: Vec::new(),
    })
}

fn meta_row(row: &Row) -> Result<CveMeta, sqlx::Error> {
    Ok(CveMeta {
        cvss_score: row.opt_real("cvss_score")?,
        epss_probability: row.opt_real("epss_probability")?,
        cisa_known_exploit: row.opt_flag("cisa_known_exploit")?.unwrap_or(false),
        published: row.opt_int("published")?,
        description: row.opt_text("description")?,
    })
}

/// Appends the `WHERE` parts of a software list for versions aliased `s`.
fn push_software_filter(list: &mut Query<'_>, d: Dialect, filter: &SoftwareListFilter) {
    if filter.vulnerable {
        list.push(" AND EXISTS (SELECT 1 FROM software_cve sc WHERE sc.software_id = s.id)");
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let pattern = like_pattern(search.trim());
        list.push(" AND (s.name LIKE ")
            .push_bind(pattern.clone())
            .push(d.like_end())
            .push(" OR s.version LIKE ")
            .push_bind(pattern.clone())
            .push(d.like_end())
            .push(" OR EXISTS (SELECT 1 FROM software_cve sc WHERE sc.software_id = s.id AND sc.cve LIKE ")
            .push_bind(pattern)
            .push(d.like_end())
            .push("))");
    }
    let severity = filter.min_cvss.is_some() || filter.max_cvss.is_some() || filter.exploit;
    if severity {
        list.push(
            " AND EXISTS (SELECT 1 FROM software_cve sc JOIN cve_meta m ON m.cve = sc.cve \
             WHERE sc.software_id = s.id",
        );
        if let Some(min) = filter.min_cvss {
            list.push(" AND m.cvss_score >= ").push_bind(min);
        }
        if let Some(max) = filter.max_cvss {
            list.push(" AND m.cvss_score <= ").push_bind(max);
        }
        if filter.exploit {
            list.push(" AND m.cisa_known_exploit = 1");
        }
        list.push(")");
    }
}

/// The ordering expression of one of [`crate::admin::SOFTWARE_ORDER_KEYS`].
fn software_order(key: &str) -> Option<&'static str> {
    Some(match key {
        "name" => "s.name",
        "id" => "s.id",
        "hosts_count" => "c.hosts_count",
        "cvss_score" => {
            "(SELECT MAX(m.cvss_score) FROM software_cve sc JOIN cve_meta m ON m.cve = sc.cve \
             WHERE sc.software_id = s.id)"
        }
        "epss_probability" => {
            "(SELECT MAX(m.epss_probability) FROM software_cve sc JOIN cve_meta m \
             ON m.cve = sc.cve WHERE sc.software_id = s.id)"
        }
        "cve_published" => {
            "(SELECT MAX(m.published) FROM software_cve sc JOIN cve_meta m ON m.cve = sc.cve \
             WHERE sc.software_id = s.id)"
        }
        "cisa_known_exploit" => {
            "(SELECT MAX(m.cisa_known_exploit) FROM software_cve sc JOIN cve_meta m \
             ON m.cve = sc.cve WHERE sc.software_id = s.id)"
        }
        _ => return None,
    })
}

fn order_clause(expression: &str, descending: bool, tiebreak: &str) -> String {
    let direction = if descending { " DESC" } else { " ASC" };
    // NULLs (no score) last whichever the direction, as Fleet's lists show them.
    format!(" ORDER BY ({expression}) IS NULL, {expression}{direction}, {tiebreak}{direction}")
}

fn limit(list: &mut Query<'_>, page: Page) {
    list.push(" LIMIT ")
        .push_bind(page.limit.min(i64::MAX as u64))
        .push(" OFFSET ")
        .push_bind(page.offset.min(i64::MAX as u64));
}

/// Each version's vulnerabilities, CVE order.
async fn vulnerabilities_of(
    db: &Db,
    ids: &[u64],
) -> Result<HashMap<u64, Vec<SoftwareVulnerability>>, sqlx::Error> {
    let mut found: HashMap<u64, Vec<SoftwareVulnerability>> = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let mut select = query(
        "SELECT sc.software_id, sc.cve, sc.resolved_in_version, m.cvss_score, \
         m.epss_probability, m.cisa_known_exploit, m.published, m.description \
         FROM software_cve sc LEFT JOIN cve_meta m ON m.cve = sc.cve WHERE sc.software_id IN ",
    );
    select.push_id_set(db.dialect(), ids.iter().copied());
    select.push(" ORDER BY sc.software_id, sc.cve");
    for row in select.fetch_all(db).await? {
        found
            .entry(row.id("software_id")?)
            .or_default()
            .push(SoftwareVulnerability {
                cve: row.text("cve")?,
                resolved_in_version: row.opt_text("resolved_in_version")?,
                meta: meta_row(&row)?,
            });
    }
    Ok(found)
}

async fn with_vulnerabilities(
    db: &Db,
    mut versions: Vec<SoftwareVersion>,
) -> Result<Vec<SoftwareVersion>, sqlx::Error> {
    let ids: Vec<u64> = versions.iter().map(|v| v.id).collect();
    let mut found = vulnerabilities_of(db, &ids).await?;
    for version in &mut versions {
        version.vulnerabilities = found.remove(&version.id).unwrap_or_default();
    }
    Ok(versions)
}

/// A stable id for an OS version: the same platform and name always give the same id (53
/// bits, so JavaScript clients read it exactly).
pub(crate) fn os_version_id(platform: &str, name: &str) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(platform.as_bytes());
    hasher.update(&[0]);
    hasher.update(name.as_bytes());
    (hasher.digest() & ((1 << 53) - 1)).max(1)
}

#[async_trait]
impl SoftwareStore for SqlStore {
    async fn software_versions(
        &self,
        filter: &SoftwareListFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<SoftwareVersion>, u64), StoreError> {
        let d = self.db.dialect();
        let expression = software_order(&order.key).ok_or_else(|| {
            StoreError::Data(format!("unknown software order key `{}`", order.key))
        })?;
        let from = " FROM software s JOIN software_host_counts c ON c.software_id = s.id \
                    AND c.team_id = ";
        let mut list = query(format!(
            "SELECT {}, c.hosts_count{from}",
            software_columns(d)
        ));
        list.push_bind(team_key(filter.team))
            .push(" WHERE c.hosts_count > 0");
        push_software_filter(&mut list, d, filter);
        list.push(&order_clause(expression, order.descending, "s.id"));
        limit(&mut list, page);
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        let versions = rows
            .iter()
            .map(|row| version_row(row, row.int("hosts_count")? as u64))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let versions = with_vulnerabilities(&self.db, versions)
            .await
            .map_err(store_error)?;
        let mut count = query(format!("SELECT COUNT(*) AS n{from}"));
        count
            .push_bind(team_key(filter.team))
            .push(" WHERE c.hosts_count > 0");
        push_software_filter(&mut count, d, filter);
        let total = count.fetch_one(&self.db).await.map_err(store_error)?;
        Ok((versions, total.int("n").map_err(store_error)? as u64))
    }

    async fn software_version(
        &self,
        id: u64,
        team: Option<TeamId>,
    ) -> Result<Option<SoftwareVersion>, StoreError> {
        let d = self.db.dialect();
        let row = query(format!(
            "SELECT {}, COALESCE(c.hosts_count, 0) AS hosts_count FROM software s \
             LEFT JOIN software_host_counts c ON c.software_id = s.id AND c.team_id = ? \
             WHERE s.id = ?",
            software_columns(d)
        ))
        .bind(team_key(team))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version = version_row(&row, row.int("hosts_count").map_err(store_error)? as u64)
            .map_err(store_error)?;
        let mut versions = with_vulnerabilities(&self.db, vec![version])
            .await
            .map_err(store_error)?;
        Ok(versions.pop())
    }

    async fn software_titles(
        &self,
        filter: &SoftwareListFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<SoftwareTitle>, u64), StoreError> {
        let d = self.db.dialect();
        let expression = match order.key.as_str() {
            "name" => "t.name",
            "hosts_count" => "c.hosts_count",
            "id" => "t.id",
            other => {
                return Err(StoreError::Data(format!(
                    "unknown software title order key `{other}`"
                )));
            }
        };
        // A title is listed when one of its versions passes the version filters.
        let from = " FROM software_titles t JOIN software_title_host_counts c \
                    ON c.title_id = t.id AND c.team_id = ";
        let push_where = |list: &mut Query<'_>| {
            list.push_bind(team_key(filter.team))
                .push(" WHERE c.hosts_count > 0 AND EXISTS (SELECT 1 FROM software s WHERE s.title_id = t.id");
            push_software_filter(list, d, filter);
            list.push(")");
        };
        let mut list = query(format!(
            "SELECT t.id, t.name, t.source, t.browser, t.bundle_identifier, c.hosts_count{from}"
        ));
        push_where(&mut list);
        list.push(&order_clause(expression, order.descending, "t.id"));
        limit(&mut list, page);
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        let mut titles = rows
            .iter()
            .map(title_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        fill_title_versions(&self.db, &mut titles, filter.team)
            .await
            .map_err(store_error)?;
        let mut count = query(format!("SELECT COUNT(*) AS n{from}"));
        push_where(&mut count);
        let total = count.fetch_one(&self.db).await.map_err(store_error)?;
        Ok((titles, total.int("n").map_err(store_error)? as u64))
    }

    async fn software_title(
        &self,
        id: u64,
        team: Option<TeamId>,
    ) -> Result<Option<SoftwareTitle>, StoreError> {
        let row = query(
            "SELECT t.id, t.name, t.source, t.browser, t.bundle_identifier, \
             COALESCE(c.hosts_count, 0) AS hosts_count FROM software_titles t \
             LEFT JOIN software_title_host_counts c ON c.title_id = t.id AND c.team_id = ? \
             WHERE t.id = ?",
        )
        .bind(team_key(team))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut titles = vec![title_row(&row).map_err(store_error)?];
        fill_title_versions(&self.db, &mut titles, team)
            .await
            .map_err(store_error)?;
        Ok(titles.pop())
    }

    async fn host_software(&self, host: HostId) -> Result<Vec<HostSoftware>, StoreError> {
        let d = self.db.dialect();
        let rows = query(format!(
            "SELECT {}, COALESCE(c.hosts_count, 0) AS hosts_count, hs.last_opened_at, \
             hs.installed_paths FROM host_software hs JOIN software s ON s.id = hs.software_id \
             LEFT JOIN software_host_counts c ON c.software_id = s.id AND c.team_id = 0 \
             WHERE hs.host_id = ? ORDER BY s.name, s.version, s.id",
            software_columns(d)
        ))
        .bind(host)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let mut installed = Vec::with_capacity(rows.len());
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            let count = row.int("hosts_count").map_err(store_error)? as u64;
            versions.push(version_row(row, count).map_err(store_error)?);
            installed.push((
                row.opt_int("last_opened_at").map_err(store_error)?,
                row.opt_text("installed_paths")
                    .map_err(store_error)?
                    .map(|p| p.lines().map(str::to_owned).collect())
                    .unwrap_or_default(),
            ));
        }
        let versions = with_vulnerabilities(&self.db, versions)
            .await
            .map_err(store_error)?;
        Ok(versions
            .into_iter()
            .zip(installed)
            .map(
                |(software, (last_opened_at, installed_paths))| HostSoftware {
                    software,
                    last_opened_at,
                    installed_paths,
                },
            )
            .collect())
    }

    async fn vulnerabilities(
        &self,
        filter: &VulnerabilityFilter,
        order: &Order,
        page: Page,
    ) -> Result<(Vec<Vulnerability>, u64), StoreError> {
        let d = self.db.dialect();
        let expression = match order.key.as_str() {
            "cve" => "m.cve",
            "cvss_score" => "m.cvss_score",
            "epss_probability" => "m.epss_probability",
            "cve_published" => "m.published",
            "created_at" => "m.created_at",
            "hosts_count" => "c.hosts_count",
            other => {
                return Err(StoreError::Data(format!(
                    "unknown vulnerability order key `{other}`"
                )));
            }
        };
        let from = " FROM cve_meta m JOIN cve_host_counts c ON c.cve = m.cve AND c.team_id = ";
        let push_where = |list: &mut Query<'_>| {
            list.push_bind(team_key(filter.team))
                .push(" WHERE c.hosts_count > 0");
            if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
                list.push(" AND m.cve LIKE ")
                    .push_bind(like_pattern(search.trim()))
                    .push(d.like_end());
            }
            if filter.exploit {
                list.push(" AND m.cisa_known_exploit = 1");
            }
        };
        let mut list = query(format!(
            "SELECT m.cve, m.cvss_score, m.epss_probability, m.cisa_known_exploit, m.published, \
             m.description, m.created_at, c.hosts_count{from}"
        ));
        push_where(&mut list);
        list.push(&order_clause(expression, order.descending, "m.cve"));
        limit(&mut list, page);
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        let found = rows
            .iter()
            .map(vulnerability_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let mut count = query(format!("SELECT COUNT(*) AS n{from}"));
        push_where(&mut count);
        let total = count.fetch_one(&self.db).await.map_err(store_error)?;
        Ok((found, total.int("n").map_err(store_error)? as u64))
    }

    async fn vulnerability(
        &self,
        cve: &str,
        team: Option<TeamId>,
    ) -> Result<Option<(Vulnerability, Vec<SoftwareVersion>)>, StoreError> {
        let d = self.db.dialect();
        let row = query(
            "SELECT m.cve, m.cvss_score, m.epss_probability, m.cisa_known_exploit, m.published, \
             m.description, m.created_at, COALESCE(c.hosts_count, 0) AS hosts_count \
             FROM cve_meta m LEFT JOIN cve_host_counts c ON c.cve = m.cve AND c.team_id = ? \
             WHERE m.cve = ?",
        )
        .bind(team_key(team))
        .bind(cve)
        .fetch_optional(&self.db)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let vulnerability = vulnerability_row(&row).map_err(store_error)?;
        let rows = query(format!(
            "SELECT {}, COALESCE(c.hosts_count, 0) AS hosts_count FROM software_cve sc \
             JOIN software s ON s.id = sc.software_id \
             LEFT JOIN software_host_counts c ON c.software_id = s.id AND c.team_id = ? \
             WHERE sc.cve = ? ORDER BY s.name, s.version, s.id",
            software_columns(d)
        ))
        .bind(team_key(team))
        .bind(cve)
        .fetch_all(&self.db)
        .await
        .map_err(store_error)?;
        let versions = rows
            .iter()
            .map(|row| version_row(row, row.int("hosts_count")? as u64))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let versions: Vec<SoftwareVersion> = with_vulnerabilities(&self.db, versions)
            .await
            .map_err(store_error)?
            .into_iter()
            .filter(|v| team.is_none() || v.hosts_count > 0)
            .collect();
        Ok(Some((vulnerability, versions)))
    }

    async fn os_versions(
        &self,
        team: Option<TeamId>,
        scope: &HostScope,
    ) -> Result<Vec<OsVersion>, StoreError> {
        let mut list = query(
            "SELECT h.platform, h.os_version, COUNT(*) AS n FROM hosts h \
             WHERE h.os_version <> ''",
        );
        push_scope(&mut list, self.db.dialect(), scope);
        if let Some(team) = team {
            list.push(" AND h.team_id = ").push_bind(team);
        }
        list.push(" GROUP BY h.platform, h.os_version ORDER BY n DESC, h.os_version");
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let platform = row.text("platform")?;
                let name = row.text("os_version")?;
                Ok(OsVersion {
                    id: os_version_id(&platform, &name),
                    platform,
                    name,
                    hosts_count: row.int("n")? as u64,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(store_error)
    }

    async fn software_state(&self) -> Result<SoftwareState, StoreError> {
        let row = query(
            "SELECT generation, counted_generation, matched_generation, changed_at, \
             counts_updated_at, matched_at, feed_fingerprint FROM software_state WHERE id = 1",
        )
        .fetch_one(&self.db)
        .await
        .map_err(store_error)?;
        (|| {
            Ok::<_, sqlx::Error>(SoftwareState {
                generation: row.int("generation")?,
                counted_generation: row.int("counted_generation")?,
                matched_generation: row.int("matched_generation")?,
                changed_at: row.int("changed_at")?,
                counts_updated_at: row.int("counts_updated_at")?,
                matched_at: row.int("matched_at")?,
                feed_fingerprint: row.text("feed_fingerprint")?,
            })
        })()
        .map_err(store_error)
    }

    async fn refresh_software_counts(&self, generation: i64, now: i64) -> Result<(), StoreError> {
        counts::refresh(&self.db, generation, now)
            .await
            .map_err(store_error)
    }

    async fn matchable_software(
        &self,
        sources: &[&str],
    ) -> Result<Vec<MatchableSoftware>, StoreError> {
        let d = self.db.dialect();
        let mut list = query(format!(
            "SELECT s.id, s.name, s.version, {} AS release_name, s.source FROM software s \
             WHERE s.source IN ",
            release_column(d)
        ));
        list.push_list(sources.iter().copied());
        list.push(" ORDER BY s.id");
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        let mut os: HashMap<u64, Vec<(String, String)>> = HashMap::new();
        for row in query("SELECT software_id, platform, os_version FROM software_os")
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?
        {
            os.entry(row.id("software_id").map_err(store_error)?)
                .or_default()
                .push((
                    row.text("platform").map_err(store_error)?,
                    row.text("os_version").map_err(store_error)?,
                ));
        }
        rows.iter()
            .map(|row| {
                let id = row.id("id")?;
                Ok(MatchableSoftware {
                    id,
                    name: row.text("name")?,
                    version: row.text("version")?,
                    release: row.text("release_name")?,
                    source: row.text("source")?,
                    os: os.remove(&id).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(store_error)
    }

    async fn replace_software_cves(
        &self,
        found: &[SoftwareCve],
        meta: &[(String, CveMeta)],
        fingerprint: &str,
        generation: i64,
        now: i64,
    ) -> Result<MatchWrite, StoreError> {
        counts::replace_cves(&self.db, found, meta, fingerprint, generation, now)
            .await
            .map_err(store_error)
    }
}

fn title_row(row: &Row) -> Result<SoftwareTitle, sqlx::Error> {
    Ok(SoftwareTitle {
        id: row.id("id")?,
        name: row.text("name")?,
        source: row.text("source")?,
        browser: row.text("browser")?,
        bundle_identifier: row.text("bundle_identifier")?,
        hosts_count: row.int("hosts_count")? as u64,
        versions: Vec::new(),
    })
}

fn vulnerability_row(row: &Row) -> Result<Vulnerability, sqlx::Error> {
    Ok(Vulnerability {
        cve: row.text("cve")?,
        meta: meta_row(row)?,
        created_at: row.int("created_at")?,
        hosts_count: row.int("hosts_count")? as u64,
    })
}

/// Each title's versions installed in `team`'s scope, with their CVE ids.
async fn fill_title_versions(
    db: &Db,
    titles: &mut [SoftwareTitle],
    team: Option<TeamId>,
) -> Result<(), sqlx::Error> {
    if titles.is_empty() {
        return Ok(());
    }
    let d = db.dialect();
    let mut select = query(
        "SELECT s.id, s.title_id, s.version, c.hosts_count FROM software s \
         JOIN software_host_counts c ON c.software_id = s.id AND c.team_id = ",
    );
    select
        .push_bind(team_key(team))
        .push(" WHERE c.hosts_count > 0 AND s.title_id IN ");
    select.push_id_set(d, titles.iter().map(|t| t.id));
    select.push(" ORDER BY s.version, s.id");
    let rows = select.fetch_all(db).await?;
    let ids: Vec<u64> = rows.iter().map(|r| r.id("id")).collect::<Result<_, _>>()?;
    let mut cves = vulnerabilities_of(db, &ids).await?;
    let mut by_title: BTreeMap<u64, Vec<TitleVersion>> = BTreeMap::new();
    for row in rows {
        let id = row.id("id")?;
        let found = cves
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.cve)
            .collect();
        by_title
            .entry(row.id("title_id")?)
            .or_default()
            .push(TitleVersion {
                id,
                version: row.text("version")?,
                hosts_count: row.int("hosts_count")? as u64,
                cves: found,
            });
    }
    for title in titles {
        title.versions = by_title.remove(&title.id).unwrap_or_default();
    }
    Ok(())
}

/// The counts job's and the matcher's writes.
mod counts {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{CveMeta, MatchWrite, ROWS_PER_INSERT, SoftwareCve};
    use crate::rows::ModelRow;
    use crate::sql::{Db, Tx, query};

    /// `(key, team, hosts)` rows of one count table.
    type Counts<K> = BTreeMap<(K, i64), i64>;
    /// A finding's key (software, CVE) and what it says (record, fixed version).
    type Findings = BTreeMap<(u64, String), (String, Option<String>)>;

    async fn read_counts_by_id(db: &Db, sql: &'static str) -> Result<Counts<u64>, sqlx::Error> {
        let mut counts = Counts::new();
        for row in query(sql).fetch_all(db).await? {
            counts.insert(
                (row.id("k")?, row.opt_int("team")?.unwrap_or(0)),
                row.int("n")?,
            );
        }
        Ok(counts)
    }

    async fn read_counts_by_text(
        db: &Db,
        sql: &'static str,
    ) -> Result<Counts<String>, sqlx::Error> {
        let mut counts = Counts::new();
        for row in query(sql).fetch_all(db).await? {
            counts.insert(
                (row.text("k")?, row.opt_int("team")?.unwrap_or(0)),
                row.int("n")?,
            );
        }
        Ok(counts)
    }

    /// Recounts everything with reads (no write lock held), then replaces the count tables
    /// in one transaction.
    pub(super) async fn refresh(db: &Db, generation: i64, now: i64) -> Result<(), sqlx::Error> {
        let teams = query("SELECT 1 AS x FROM hosts WHERE team_id IS NOT NULL LIMIT 1")
            .fetch_optional(db)
            .await?
            .is_some();
        let mut software = read_counts_by_id(
            db,
            "SELECT software_id AS k, 0 AS team, COUNT(*) AS n FROM host_software \
             GROUP BY software_id",
        )
        .await?;
        let mut titles = read_counts_by_id(
            db,
            "SELECT s.title_id AS k, 0 AS team, COUNT(DISTINCT hs.host_id) AS n \
             FROM host_software hs JOIN software s ON s.id = hs.software_id GROUP BY s.title_id",
        )
        .await?;
        let mut cves = read_counts_by_text(
            db,
            "SELECT sc.cve AS k, 0 AS team, COUNT(DISTINCT hs.host_id) AS n \
             FROM software_cve sc JOIN host_software hs ON hs.software_id = sc.software_id \
             GROUP BY sc.cve",
        )
        .await?;
        if teams {
            software.extend(
                read_counts_by_id(
                    db,
                    "SELECT hs.software_id AS k, h.team_id AS team, COUNT(*) AS n \
                     FROM host_software hs JOIN hosts h ON h.id = hs.host_id \
                     WHERE h.team_id IS NOT NULL GROUP BY hs.software_id, h.team_id",
                )
                .await?,
            );
            titles.extend(
                read_counts_by_id(
                    db,
                    "SELECT s.title_id AS k, h.team_id AS team, COUNT(DISTINCT hs.host_id) AS n \
                     FROM host_software hs JOIN software s ON s.id = hs.software_id \
                     JOIN hosts h ON h.id = hs.host_id WHERE h.team_id IS NOT NULL \
                     GROUP BY s.title_id, h.team_id",
                )
                .await?,
            );
            cves.extend(
                read_counts_by_text(
                    db,
                    "SELECT sc.cve AS k, h.team_id AS team, COUNT(DISTINCT hs.host_id) AS n \
                     FROM software_cve sc JOIN host_software hs \
                     ON hs.software_id = sc.software_id JOIN hosts h ON h.id = hs.host_id \
                     WHERE h.team_id IS NOT NULL GROUP BY sc.cve, h.team_id",
                )
                .await?,
            );
        }
        let mut tx = db.begin_hot().await?;
        write_id_counts(&mut tx, "software_host_counts", "software_id", &software).await?;
        write_id_counts(&mut tx, "software_title_host_counts", "title_id", &titles).await?;
        write_cve_counts(&mut tx, &cves).await?;
        query(
            "UPDATE software_state SET counts_updated_at = ?, counted_generation = ? WHERE id = 1",
        )
        .bind(now)
        .bind(generation)
        .execute(&mut tx)
        .await?;
        tx.commit().await
    }

    async fn write_id_counts(
        tx: &mut Tx,
        table: &'static str,
        key: &'static str,
        counts: &Counts<u64>,
    ) -> Result<(), sqlx::Error> {
        query(format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
        let rows: Vec<_> = counts.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = query(format!(
                "INSERT INTO {table} ({key}, team_id, hosts_count) VALUES "
            ));
            for (i, ((id, team), n)) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert
                    .push("(")
                    .push_bind(*id)
                    .push(", ")
                    .push_bind(*team)
                    .push(", ")
                    .push_bind(**n)
                    .push(")");
            }
            insert.execute(&mut *tx).await?;
        }
        Ok(())
    }

    async fn write_cve_counts(tx: &mut Tx, counts: &Counts<String>) -> Result<(), sqlx::Error> {
        query("DELETE FROM cve_host_counts")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<_> = counts.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert =
                query("INSERT INTO cve_host_counts (cve, team_id, hosts_count) VALUES ");
            for (i, ((cve, team), n)) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert
                    .push("(")
                    .push_bind(cve.as_str())
                    .push(", ")
                    .push_bind(*team)
                    .push(", ")
                    .push_bind(**n)
                    .push(")");
            }
            insert.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Writes the difference between the stored findings and `found`, and the metadata of
    /// every CVE found (a CVE no longer found loses its row, and with it its place in the
    /// lists).
    pub(super) async fn replace_cves(
        db: &Db,
        found: &[SoftwareCve],
        meta: &[(String, CveMeta)],
        fingerprint: &str,
        generation: i64,
        now: i64,
    ) -> Result<MatchWrite, sqlx::Error> {
        let d = db.dialect();
        let mut stored = Findings::new();
        for row in query("SELECT software_id, cve, osv_id, resolved_in_version FROM software_cve")
            .fetch_all(db)
            .await?
        {
            stored.insert(
                (row.id("software_id")?, row.text("cve")?),
                (row.text("osv_id")?, row.opt_text("resolved_in_version")?),
            );
        }
        let wanted: Findings = found
            .iter()
            .map(|f| {
                (
                    (f.software_id, f.cve.clone()),
                    (f.osv_id.clone(), f.resolved_in_version.clone()),
                )
            })
            .collect();
        let gone: Vec<&(u64, String)> = stored
            .keys()
            .filter(|key| !wanted.contains_key(*key))
            .collect();
        let changed: Vec<_> = wanted
            .iter()
            .filter(|(key, value)| stored.get(*key) != Some(*value))
            .collect();
        let mut tx = db.begin_hot().await?;
        for chunk in gone.chunks(ROWS_PER_INSERT) {
            let mut delete = query("DELETE FROM software_cve WHERE ");
            for (i, (software, cve)) in chunk.iter().enumerate() {
                if i > 0 {
                    delete.push(" OR ");
                }
                delete
                    .push("(software_id = ")
                    .push_bind(*software)
                    .push(" AND cve = ")
                    .push_bind(cve.as_str())
                    .push(")");
            }
            delete.execute(&mut tx).await?;
        }
        for chunk in changed.chunks(ROWS_PER_INSERT) {
            let mut upsert = query(
                "INSERT INTO software_cve (software_id, cve, osv_id, resolved_in_version, \
                 created_at) VALUES ",
            );
            for (i, ((software, cve), (osv, resolved))) in chunk.iter().enumerate() {
                if i > 0 {
                    upsert.push(", ");
                }
                upsert
                    .push("(")
                    .push_bind(*software)
                    .push(", ")
                    .push_bind(cve.as_str())
                    .push(", ")
                    .push_bind(osv.as_str())
                    .push(", ")
                    .push_bind(resolved.as_deref())
                    .push(", ")
                    .push_bind(now)
                    .push(")");
            }
            upsert.push(match d {
                crate::sql::Dialect::Sqlite => {
                    " ON CONFLICT (software_id, cve) DO UPDATE SET osv_id = excluded.osv_id, \
                     resolved_in_version = excluded.resolved_in_version"
                }
                crate::sql::Dialect::Mysql => {
                    " ON DUPLICATE KEY UPDATE osv_id = VALUES(osv_id), \
                     resolved_in_version = VALUES(resolved_in_version)"
                }
            });
            upsert.execute(&mut tx).await?;
        }
        // CVE metadata: kept for the CVEs found, first-seen time preserved.
        let keep: BTreeSet<&str> = found.iter().map(|f| f.cve.as_str()).collect();
        let mut stored_cves = BTreeSet::new();
        for row in query("SELECT cve FROM cve_meta").fetch_all(&mut tx).await? {
            stored_cves.insert(row.text("cve")?);
        }
        let drop: Vec<&String> = stored_cves
            .iter()
            .filter(|c| !keep.contains(c.as_str()))
            .collect();
        for chunk in drop.chunks(ROWS_PER_INSERT) {
            let mut delete = query("DELETE FROM cve_meta WHERE cve IN ");
            delete.push_list(chunk.iter().map(|c| c.as_str()));
            delete.execute(&mut tx).await?;
        }
        let metas: Vec<&(String, CveMeta)> = meta
            .iter()
            .filter(|(cve, _)| keep.contains(cve.as_str()))
            .collect();
        for chunk in metas.chunks(ROWS_PER_INSERT) {
            let mut upsert = query(
                "INSERT INTO cve_meta (cve, cvss_score, epss_probability, cisa_known_exploit, \
                 published, description, created_at) VALUES ",
            );
            for (i, (cve, m)) in chunk.iter().enumerate() {
                if i > 0 {
                    upsert.push(", ");
                }
                upsert
                    .push("(")
                    .push_bind(cve.as_str())
                    .push(", ")
                    .push_bind(m.cvss_score)
                    .push(", ")
                    .push_bind(m.epss_probability)
                    .push(", ")
                    .push_bind(m.cisa_known_exploit)
                    .push(", ")
                    .push_bind(m.published)
                    .push(", ")
                    .push_bind(m.description.as_deref())
                    .push(", ")
                    .push_bind(now)
                    .push(")");
            }
            upsert.push(match d {
                crate::sql::Dialect::Sqlite => {
                    " ON CONFLICT (cve) DO UPDATE SET cvss_score = excluded.cvss_score, \
                     epss_probability = excluded.epss_probability, \
                     cisa_known_exploit = excluded.cisa_known_exploit, \
                     published = excluded.published, description = excluded.description"
                }
                crate::sql::Dialect::Mysql => {
                    " ON DUPLICATE KEY UPDATE cvss_score = VALUES(cvss_score), \
                     epss_probability = VALUES(epss_probability), \
                     cisa_known_exploit = VALUES(cisa_known_exploit), \
                     published = VALUES(published), description = VALUES(description)"
                }
            });
            upsert.execute(&mut tx).await?;
        }
        query(
            "UPDATE software_state SET matched_at = ?, feed_fingerprint = ?, \
             matched_generation = ? WHERE id = 1",
        )
        .bind(now)
        .bind(fingerprint)
        .bind(generation)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(MatchWrite {
            added: changed.len() as u64,
            removed: gone.len() as u64,
        })
    }
}
