//! The check-in hot path inside the engine (no HTTP, no TLS, no JSON), with 100,000 hosts
//! registered:
//! - `read/idle`: a distributed read from a host with nothing to do — 99 % of all check-ins —
//!   answered from the compact record without an actor;
//! - `read/pending`: a read from a host whose actor holds a live query (one actor call).
//!
//! And what observability costs:
//! - `http/bare` and `http/metrics`: one distributed read through an axum router to a handler
//!   that answers `{}` at once, without and with the metrics middleware every route has; the
//!   difference is what recording a request costs (counter, three histograms, the debug log
//!   line's level check);
//! - `scrape/census` and `scrape/render`: counting the 100,000 hosts by platform and online
//!   state, and rendering all of `/metrics`, as a Prometheus scrape does.
//!
//! Run: `cargo bench -p flotilla-benches --bench checkin`

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use flotilla_api::metrics::{Metrics, MetricsSources};
use flotilla_engine::counters::RelayCounters;
use flotilla_engine::live::LiveQuery;
use flotilla_engine::{CampaignId, HostId, unix_now};
use tower::ServiceExt;

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

    let metrics = Arc::new(Metrics::new(
        MetricsSources {
            hosts: fleet.hosts.clone(),
            campaigns: fleet.campaigns.clone(),
            relay: Arc::new(RelayCounters::default()),
            relay_configured: false,
            store_backend: "memory",
            pool: None,
            logs: None,
            software: None,
            updates: None,
        },
        None,
    ));
    let bare = Router::new().route("/api/osquery/distributed/read", post(|| async { "{}" }));
    let measured = bare.clone().layer(axum::middleware::from_fn_with_state(
        metrics.clone(),
        flotilla_api::metrics::track,
    ));
    let request = || {
        Request::post("/api/osquery/distributed/read")
            .header("content-length", "40")
            .body(Body::from(r#"{"node_key":"0123456789abcdef01234567"}"#))
            .unwrap()
    };
    let mut group = c.benchmark_group("http");
    for (name, router) in [("bare", &bare), ("metrics", &measured)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let response = router.clone().oneshot(request()).await.unwrap();
                assert!(response.status().is_success());
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("scrape");
    group.sample_size(20);
    group.bench_function("census", |b| b.iter(|| fleet.hosts.census(unix_now())));
    group.bench_function("render", |b| b.iter(|| metrics.render()));
    group.finish();
}

criterion_group!(benches, bench_checkin);
criterion_main!(benches);
