//! A [`QueryAnswerer`] backed by an OS template: detail queries get the template's data, Fleet's
//! software queries the host's packages, other SQL is treated as a live query with tunable size
//! and failure rates.

use std::sync::Arc;

use rand::RngExt;

use crate::answer::{AnswerContext, QueryAnswer, QueryAnswerer, QueryKind, QueryStats};
use crate::host::HostProfile;
use crate::software::Software;
use crate::sql::{Row, SelectQuery};
use crate::template::TEMPLATE_TABLES;

/// How "other" (live) queries behave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveQueryProfile {
    /// Rows returned by a successful live query.
    pub rows_per_result: usize,
    /// Probability that a distributed live query fails (status 1, `no such table: …`).
    pub error_prob: f64,
    /// Probability that a distributed live query succeeds with no rows.
    pub no_result_prob: f64,
}

impl Default for LiveQueryProfile {
    /// One row, no errors, 20 % empty results (osquery-perf's `live_query_no_results_prob`).
    fn default() -> Self {
        LiveQueryProfile {
            rows_per_result: 1,
            error_prob: 0.0,
            no_result_prob: 0.2,
        }
    }
}

/// Answers queries from a host profile and its OS template.
///
/// * Queries reading only template tables (`os_version`, `osquery_info`, `system_info`,
///   `platform_info`, `uptime`, `kernel_info`, `interface_addresses`/`interface_details`/`routes`,
///   `osquery_flags`, `time`) and table-less queries (`SELECT 1`) are evaluated with a small SQL
///   subset: projections, aliases, `WHERE` with `=`/`LIKE`/`IN`/`AND`/`OR`, `LIMIT`. So Fleet's
///   detail, label and decorator queries get consistent, realistic answers.
/// * Any other `SELECT` is a "live" query: `rows_per_result` generated rows; for distributed
///   queries, failures and empty results at the configured probabilities.
/// * Fleet's software detail queries (`fleet_detail_query_software_*`), whose SQL the subset
///   cannot run, are recognised by name and answered from the host's packages (see
///   [`crate::software`]).
/// * Discovery queries count rows the same way; a discovery query on a table the template does
///   not know yields 0 rows (the query is then skipped), never an SQL error.
#[derive(Debug, Clone)]
pub struct TemplateAnswerer {
    profile: HostProfile,
    live: LiveQueryProfile,
    /// The run's package pools and software options, shared by every host.
    software: Arc<Software>,
}

enum Plan {
    /// Every table is known to the template (or there is none).
    Template(SelectQuery),
    /// At least one unknown table; the first unknown one.
    Live(SelectQuery, String),
}

impl TemplateAnswerer {
    /// An answerer for `profile`.
    pub fn new(profile: HostProfile, live: LiveQueryProfile) -> Self {
        TemplateAnswerer {
            profile,
            live,
            software: Software::shared_default(),
        }
    }

    /// The same answerer with the run's software (pools and options) instead of the defaults.
    pub fn with_software(mut self, software: Arc<Software>) -> Self {
        self.software = software;
        self
    }

    /// The software the host's packages come from.
    pub fn software(&self) -> &Software {
        &self.software
    }

    /// The host profile answered for.
    pub fn profile(&self) -> &HostProfile {
        &self.profile
    }

    /// The live-query behaviour.
    pub fn live_profile(&self) -> LiveQueryProfile {
        self.live
    }

    fn plan(sql: &str) -> Result<Plan, String> {
        let q = SelectQuery::parse(sql).ok_or_else(|| {
            let first = sql.split_whitespace().next().unwrap_or("");
            format!("near \"{first}\": syntax error")
        })?;
        let unknown = q
            .table_names()
            .into_iter()
            .find(|t| !TEMPLATE_TABLES.contains(t))
            .map(str::to_string);
        Ok(match unknown {
            None => Plan::Template(q),
            Some(t) => Plan::Live(q, t),
        })
    }

