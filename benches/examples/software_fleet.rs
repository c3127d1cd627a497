//! A fleet's software through the store, at full size: enrolls `--hosts` hosts straight into
//! the store, builds each one's inventory from the load tester's package pools (the answers
//! its simulated hosts give to the software queries), writes them with `flush_hosts` in the
//! host writer's batches, then counts, loads an OSV feed and matches every distinct package.
//! Prints one JSON line of timings, CPU, peak RSS and database size.
//!
//! ```text
//! cargo run --release -p flotilla-benches --example software_fleet -- \
//!     --hosts 100000 --db /tmp/fleet.db --feed /tmp/feed
//! cargo run --release -p flotilla-benches --example software_fleet -- \
//!     --hosts 100000 --db mysql://root@127.0.0.1:3306/flotilla_bench --feed /tmp/feed
//! ```
//! The feed comes from `flotilla-loadtest write-osv-fixture /tmp/feed --records 50000`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use flotilla_engine::ids::NodeKey;
use flotilla_engine::software::Inventory;
use flotilla_engine::store::{Enrollment, HostStore, HostUpdate};
use flotilla_engine::vitals::Vitals;
use flotilla_loadtest::software::Software;
use flotilla_loadtest::{HostProfile, OsTemplate};
use flotilla_storage::admin::SoftwareStore;
use flotilla_storage::{MysqlOptions, SqlStore};
use futures_util::StreamExt;

