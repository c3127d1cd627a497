//! The check-in hot path inside the engine (no HTTP, no TLS, no JSON), with 100,000 hosts
//! registered:
//! - `read/idle`: a distributed read from a host with nothing to do — 99 % of all check-ins —
//!   answered from the compact record without an actor;
//! - `read/pending`: a read from a host whose actor holds a live query (one actor call).
//!
//! Run: `cargo bench -p flotilla-benches --bench checkin`

use criterion::{Criterion, criterion_group, criterion_main};
use flotilla_engine::live::LiveQuery;
use flotilla_engine::{CampaignId, HostId, unix_now};

const FLEET: usize = 100_000;

fn bench_checkin(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fleet = runtime.block_on(flotilla_benches::fleet(FLEET));
    assert_eq!(fleet.hosts.len(), FLEET);

    let mut group = c.benchmark_group("read");
    let mut i = 0;
    group.bench_function("idle", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 1) % FLEET;
            let (hosts, key) = (&fleet.hosts, &fleet.keys[i]);
            async move { hosts.read(key.as_str(), unix_now()).await.unwrap() }
        })
    });
    assert_eq!(fleet.hosts.active_actors(), 0, "idle reads woke no actor");
    runtime
        .block_on(
            fleet
                .hosts
                .enqueue(HostId(1), LiveQuery::new(CampaignId(1), "SELECT 1".into())),
        )
        .unwrap();
    group.bench_function("pending", |b| {
        b.to_async(&runtime).iter(|| async {
            fleet
                .hosts
                .read(fleet.keys[0].as_str(), unix_now())
                .await
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_checkin);
criterion_main!(benches);