    fn evaluate_template(&self, q: &SelectQuery, ctx: &AnswerContext<'_>) -> Vec<Row> {
        let t = self.profile.template;
        let sources: Vec<Vec<Row>> = q
            .tables
            .iter()
            .map(|tr| {
                t.table_rows(&tr.name, &self.profile, ctx)
                    .unwrap_or_default()
            })
            .collect();
        // Network detail queries join interfaces with routes under conditions (private ranges,
        // `inet_aton`, metric ordering) this evaluator cannot judge; the primary interface is the
        // intended answer, so skip the filter for them.
        let names = q.table_names();
        if names.contains(&"interface_addresses") || names.contains(&"interface_details") {
            let mut unfiltered = q.clone();
            unfiltered.clear_filter();
            return unfiltered.evaluate(&sources);
        }
        q.evaluate(&sources)
    }

    fn live_rows(&self, q: &SelectQuery, table: &str) -> Vec<Row> {
        let columns: Vec<String> = q.explicit_columns().unwrap_or_else(|| {
            catalogue_columns(table)
                .iter()
                .map(|c| c.to_string())
                .collect()
        });
        let mut s = self.profile.stream(table);
        (0..self.live.rows_per_result)
            .map(|i| {
                columns
                    .iter()
                    .map(|c| (c.clone(), synth_value(c, i, &self.profile, &mut s)))
                    .collect()
            })
            .collect()
    }
}

fn small_stats(max_ms: u64) -> QueryStats {
    let mut rng = rand::rng();
    QueryStats {
        wall_time_ms: rng.random_range(0..=max_ms),
        user_time: rng.random_range(0..=max_ms / 2),
        system_time: rng.random_range(0..=max_ms / 4),
        memory: if rng.random_bool(0.3) {
            rng.random_range(0..=262_144)
        } else {
            0
        },
    }
}

impl QueryAnswerer for TemplateAnswerer {
    fn discover(&self, sql: &str, ctx: &AnswerContext<'_>) -> Result<usize, String> {
        match Self::plan(sql)? {
            Plan::Template(q) => Ok(self.evaluate_template(&q, ctx).len()),
            Plan::Live(..) => Ok(0),
        }
    }

    fn answer(&self, name: &str, sql: &str, ctx: &AnswerContext<'_>) -> QueryAnswer {
        if let Some(answer) = self.software.answer(name, &self.profile, ctx) {
            return answer.with_stats(small_stats(250));
        }
        let plan = match Self::plan(sql) {
            Ok(p) => p,
            Err(e) => return QueryAnswer::failed(e),
        };
        match plan {
            Plan::Template(q) => {
                QueryAnswer::rows(self.evaluate_template(&q, ctx)).with_stats(small_stats(4))
            }
            Plan::Live(q, table) => {
                if ctx.kind == QueryKind::Distributed {
                    let mut rng = rand::rng();
                    if self.live.error_prob > 0.0 && rng.random_bool(self.live.error_prob.min(1.0))
                    {
                        return QueryAnswer::failed(format!("no such table: {table}"));
                    }
                    if self.live.no_result_prob > 0.0
                        && rng.random_bool(self.live.no_result_prob.min(1.0))
                    {
                        return QueryAnswer::rows(Vec::new()).with_stats(small_stats(10));
                    }
                }
                QueryAnswer::rows(self.live_rows(&q, &table)).with_stats(small_stats(40))
            }
        }
    }
}

fn catalogue_columns(table: &str) -> &'static [&'static str] {
    match table {
        "processes" => &[
            "pid",
            "name",
            "path",
            "cmdline",
            "state",
            "uid",
            "gid",
            "parent",
            "start_time",
            "resident_size",
        ],
        "users" => &[
            "uid",
            "gid",
            "username",
            "description",
            "directory",
            "shell",
            "uuid",
        ],
        "listening_ports" => &["pid", "port", "protocol", "family", "address", "path"],
        "deb_packages" | "rpm_packages" | "apps" | "programs" | "homebrew_packages" => {
            &["name", "version", "source", "arch", "install_time"]
        }
        "logged_in_users" => &["type", "user", "tty", "host", "time", "pid"],
        "file" => &[
            "path",
            "directory",
            "filename",
            "size",
            "mtime",
            "mode",
            "type",
        ],
        _ => &["name", "value"],
    }
}