/// The server's allocator, so the store's work is measured as the server does it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hosts per `flush_hosts` call: what the host writer gathers in a second at a rollout's peak.
const BATCH: usize = 500;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn cpu_seconds() -> f64 {
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let hosts: usize = arg("--hosts")
        .and_then(|h| h.parse().ok())
        .unwrap_or(10_000);
    let db = arg("--db").unwrap_or_else(|| "/tmp/flotilla-software-bench.db".into());
    let feed = arg("--feed");
    let store = if db.starts_with("mysql://") {
        SqlStore::connect_mysql(&db, &MysqlOptions::default())
            .await
            .expect("MySQL")
    } else {
        let _ = std::fs::remove_file(&db);
        SqlStore::open_sqlite(std::path::Path::new(&db))
            .await
            .expect("SQLite")
    };
    let templates = [
        OsTemplate::Ubuntu,
        OsTemplate::Rocky,
        OsTemplate::MacOs,
        OsTemplate::Windows,
    ];
    let software = Software::shared_default();

    let started = Instant::now();
    let profiles: Vec<(OsTemplate, HostProfile)> = (0..hosts)
        .map(|i| {
            let template = templates[i % templates.len()];
            let profile = HostProfile::new(template, &format!("bench-host-{i:06}"), "5.23.1");
            (template, profile)
        })
        .collect();
    // Enrollments as a rollout sends them: many at once (SQLite group-commits them; on MySQL
    // concurrent enrollments deadlock often, see BENCHMARKS.md, so fewer).
    let ids: Vec<_> = futures_util::stream::iter(profiles.iter().map(|(template, profile)| {
        let store = store.clone();
        async move {
            let os = template.os_version(profile);
            let os_version = format!(
                "{} {}",
                os.get("name").cloned().unwrap_or_default(),
                os.get("version").cloned().unwrap_or_default()
            );
            let enrollment = Enrollment {
                identifier: profile.host_identifier.clone(),
                hardware_uuid: Some(profile.hardware_uuid.clone()),
                node_key: NodeKey::generate(),
                team: None,
                vitals: Vitals {
                    hostname: Some(profile.hostname.clone()),
                    platform: Some(template.platform().into()),
                    os_version: Some(os_version.clone()),
                    ..Vitals::default()
                },
                now: 1,
            };
            // InnoDB picks deadlock victims among concurrent enrollments; the agent would
            // retry, and so does this.
            let mut attempts = 0;
            let enrolled = loop {
                match store.enroll_host(&enrollment).await {
                    Ok(enrolled) => break enrolled,
                    Err(error) if attempts < 20 => {
                        attempts += 1;
                        eprintln!("enroll retried: {error}");
                        tokio::time::sleep(std::time::Duration::from_millis(10 * attempts)).await;
                    }
                    Err(error) => panic!("enroll: {error}"),
                }
            };
            (enrolled.host.id, template.platform().to_owned(), os_version)
        }
    }))
    .buffered(if db.starts_with("mysql://") { 8 } else { 64 })
    .collect()
    .await;
    let profiles: Vec<HostProfile> = profiles.into_iter().map(|(_, p)| p).collect();
    let enrolled_s = started.elapsed().as_secs_f64();

    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut rows_total = 0usize;
    let mut flush_s = 0.0;
    for (chunk_ids, chunk_profiles) in ids.chunks(BATCH).zip(profiles.chunks(BATCH)) {
        let updates: Vec<_> = chunk_ids
            .iter()
            .zip(chunk_profiles)
            .map(|((id, platform, os_version), profile)| {
                let rows: Vec<HashMap<String, String>> = software
                    .software_rows(profile)
                    .into_iter()
                    .map(|r| r.into_iter().collect())
                    .collect();
                rows_total += rows.len();
                let inventory = Inventory::from_rows(&rows, platform, os_version);
                (
                    *id,
                    HostUpdate {
                        software: Some(Arc::new(inventory)),
                        software_updated_at: Some(2),
                        ..HostUpdate::default()
                    },
                )
            })
            .collect();
        let flushing = Instant::now();
        store.flush_hosts(&updates).await.expect("flush");
        flush_s += flushing.elapsed().as_secs_f64();
    }
    let ingest_s = started.elapsed().as_secs_f64();
    let ingest_cpu = cpu_seconds() - cpu_before;

    let started = Instant::now();
    let state = store.software_state().await.unwrap();
    store
        .refresh_software_counts(state.generation, 3)
        .await
        .expect("counts");
    let counts_s = started.elapsed().as_secs_f64();

    let mut report = serde_json::json!({
        "hosts": hosts,
        "db": if db.starts_with("mysql://") { "mysql" } else { "sqlite" },
        "host_software_rows": rows_total,
        "enroll_s": enrolled_s,
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu,
        "flush_hosts_s": flush_s,
        "counts_s": counts_s,
    });

    if let Some(feed) = feed {
        let started = Instant::now();
        let (loaded, load_report) = flotilla_vulns::Feed::load_dir(std::path::Path::new(&feed));
        report["feed_records"] = load_report.records.into();
        report["feed_load_s"] = started.elapsed().as_secs_f64().into();
        let started = Instant::now();
        let matchable = store
            .matchable_software(flotilla_api::service::software::MATCHED_SOURCES)
            .await
            .unwrap();
        report["matchable_packages"] = matchable.len().into();
        let read_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let (found, meta) = flotilla_api::service::software::match_software(&loaded, &matchable);
        let match_s = started.elapsed().as_secs_f64();
        let match_cpu = cpu_seconds() - cpu_before;
        let started = Instant::now();
        store
            .replace_software_cves(&found, &meta, "bench", state.generation, 4)
            .await
            .unwrap();
        store
            .refresh_software_counts(state.generation, 5)
            .await
            .unwrap();
        report["findings"] = found.len().into();
        report["cves"] = meta.len().into();
        report["match_read_s"] = read_s.into();
        report["match_s"] = match_s.into();
        report["match_cpu_s"] = match_cpu.into();
        report["match_write_and_recount_s"] = started.elapsed().as_secs_f64().into();
    }
    report["peak_rss_mb"] = peak_rss_mb().into();
    if !db.starts_with("mysql://") {
        let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(format!("{db}-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        report["db_mb"] = (size as f64 / 1e6).into();
    }
    println!("{report}");
}
