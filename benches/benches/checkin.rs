//! The check-in hot path, measured inside the engine (no HTTP, no TLS):
//! - `read/idle`: a distributed read from a host with nothing to do — 99 % of all check-ins;
//!   answered from the compact record without an actor;
//! - `read/pending`: a read from a host whose actor holds a live query (one actor call);
//! - `write/live_result`: a host posting one live result, routed through its actor to the sink.
//!
//! Run: `cargo bench -p flotilla-benches --bench checkin`

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use flotilla_engine::enroll::EnrollRequest;
use flotilla_engine::host::{DetailAnswer, HostResults};
use flotilla_engine::live::{LiveAnswer, LiveQuery, NoCampaigns};
use flotilla_engine::memory_store::MemoryStore;
use flotilla_engine::store::EnrollSecret;
use flotilla_engine::{CampaignId, EngineConfig, HostId, Hosts, unix_now};

/// Hosts enrolled before measuring, so map lookups see a realistic table.
const FLEET: usize = 10_000;
/// Short, so the setup does not wait long for actors to go idle.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn enroll_request(i: usize) -> EnrollRequest {
    let row = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    EnrollRequest {
        enroll_secret: "bench".into(),
        host_identifier: format!("host-{i}"),
        os_version: Some(row(&[("platform", "ubuntu".into())])),
        system_info: Some(row(&[("hostname", format!("host-{i}"))])),
        osquery_info: None,
    }
}

fn details() -> HostResults {
    HostResults {
        details: vec![DetailAnswer {
            suffix: "uptime".into(),
            rows: vec![[("total_seconds".to_string(), "1".to_string())].into()],
        }],
        live: vec![],
    }
}

fn bench_checkin(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (hosts, keys) = runtime.block_on(async {
        let store = Arc::new(MemoryStore::default());
        store.secrets.lock().push(EnrollSecret {
            secret: "bench".into(),
            team: None,
        });
        let config = EngineConfig {
            host_idle_timeout: IDLE_TIMEOUT,
            ..EngineConfig::default()
        };
        let hosts = Hosts::start(store, config, Arc::new(NoCampaigns))
            .await
            .unwrap();
        let mut keys = Vec::with_capacity(FLEET);
        for i in 0..FLEET {
            let key = hosts.enroll(enroll_request(i), unix_now()).await.unwrap();
            hosts
                .write(key.as_str(), unix_now(), details())
                .await
                .unwrap();
            keys.push(key);
        }
        (hosts, keys)
    });
    // Let the actors that filled the vitals go idle.
    runtime.block_on(async { tokio::time::sleep(IDLE_TIMEOUT * 3).await });
    assert_eq!(
        hosts.active_actors(),
        0,
        "every host should be idle before measuring"
    );

    let mut group = c.benchmark_group("read");
    let mut i = 0;
    group.bench_function("idle", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 1) % FLEET;
            let (hosts, key) = (&hosts, &keys[i]);
            async move { hosts.read(key.as_str(), unix_now()).await.unwrap() }
        })
    });
    let busy = HostId(1);
    runtime
        .block_on(hosts.enqueue(busy, LiveQuery::new(CampaignId(1), "SELECT 1".into())))
        .unwrap();
    group.bench_function("pending", |b| {
        b.to_async(&runtime)
            .iter(|| async { hosts.read(keys[0].as_str(), unix_now()).await.unwrap() })
    });
    group.finish();

    c.bench_function("write/live_result", |b| {
        let answer = LiveAnswer {
            campaign: CampaignId(1),
            rows: r#"[{"pid":"1","name":"launchd"}]"#.into(),
            row_count: 1,
            error: None,
            stats: None,
        };
        b.to_async(&runtime).iter(|| {
            let results = HostResults {
                details: vec![],
                live: vec![answer.clone()],
            };
            let hosts = &hosts;
            let key = &keys[0];
            async move {
                hosts
                    .write(key.as_str(), unix_now(), results)
                    .await
                    .unwrap()
            }
        })
    });
}

criterion_group!(benches, bench_checkin);
criterion_main!(benches);
