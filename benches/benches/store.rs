//! The store's batched write, as the engine's `HostWriter` calls it every flush interval:
//! `flush/seen/N` writes the last-seen times of N enrolled hosts (what nearly every flush
//! holds), `flush/vitals/N` the same with one host in a hundred also bringing its vitals.
//!
//! On SQLite in a temporary directory; also on MySQL when `FLOTILLA_BENCH_MYSQL_URL` names an
//! empty database (`mysql://root@127.0.0.1:3306/flotilla_bench`), which it fills.
//!
//! Run: `cargo bench -p flotilla-benches --bench store`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flotilla_engine::HostId;
use flotilla_engine::ids::NodeKey;
use flotilla_engine::store::{Enrollment, HostStore, HostUpdate};
use flotilla_engine::vitals::Vitals;
use flotilla_storage::{MysqlOptions, SqlStore};

const FLEETS: [usize; 2] = [2_000, 20_000];

/// Enrolls `count` hosts, all at once (as a burst of agents would), and returns their ids.
async fn enroll(store: &SqlStore, count: usize) -> Vec<HostId> {
    let enrollments = (0..count).map(|i| Enrollment {
        identifier: format!("bench-{i}"),
        hardware_uuid: Some(format!("uuid-{i}")),
        node_key: NodeKey::generate(),
        team: None,
        vitals: Vitals {
            hostname: Some(format!("bench-{i}.local")),
            platform: Some("ubuntu".into()),
            ..Vitals::default()
        },
        now: 1_000,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for enrollment in enrollments {
        let store = store.clone();
        tasks.spawn(async move { store.enroll_host(&enrollment).await.unwrap().host.id });
    }
    let mut ids = tasks.join_all().await;
    ids.sort();
    ids
}

fn updates(ids: &[HostId], now: i64, with_vitals: bool) -> Vec<(HostId, HostUpdate)> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let vitals = (with_vitals && i % 100 == 0).then(|| Vitals {
                os_version: Some(format!("24.04.{now}")),
                uptime_seconds: Some(now),
                ..Vitals::default()
            });
            let update = HostUpdate {
                seen_time: Some(now),
                detail_updated_at: vitals.as_ref().map(|_| now),
                vitals,
                ..HostUpdate::default()
            };
            (id, update)
        })
        .collect()
}

/// Where a bench's store lives.
enum Backend {
    Sqlite(tempfile::TempDir),
    Mysql(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Mysql(_) => "mysql",
        }
    }

    /// A fresh database for `fleet` hosts (SQLite: a new file; MySQL: the hosts of the previous
    /// fleet are deleted first).
    async fn open(&self, fleet: usize) -> SqlStore {
        match self {
            Backend::Sqlite(dir) => SqlStore::open_sqlite(&dir.path().join(format!("{fleet}.db")))
                .await
                .unwrap(),
            Backend::Mysql(url) => {
                let store = SqlStore::connect_mysql(url, &MysqlOptions::default())
                    .await
                    .unwrap();
                for host in store.load_hosts().await.unwrap() {
                    flotilla_storage::admin::HostDirectory::delete_host(&store, host.id)
                        .await
                        .unwrap();
                }
                store
            }
        }
    }
}

fn bench_backend(c: &mut Criterion, backend: &Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(format!("flush/{}", backend.name()));
    group.sample_size(20);
    for fleet in FLEETS {
        let store = runtime.block_on(backend.open(fleet));
        let ids = runtime.block_on(enroll(&store, fleet));
        for (kind, with_vitals) in [("seen", false), ("vitals", true)] {
            let mut now = 2_000;
            group.bench_with_input(BenchmarkId::new(kind, fleet), &ids, |b, ids| {
                b.iter_batched(
                    || {
                        now += 1;
                        updates(ids, now, with_vitals)
                    },
                    |batch| runtime.block_on(store.flush_hosts(&batch)).unwrap(),
                    criterion::BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

fn bench_flush(c: &mut Criterion) {
    bench_backend(c, &Backend::Sqlite(tempfile::tempdir().unwrap()));
    if let Ok(url) = std::env::var("FLOTILLA_BENCH_MYSQL_URL") {
        bench_backend(c, &Backend::Mysql(url));
    }
}

criterion_group!(benches, bench_flush);
criterion_main!(benches);
