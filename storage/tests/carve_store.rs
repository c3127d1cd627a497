//! File carves in the store, on both backends: blocks from any node, counted once, completed
//! by exactly one writer, capped per host and in total, and expired with their blocks.

mod backends;

use backends::Backend;
use flotilla_engine::ids::HostId;
use flotilla_storage::carves::{CarveBegun, CarveLimits, NewCarve};

backend_tests!(
    blocks_are_counted_once_and_one_writer_completes_the_carve,
    open_carves_are_capped_per_host_and_in_total,
    expiry_deletes_blocks_and_fails_open_carves,
);

const LIMITS: CarveLimits = CarveLimits {
    per_host: 2,
    total: 3,
};

fn carve(session: &str, host: u64, blocks: u64, now: i64) -> NewCarve {
    NewCarve {
        session_id: session.into(),
        host: HostId(host),
        name: format!("host-{host}-{session}"),
        carve_id: format!("guid-{session}"),
        request_id: format!("request-{session}"),
        block_count: blocks,
        block_size: 4,
        carve_size: blocks * 4,
        created_at: now,
    }
}

async fn blocks_are_counted_once_and_one_writer_completes_the_carve(backend: &Backend) {
    let store = backend.admin();
    let begun = store
        .begin_carve(&carve("s1", 1, 3, 100), LIMITS)
        .await
        .unwrap();
    assert_eq!(begun, CarveBegun::Opened);
    let id = store.carve_by_session("s1").await.unwrap().unwrap().id;

    let first = store.put_carve_block(id, 2, b"cccc", 101).await.unwrap();
    assert_eq!((first.blocks_received, first.completed), (1, false));
    let again = store.put_carve_block(id, 2, b"cccc", 101).await.unwrap();
    assert_eq!(
        (again.blocks_received, again.completed),
        (1, false),
        "a resent block is not counted twice"
    );
    store.put_carve_block(id, 0, b"aaaa", 102).await.unwrap();
    let last = store.put_carve_block(id, 1, b"bbbb", 103).await.unwrap();
    assert_eq!((last.blocks_received, last.completed), (3, true));
    let after = store.put_carve_block(id, 1, b"bbbb", 104).await.unwrap();
    assert!(
        !after.completed,
        "only one writer is told it completed the carve"
    );

    let stored = store.carve(id).await.unwrap().unwrap();
    assert_eq!(stored.completed_at, Some(103));
    assert_eq!(stored.max_block, 2);
    assert!(!stored.is_open());
    for (block, data) in [(0, b"aaaa"), (1, b"bbbb"), (2, b"cccc")] {
        assert_eq!(
            store.carve_block(id, block).await.unwrap().as_deref(),
            Some(&data[..])
        );
    }
    assert_eq!(store.carve_block(id, 3).await.unwrap(), None);
}

async fn open_carves_are_capped_per_host_and_in_total(backend: &Backend) {
    let store = backend.admin();
    let open = |s, h| {
        let c = carve(s, h, 1, 100);
        async move { store.begin_carve(&c, LIMITS).await.unwrap() }
    };
    assert_eq!(open("a", 1).await, CarveBegun::Opened);
    assert_eq!(open("b", 1).await, CarveBegun::Opened);
    assert_eq!(open("c", 1).await, CarveBegun::HostBusy);
    assert_eq!(open("d", 2).await, CarveBegun::Opened);
    assert_eq!(open("e", 3).await, CarveBegun::Full);

    // A completed carve no longer counts as open.
    let a = store.carve_by_session("a").await.unwrap().unwrap();
    assert!(
        store
            .put_carve_block(a.id, 0, b"xxxx", 101)
            .await
            .unwrap()
            .completed
    );
    assert_eq!(open("f", 1).await, CarveBegun::Opened);
    // Nor does a failed one; failing it deletes its blocks.
    let b = store.carve_by_session("b").await.unwrap().unwrap();
    store
        .fail_carve(b.id, "block 0 has 3 bytes", 102)
        .await
        .unwrap();
    let failed = store.carve(b.id).await.unwrap().unwrap();
    assert_eq!(failed.error.as_deref(), Some("block 0 has 3 bytes"));
    assert_eq!(open("g", 4).await, CarveBegun::Opened);
}

async fn expiry_deletes_blocks_and_fails_open_carves(backend: &Backend) {
    let store = backend.admin();
    for (session, created) in [("old-done", 100), ("old-open", 100), ("new", 5000)] {
        store
            .begin_carve(
                &carve(session, 1, 2, created),
                CarveLimits {
                    per_host: 9,
                    total: 9,
                },
            )
            .await
            .unwrap();
    }
    let id = |s: &'static str| async move { store.carve_by_session(s).await.unwrap().unwrap().id };
    let done = id("old-done").await;
    store.put_carve_block(done, 0, b"aaaa", 101).await.unwrap();
    store.put_carve_block(done, 1, b"bbbb", 101).await.unwrap();
    let open = id("old-open").await;
    store.put_carve_block(open, 0, b"aaaa", 101).await.unwrap();
    let new = id("new").await;
    store.put_carve_block(new, 0, b"aaaa", 5001).await.unwrap();

    assert_eq!(store.expire_carves(1000, 6000).await.unwrap(), 2);
    assert_eq!(
        store.expire_carves(1000, 6001).await.unwrap(),
        0,
        "expiry runs once"
    );

    let done = store.carve(done).await.unwrap().unwrap();
    assert!(done.expired);
    assert_eq!(done.error, None, "a carve that completed keeps its success");
    assert_eq!(store.carve_block(done.id, 0).await.unwrap(), None);
    let open = store.carve(open).await.unwrap().unwrap();
    assert!(open.expired);
    assert!(open.error.is_some(), "an open carve that expired failed");
    assert_eq!(store.carve_block(open.id, 0).await.unwrap(), None);
    let new = store.carve(new).await.unwrap().unwrap();
    assert!(!new.expired && new.is_open());
    assert!(store.carve_block(new.id, 0).await.unwrap().is_some());

    let listed = store.list_carves(false, 0, 10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|c| c.session_id.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    assert_eq!(store.list_carves(true, 0, 10).await.unwrap().len(), 3);
}
