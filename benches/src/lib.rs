//! Shared set-up for the criterion benches in `benches/`: an engine with a large registered
//! fleet, built directly from stored hosts so set-up takes seconds, not minutes.

use std::sync::Arc;

use flotilla_engine::memory_store::MemoryStore;
use flotilla_engine::store::StoredHost;
use flotilla_engine::vitals::{Intervals, Vitals};
use flotilla_engine::{
    CampaignConfig, Campaigns, Engine, EngineConfig, EngineStores, HostId, Hosts, NodeKey, unix_now,
};

pub struct Fleet {
    pub hosts: Hosts,
    pub campaigns: Campaigns,
    pub keys: Vec<NodeKey>,
}

/// `size` enrolled hosts, all online with fresh details, as the engine loads them at start.
pub async fn fleet(size: usize) -> Fleet {
    let store = Arc::new(MemoryStore::default());
    let now = unix_now();
    let mut keys = Vec::with_capacity(size);
    {
        let mut hosts = store.hosts.lock();
        for i in 0..size {
            let key = NodeKey::generate();
            keys.push(key.clone());
            let host = StoredHost {
                id: HostId(i as u64 + 1),
                node_key: Some(key),
                identifier: format!("host-{i}"),
                hostname: format!("host-{i}"),
                platform: "ubuntu".into(),
                team: None,
                intervals: Intervals {
                    distributed: 10,
                    config_refresh: 60,
                    logger: 10,
                },
                seen_time: now,
                detail_updated_at: now,
                label_updated_at: now,
                policy_updated_at: now,
                refetch_requested: false,
                orbit_node_key: None,
                device: None,
                os_version: String::new(),
                software_fingerprint: 0,
            };
            hosts.push((host, Vitals::default()));
        }
    }
    let config = CampaignConfig {
        max_active: usize::MAX,
        ..CampaignConfig::default()
    };
    let stores = EngineStores {
        hosts: store.clone(),
        campaigns: store,
    };
    let engine = Engine::start_local(stores, EngineConfig::default(), config)
        .await
        .expect("the in-memory store loads");
    Fleet {
        hosts: engine.hosts().clone(),
        campaigns: engine.campaigns().clone(),
        keys,
    }
}
