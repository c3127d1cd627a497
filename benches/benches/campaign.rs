//! Live-query paths inside the engine, with 100,000 hosts registered:
//! - `campaign/fanout_100k`: starting a campaign on every host until its SQL is in all 100,000
//!   mailboxes (each host's actor activated on the way);
//! - `campaign/route_result`: one host's answer from its write, through its actor and the
//!   campaign actor, to a subscriber's hands.
//!
//! Run: `cargo bench -p flotilla-benches --bench campaign`

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flotilla_benches::Fleet;
use flotilla_engine::campaign::CampaignEvent;
use flotilla_engine::campaigns::NewCampaign;
use flotilla_engine::host::HostResults;
use flotilla_engine::live::LiveAnswer;
use flotilla_engine::store::CampaignRecord;
use flotilla_engine::{CampaignId, HostId, unix_now};

const FLEET: usize = 100_000;

fn campaign(targets: std::ops::Range<usize>) -> NewCampaign {
    NewCampaign {
        record: CampaignRecord {
            sql: "SELECT pid, name FROM processes WHERE name = 'sshd'".into(),
            query_id: None,
            user_id: Some(1),
            selected: vec![],
            created_at: unix_now(),
        },
        targets: targets.map(|i| HostId(i as u64 + 1)).collect(),
        deadline: None,
    }
}

async fn wait_enqueued(fleet: &Fleet, total: u64) {
    while fleet.campaigns.counters().hosts_enqueued.get() < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn answer(campaign: CampaignId) -> HostResults {
    HostResults {
        details: vec![],
        live: vec![LiveAnswer {
            campaign,
            rows: r#"[{"pid":"812","name":"sshd"}]"#.into(),
            row_count: 1,
            error: None,
            stats: None,
        }],
        labels: vec![],
        policies: vec![],
    }
}

fn bench_campaigns(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let fleet = runtime.block_on(flotilla_benches::fleet(FLEET));
    let mut group = c.benchmark_group("campaign");
    group.sample_size(10);

    group.bench_function("fanout_100k", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let fleet = &fleet;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let before = fleet.campaigns.counters().hosts_enqueued.get();
                    let start = Instant::now();
                    let started = fleet.campaigns.start(campaign(0..FLEET)).await.unwrap();
                    wait_enqueued(fleet, before + FLEET as u64).await;
                    total += start.elapsed();
                    fleet.campaigns.stop(started.id);
                    while fleet.campaigns.active() > 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                total
            }
        })
    });

    // A campaign over 10,000 hosts at a time, every host's mailbox already holding it.
    const BATCH: usize = 10_000;
    let cursor = std::sync::Arc::new(tokio::sync::Mutex::new((BATCH, None)));
    group.sample_size(50);
    group.bench_function("route_result", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let fleet = &fleet;
            let cursor = cursor.clone();
            async move {
                let mut guard = cursor.lock().await;
                let (next, current) = &mut *guard;
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    if *next == BATCH {
                        let before = fleet.campaigns.counters().hosts_enqueued.get();
                        let started = fleet.campaigns.start(campaign(0..BATCH)).await.unwrap();
                        wait_enqueued(fleet, before + BATCH as u64).await;
                        let mut subscription = fleet.campaigns.subscribe(started.id).await.unwrap();
                        // Totals and the first status.
                        subscription.next().await;
                        subscription.next().await;
                        *current = Some((started.id, subscription));
                        *next = 0;
                    }
                    let (id, subscription) = current.as_mut().unwrap();
                    let key = fleet.keys[*next].as_str();
                    *next += 1;
                    let start = Instant::now();
                    fleet
                        .hosts
                        .write(key, unix_now(), answer(*id))
                        .await
                        .unwrap();
                    loop {
                        if let Some(CampaignEvent::Result(_)) = subscription.next().await {
                            break;
                        }
                    }
                    total += start.elapsed();
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_campaigns);
criterion_main!(benches);