fn synth_value(column: &str, i: usize, p: &HostProfile, s: &mut crate::host::SeedStream) -> String {
    const NAMES: [&str; 8] = [
        "sshd", "systemd", "cron", "osqueryd", "bash", "nginx", "postgres", "chrome",
    ];
    let name = NAMES[(i + (p.seed % 8) as usize) % NAMES.len()];
    let i64v = i as u64;
    match column {
        "pid" | "parent" => (300 + i64v * 37 + s.below(30_000)).to_string(),
        "uid" | "gid" => (1000 + i64v).to_string(),
        "port" => [22u64, 80, 443, 5432, 8080, 9000][i % 6].to_string(),
        "protocol" => "6".into(),
        "family" => "2".into(),
        "address" => p.primary_ip.to_string(),
        "name" | "filename" => name.into(),
        "username" | "user" => format!("user{i}"),
        "path" => format!("/usr/bin/{name}"),
        "cmdline" => format!("/usr/bin/{name} --daemon"),
        "directory" => format!("/home/user{i}"),
        "shell" => "/bin/bash".into(),
        "state" => "S".into(),
        "version" => format!("{}.{}.{}", 1 + s.below(9), s.below(20), s.below(10)),
        "arch" => "amd64".into(),
        "source" => "ubuntu".into(),
        "uuid" => s.uuid().hyphenated().to_string().to_uppercase(),
        "hostname" | "host" => p.hostname.clone(),
        "value" => s.below(100_000).to_string(),
        c if c.ends_with("time")
            || c.ends_with("size")
            || c.ends_with("_id")
            || c == "size"
            || c == "count" =>
        {
            (1 + s.below(2_000_000_000)).to_string()
        }
        c => format!("{c}-{i}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::Intervals;
    use crate::template::OsTemplate;

    fn answerer(t: OsTemplate, live: LiveQueryProfile) -> TemplateAnswerer {
        TemplateAnswerer::new(HostProfile::new(t, "host-7", "5.23.1"), live)
    }

    #[test]
    fn detail_queries_use_template_data() {
        let a = answerer(OsTemplate::MacOs, LiveQueryProfile::default());
        let iv = Intervals::default();
        let ctx = AnswerContext::new(&iv);
        let rows = a
            .answer(
                "fleet_detail_query_os_version",
                "SELECT * FROM os_version LIMIT 1",
                &ctx,
            )
            .result
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["platform"], "darwin");
        let rows = a
            .answer("d", "select * from system_info limit 1", &ctx)
            .result
            .unwrap();
        assert_eq!(rows[0]["uuid"], a.profile().hardware_uuid);
        let rows = a
            .answer(
                "n",
                "select ia.address, id.mac from interface_addresses ia join interface_details id on id.interface = ia.interface join routes r on r.interface = ia.interface where (r.destination = '0.0.0.0' OR r.destination = '::') AND r.netmask = 0 AND ia.address NOT LIKE '127.%' order by r.metric asc limit 1",
                &ctx,
            )
            .result
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["address"], a.profile().primary_ip.to_string());
        assert_eq!(rows[0]["mac"], a.profile().mac);
        let rows = a
            .answer("u", "select * from uptime limit 1", &ctx)
            .result
            .unwrap();
        assert!(rows[0]["total_seconds"].parse::<u64>().unwrap() >= 3600);
    }

    #[test]
    fn orbit_info_exists_only_on_hosts_that_run_orbit() {
        let iv = Intervals::default();
        let ctx = AnswerContext::new(&iv);
        let discovery = "SELECT 1 FROM osquery_registry WHERE active = true \
             AND registry = 'table' AND name = 'orbit_info'";
        let plain = answerer(OsTemplate::Ubuntu, LiveQueryProfile::default());
        assert_eq!(plain.discover(discovery, &ctx), Ok(0));
        let mut profile = plain.profile().clone();
        profile.orbit = Some("1.38.0".into());
        let with_orbit = TemplateAnswerer::new(profile, LiveQueryProfile::default());
        assert_eq!(with_orbit.discover(discovery, &ctx), Ok(1));
        let rows = with_orbit
            .answer(
                "fleet_detail_query_orbit_info",
                "SELECT * FROM orbit_info;",
                &ctx,
            )
            .result
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get("version").map(String::as_str), Some("1.38.0"));
    }

    #[test]
    fn label_and_discovery_queries() {
        let a = answerer(OsTemplate::Ubuntu, LiveQueryProfile::default());
        let iv = Intervals::default();
        let ctx = AnswerContext::new(&iv);
        assert_eq!(a.discover("SELECT 1", &ctx), Ok(1));
        assert_eq!(
            a.discover("SELECT 1 FROM os_version WHERE platform = 'windows';", &ctx),
            Ok(0)
        );
        assert_eq!(
            a.discover("SELECT 1 FROM os_version WHERE platform = 'ubuntu';", &ctx),
            Ok(1)
        );
        assert_eq!(
            a.discover(
                "SELECT 1 FROM osquery_registry WHERE active = true AND name = 'kubernetes_info'",
                &ctx
            ),
            Ok(0)
        );
        assert!(a.discover("not sql at all", &ctx).is_err());
        let rows = a.answer(
            "fleet_label_query_9",
            "SELECT 1 FROM os_version WHERE platform = 'darwin'",
            &ctx,
        );
        assert_eq!(rows.result, Ok(vec![]));
    }

    #[test]
    fn live_queries_follow_the_profile() {
        let iv = Intervals::default();
        let ctx = AnswerContext::new(&iv);
        let ok = answerer(
            OsTemplate::Ubuntu,
            LiveQueryProfile {
                rows_per_result: 3,
                error_prob: 0.0,
                no_result_prob: 0.0,
            },
        );
        let rows = ok
            .answer("fleet_distributed_query_1", "SELECT * FROM processes", &ctx)
            .result
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].contains_key("pid"));
        let rows = ok
            .answer("q", "SELECT username AS u, uid FROM users", &ctx)
            .result
            .unwrap();
        assert_eq!(rows[0].keys().collect::<Vec<_>>(), vec!["u", "uid"]);
        let bad = answerer(
            OsTemplate::Ubuntu,
            LiveQueryProfile {
                rows_per_result: 1,
                error_prob: 1.0,
                no_result_prob: 0.0,
            },
        );
        assert_eq!(
            bad.answer("q", "SELECT * FROM nope", &ctx).result,
            Err("no such table: nope".to_string())
        );
        // Probabilities apply to distributed queries only.
        let sched = ctx.with_kind(QueryKind::Scheduled);
        assert!(bad.answer("q", "SELECT * FROM nope", &sched).result.is_ok());
        let empty = answerer(
            OsTemplate::Ubuntu,
            LiveQueryProfile {
                rows_per_result: 1,
                error_prob: 0.0,
                no_result_prob: 1.0,
            },
        );
        assert_eq!(
            empty.answer("q", "SELECT * FROM users", &ctx).result,
            Ok(vec![])
        );
    }

    #[test]
    fn flags_query() {
        let a = answerer(OsTemplate::Windows, LiveQueryProfile::default());
        let iv = Intervals {
            distributed: std::time::Duration::from_secs(10),
            ..Intervals::default()
        };
        let ctx = AnswerContext::new(&iv);
        let rows = a
            .answer(
                "fleet_detail_query_osquery_flags",
                r#"select name, value from osquery_flags where name in ("distributed_interval", "config_tls_refresh", "config_refresh", "logger_tls_period")"#,
                &ctx,
            )
            .result
            .unwrap();
        assert_eq!(rows.len(), 4);
        let di = rows
            .iter()
            .find(|r| r["name"] == "distributed_interval")
            .unwrap();
        assert_eq!(di["value"], "10");
    }
}
